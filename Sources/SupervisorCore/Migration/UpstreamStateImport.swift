import Crypto
import FoundationEssentials
import Glibc
import Logging
import OpenClawIPC

/// What a paired official node host keeps in `<state dir>/state/openclaw.sqlite` and this node
/// can take over, already checked (tables `device_identities`, `device_auth_tokens`,
/// `gateway_origin_device_tokens`, `config_machine_state` / `node_host_config`,
/// `exec_approvals_config`; upstream's schema versions 1 to 19).
public struct UpstreamState: Equatable {
    /// The `device_identities` row, checked: the seed's public key is `public_key_pem`'s and
    /// `deviceId` is its SHA-256.
    public struct Identity: Equatable {
        public var deviceId: String
        /// The 32-byte Ed25519 seed inside `private_key_pem`.
        public var seed: [UInt8]
        public var createdAtMs: Int64
        /// The `identity_key` it was found under (`primary`, or `default` of early builds).
        public var key: String
    }

    /// The gateway's device token for role `node` of that identity.
    public struct NodeToken: Equatable {
        public var token: String
        public var scopes: [String]
        /// The table it came from (`device_auth_tokens` or `gateway_origin_device_tokens`).
        public var source: String
    }

    /// The node host config (`config_machine_state` `nodeHost.config`, or the older table
    /// `node_host_config`), in `node.json`'s terms.
    public struct Node: Equatable {
        public var nodeId: String
        public var displayName: String?
        public var host: String?
        public var port: Int?
        public var tls: Bool?
        public var tlsFingerprint: String?
        public var contextPath: String?
        public var commands: [String]?
        public var source: String
    }

    public var identity: Identity?
    public var nodeToken: NodeToken?
    public var node: Node?
    /// `exec_approvals_config.raw_json`: the whole former `exec-approvals.json`, a JSON object.
    public var approvalsJSON: String?
    /// What the database lacks or holds in an unusable shape, with the reason.
    public var skipped: [ImportReport.Skipped]
}

/// The one-time import of a paired official node host's state, so this node replaces it
/// without a new pairing (issue 18).
///
/// Guarantees:
/// - It runs only when this node has no identity file yet and the database exists.
/// - The database is never written: a private copy of it is read (`DatabaseSnapshot`), so not
///   even a `-wal`/`-shm` file or a lock appears next to it.
/// - The identity is taken only when its private key, public key and device id agree (the
///   device id is recomputed, never trusted); a database whose identity does not check out
///   imports nothing at all.
/// - Files of ours are never replaced: `node.json` and `exec-approvals.json` are written only
///   when missing; the identity file is written last, so an interrupted import runs again.
public enum UpstreamStateImport {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// `<state dir>/state/openclaw.sqlite`, where upstream keeps its state since 2026-05.
    public static func databasePath(stateDir: String) -> String { "\(stateDir)/state/openclaw.sqlite" }

    /// Reads and checks what the database at `databasePath` holds. Throws when it cannot be
    /// read or its identity row does not check out.
    public static func read(databasePath: String) throws -> UpstreamState {
        let snapshot = try DatabaseSnapshot.take(of: databasePath, in: stagingParent(of: databasePath))
        defer { snapshot.remove() }
        let db = try SQLiteReader(path: snapshot.path)
        defer { db.close() }
        return try read(from: db)
    }

    /// Imports the official node's state into this node's files once: when
    /// `paths.identityFile` does not exist and the database does. Returns the report written to
    /// `<state dir>/imported-from-openclaw.json`; nil when nothing was imported (a warning is
    /// logged when the database could not be read or its identity was refused).
    @discardableResult
    public static func importIfNeeded(paths: StatePaths, logger: Logger, now: Int64) -> ImportReport? {
        let database = databasePath(stateDir: paths.stateDir)
        guard !exists(paths.identityFile), exists(database) else { return nil }
        let state: UpstreamState
        do {
            state = try read(databasePath: database)
        } catch {
            logger.warning("cannot import the official node's state from \(database): \(error); nothing imported, a new device identity is made (pair the node again)")
            return nil
        }
        guard let found = state.identity else {
            logger.info("\(database) holds no device identity; nothing imported")
            return nil
        }
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: found.seed) else {
            // read(from:) made this key already; kept as a guard, not as a path.
            logger.warning("cannot import the official node's state from \(database): the identity's key is unusable; nothing imported")
            return nil
        }
        let identity = DeviceIdentity(privateKey: key, createdAtMs: found.createdAtMs)

        var imported: Set<ImportReport.Item> = []
        var skipped = state.skipped

        if let token = state.nodeToken {
            do {
                try DeviceAuthFile.store(token: token.token, role: "node", scopes: token.scopes, at: paths.deviceAuthFile,
                                         deviceId: identity.deviceId, now: now)
                imported.insert(.deviceToken)
            } catch {
                skipped.append(.init(.deviceToken, "cannot write \(paths.deviceAuthFile): \(error)"))
            }
        }

        if let node = state.node {
            if exists(paths.nodeFile) {
                skipped.append(.init(.nodeConfig, "\(paths.nodeFile) already exists"))
            } else {
                let hasGateway = node.host != nil || node.port != nil || node.tls != nil || node.tlsFingerprint != nil || node.contextPath != nil
                let gateway: NodeConfigFile.Gateway? = hasGateway
                    ? NodeConfigFile.Gateway(host: node.host, port: node.port, tls: node.tls, tlsFingerprint: node.tlsFingerprint,
                                             contextPath: node.contextPath)
                    : nil
                let file = NodeConfigFile(version: 1, nodeId: node.nodeId, token: nil, displayName: node.displayName,
                                          gateway: gateway, commands: node.commands)
                do {
                    try file.save(paths.nodeFile)
                    imported.insert(.nodeConfig)
                } catch {
                    skipped.append(.init(.nodeConfig, "cannot write \(paths.nodeFile): \(error)"))
                }
            }
        }

        if let approvals = state.approvalsJSON {
            if exists(paths.approvalsFile) {
                skipped.append(.init(.execApprovals, "\(paths.approvalsFile) already exists"))
            } else {
                do {
                    try SecureFile.write(paths.approvalsFile, Array(approvals.utf8))
                    imported.insert(.execApprovals)
                } catch {
                    skipped.append(.init(.execApprovals, "cannot write \(paths.approvalsFile): \(error)"))
                }
            }
        }

        // Last: while it is missing, the next start imports again.
        do {
            try IdentityFile.save(identity, to: paths.identityFile)
            imported.insert(.identity)
        } catch {
            skipped.append(.init(.identity, "cannot write \(paths.identityFile): \(error)"))
        }

        let names = ImportReport.Item.allCases.filter { imported.contains($0) }.map(\.rawValue)
        let report = ImportReport(importedAtMs: now, database: database, deviceId: identity.deviceId,
                                  imported: names, skipped: skipped)
        do {
            try report.save(stateDir: paths.stateDir)
        } catch {
            logger.warning("cannot write \(ImportReport.path(stateDir: paths.stateDir)): \(error)")
        }
        var metadata: Logger.Metadata = ["deviceId": .string(identity.deviceId)]
        if !skipped.isEmpty {
            metadata["skipped"] = .string(skipped.map { "\($0.item): \($0.reason)" }.joined(separator: "; "))
        }
        if imported.contains(.identity) {
            logger.info("imported the official node's state from \(database): \(names.joined(separator: ", "))", metadata: metadata)
        } else {
            logger.warning("imported the official node's state from \(database) only in part (\(names.joined(separator: ", "))); a new device identity is made (pair the node again)",
                           metadata: metadata)
        }
        return report
    }

    // MARK: Reading

    /// Reads everything from an open database. The identity comes first: every other row is
    /// looked up by its device id.
    static func read(from db: SQLiteReader) throws -> UpstreamState {
        var skipped: [ImportReport.Skipped] = []
        let identity = try readIdentity(db)
        if identity == nil {
            skipped.append(.init(.identity, "no device_identities row 'primary' or 'default'"))
        }
        let node = try readNode(db, skipped: &skipped)
        var token: UpstreamState.NodeToken?
        if let identity {
            token = try readNodeToken(db, deviceId: identity.deviceId, node: node, skipped: &skipped)
        }
        let approvals = try readApprovals(db, skipped: &skipped)
        return UpstreamState(identity: identity, nodeToken: token, node: node, approvalsJSON: approvals, skipped: skipped)
    }

    /// `device_identities` row `primary` (else `default`, of early builds), checked as upstream's
    /// `validateStoredDeviceIdentity` does. Throws when the row does not check out.
    static func readIdentity(_ db: SQLiteReader) throws -> UpstreamState.Identity? {
        guard try db.tableExists("device_identities") else { return nil }
        for key in ["primary", "default"] {
            let rows = try db.query("SELECT device_id, public_key_pem, private_key_pem, created_at_ms FROM device_identities WHERE identity_key = ?",
                                    [key])
            guard let row = rows.first else { continue }
            return try checkedIdentity(row, key: key)
        }
        return nil
    }

    static func checkedIdentity(_ row: [String: SQLiteValue], key: String) throws -> UpstreamState.Identity {
        let origin = "device_identities '\(key)'"
        guard let deviceId = row["device_id"]?.textValue, isDeviceId(deviceId) else {
            throw Failure("\(origin): device_id is not 64 lowercase hex digits")
        }
        guard let publicPem = row["public_key_pem"]?.textValue, !publicPem.isEmpty,
              let privatePem = row["private_key_pem"]?.textValue, !privatePem.isEmpty else {
            throw Failure("\(origin): a key PEM is missing")
        }
        guard let createdAtMs = row["created_at_ms"]?.integerValue, createdAtMs >= 0, createdAtMs <= 9_007_199_254_740_991 else {
            throw Failure("\(origin): created_at_ms is not a non-negative integer")
        }
        guard let seed = DeviceIdentity.seed(fromPrivateKeyPem: unixLines(privatePem)),
              let privateKey = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw Failure("\(origin): private_key_pem is not a PKCS#8 Ed25519 private key")
        }
        let derived = DeviceIdentity(privateKey: privateKey, createdAtMs: createdAtMs)
        guard let publicRaw = publicKeyRaw(fromPem: unixLines(publicPem)), publicRaw == derived.publicKeyRaw else {
            throw Failure("\(origin): public_key_pem is not the public key of private_key_pem")
        }
        guard derived.deviceId == deviceId else {
            throw Failure("\(origin): device_id \(deviceId) is not the SHA-256 of the key's public key (\(derived.deviceId))")
        }
        return UpstreamState.Identity(deviceId: deviceId, seed: seed, createdAtMs: createdAtMs, key: key)
    }

    /// The node token: `device_auth_tokens` (device id, role `node`), else the v13+
    /// `gateway_origin_device_tokens` row whose gateway origin is the node's gateway.
    static func readNodeToken(_ db: SQLiteReader, deviceId: String, node: UpstreamState.Node?,
                              skipped: inout [ImportReport.Skipped]) throws -> UpstreamState.NodeToken? {
        var problems: [String] = []
        if try db.tableExists("device_auth_tokens"),
           let row = try db.query("SELECT token, scopes_json FROM device_auth_tokens WHERE device_id = ? AND role = 'node'", [deviceId]).first {
            switch nodeToken(row, source: "device_auth_tokens") {
            case let .success(token): return token
            case let .failure(problem): problems.append(problem.description)
            }
        }
        if try db.tableExists("gateway_origin_device_tokens") {
            let rows = try db.query("SELECT gateway_scope, token, scopes_json FROM gateway_origin_device_tokens WHERE device_id = ? AND role = 'node'",
                                    [deviceId])
            let wanted = originScopes(host: node?.host, port: node?.port, tls: node?.tls, contextPath: node?.contextPath)
            if let row = rows.first(where: { wanted.contains(normalizedScope($0["gateway_scope"]?.textValue ?? "")) }) {
                switch nodeToken(row, source: "gateway_origin_device_tokens") {
                case let .success(token): return token
                case let .failure(problem): problems.append(problem.description)
                }
            } else if !rows.isEmpty {
                let others = rows.compactMap { $0["gateway_scope"]?.textValue }.sorted().joined(separator: ", ")
                problems.append("gateway_origin_device_tokens holds node tokens only for other gateways (\(others))")
            }
        }
        skipped.append(.init(.deviceToken, problems.isEmpty ? "no token for role node of device \(deviceId)" : problems.joined(separator: "; ")))
        return nil
    }

    static func nodeToken(_ row: [String: SQLiteValue], source: String) -> Result<UpstreamState.NodeToken, Failure> {
        guard let token = row["token"]?.textValue?.trimmingWhitespace(), !token.isEmpty else {
            return .failure(Failure("\(source): the node token is empty"))
        }
        // Upstream ignores a row whose scopes_json is not an array.
        guard let text = row["scopes_json"]?.textValue,
              let items = (try? JSONValue.parse(Array(text.utf8)))?.arrayValue else {
            return .failure(Failure("\(source): scopes_json is not a JSON array"))
        }
        let scopes = items.compactMap { $0.stringValue?.trimmingWhitespace() }.filter { !$0.isEmpty }
        return .success(UpstreamState.NodeToken(token: token, scopes: Array(Set(scopes)).sorted(), source: source))
    }

    /// Upstream's `gatewayOriginScope(url)`: `scheme://host[:port]` plus the path without a
    /// trailing slash. URL parsing drops a default port, so both spellings are accepted; a
    /// node config without `tls` accepts both schemes.
    static func originScopes(host: String?, port: Int?, tls: Bool?, contextPath: String?) -> Set<String> {
        let name = GatewayURL.hostForURL((host ?? "127.0.0.1").lowercased())
        let port = port ?? 18789
        let path = normalizedScope(contextPath.map { $0.hasPrefix("/") ? $0 : "/" + $0 } ?? "")
        var scopes: Set<String> = []
        for secure in tls.map({ [$0] }) ?? [false, true] {
            let base = "\(secure ? "wss" : "ws")://\(name)"
            scopes.insert("\(base):\(port)\(path)")
            if port == (secure ? 443 : 80) { scopes.insert(base + path) }
        }
        return scopes
    }

    static func normalizedScope(_ scope: String) -> String {
        var text = scope.trimmingWhitespace()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// `config_machine_state` `nodeHost.config` (v12+), else `node_host_config` `current`.
    static func readNode(_ db: SQLiteReader, skipped: inout [ImportReport.Skipped]) throws -> UpstreamState.Node? {
        if try db.tableExists("config_machine_state"),
           let row = try db.query("SELECT value_json FROM config_machine_state WHERE state_key = ?", ["nodeHost.config"]).first {
            do {
                return try node(fromConfigJSON: row["value_json"]?.textValue ?? "")
            } catch {
                skipped.append(.init(.nodeConfig, "config_machine_state 'nodeHost.config': \(error)"))
                return nil
            }
        }
        if try db.tableExists("node_host_config") {
            let present = try db.columns(of: "node_host_config")
            let wanted = ["version", "node_id", "display_name", "gateway_host", "gateway_port", "gateway_tls",
                          "gateway_tls_fingerprint", "gateway_context_path"]
            let selected = wanted.filter { present.contains($0) }
            if selected.contains("node_id") {
                let columns = selected.map { "\"\($0)\"" }.joined(separator: ", ")
                if let row = try db.query("SELECT \(columns) FROM node_host_config WHERE config_key = ?", ["current"]).first {
                    do {
                        return try node(fromTableRow: row)
                    } catch {
                        skipped.append(.init(.nodeConfig, "node_host_config 'current': \(error)"))
                        return nil
                    }
                }
            }
        }
        skipped.append(.init(.nodeConfig, "no node host config in the database"))
        return nil
    }

    /// `value_json` of `nodeHost.config`, checked as upstream's `normalizeStoredNodeHostConfig`.
    static func node(fromConfigJSON text: String) throws -> UpstreamState.Node {
        guard let root = (try? JSONValue.parse(Array(text.utf8)))?.objectValue else {
            throw Failure("value_json is not a JSON object")
        }
        guard root["version"]?.intValue == 1 else {
            throw Failure("unsupported version \(root["version"]?.description ?? "(none)")")
        }
        guard let nodeId = root["nodeId"]?.stringValue?.trimmingWhitespace(), !nodeId.isEmpty else {
            throw Failure("nodeId is missing or empty")
        }
        let displayName = try jsonString(root["displayName"], "displayName")
        var node = UpstreamState.Node(nodeId: nodeId, displayName: displayName, host: nil, port: nil, tls: nil,
                                      tlsFingerprint: nil, contextPath: nil, commands: nil, source: "config_machine_state")
        if let value = root["gateway"], value != .null {
            guard let gateway = value.objectValue else { throw Failure("gateway is not an object") }
            node.host = try jsonString(gateway["host"], "gateway.host")
            node.tlsFingerprint = try jsonString(gateway["tlsFingerprint"], "gateway.tlsFingerprint")
            node.contextPath = try jsonString(gateway["contextPath"], "gateway.contextPath")
            if let port = gateway["port"], port != .null {
                guard let number = port.intValue, (1...65535).contains(number) else {
                    throw Failure("gateway.port is not a port number (1-65535)")
                }
                node.port = number
            }
            if let tls = gateway["tls"], tls != .null {
                guard let flag = tls.boolValue else { throw Failure("gateway.tls is not a boolean") }
                node.tls = flag
            }
        }
        if let value = root["commands"], value != .null {
            guard let items = value.arrayValue else { throw Failure("commands is not an array") }
            let commands = items.compactMap { $0.stringValue?.trimmingWhitespace() }.filter { !$0.isEmpty }
            guard commands.count == items.count else { throw Failure("commands holds something other than command ids") }
            node.commands = Array(Set(commands)).sorted()
        }
        return node
    }

    /// A `node_host_config` row (only the columns that table has in this database).
    static func node(fromTableRow row: [String: SQLiteValue]) throws -> UpstreamState.Node {
        if let version = row["version"], version != .null, version != .integer(1) {
            throw Failure("unsupported version \(version.integerValue.map { String($0) } ?? "(not an integer)")")
        }
        guard let nodeId = row["node_id"]?.textValue?.trimmingWhitespace(), !nodeId.isEmpty else {
            throw Failure("node_id is missing or empty")
        }
        let displayName = try columnString(row, "display_name")
        let host = try columnString(row, "gateway_host")
        let fingerprint = try columnString(row, "gateway_tls_fingerprint")
        let contextPath = try columnString(row, "gateway_context_path")
        var node = UpstreamState.Node(nodeId: nodeId, displayName: displayName, host: host, port: nil, tls: nil,
                                      tlsFingerprint: fingerprint, contextPath: contextPath, commands: nil,
                                      source: "node_host_config")
        switch row["gateway_port"] {
        case .none, .some(.null): break
        case let .some(.integer(port)) where (1...65535).contains(port): node.port = Int(port)
        default: throw Failure("gateway_port is not a port number (1-65535)")
        }
        switch row["gateway_tls"] {
        case .none, .some(.null): break
        case .some(.integer(0)): node.tls = false
        case .some(.integer(1)): node.tls = true
        default: throw Failure("gateway_tls is not 0, 1 or NULL")
        }
        return node
    }

    /// `exec_approvals_config` `current`: `raw_json`, when it is a JSON object.
    static func readApprovals(_ db: SQLiteReader, skipped: inout [ImportReport.Skipped]) throws -> String? {
        guard try db.tableExists("exec_approvals_config"),
              let row = try db.query("SELECT raw_json FROM exec_approvals_config WHERE config_key = ?", ["current"]).first else {
            skipped.append(.init(.execApprovals, "no exec approvals in the database"))
            return nil
        }
        guard let raw = row["raw_json"]?.textValue, (try? JSONValue.parse(Array(raw.utf8)))?.objectValue != nil else {
            skipped.append(.init(.execApprovals, "exec_approvals_config 'current': raw_json is not a JSON object"))
            return nil
        }
        return raw
    }

    // MARK: Helpers

    /// An optional JSON string field: absent or null is nil; an empty string is refused (as upstream).
    static func jsonString(_ value: JSONValue?, _ field: String) throws -> String? {
        switch value {
        case .none, .some(.null): return nil
        case let .some(.string(text)):
            guard !text.isEmpty else { throw Failure("\(field) is an empty string") }
            return text
        default: throw Failure("\(field) is not a string")
        }
    }

    /// An optional text column: absent or NULL is nil; an empty string is refused (as upstream).
    static func columnString(_ row: [String: SQLiteValue], _ column: String) throws -> String? {
        switch row[column] {
        case .none, .some(.null): return nil
        case let .some(.text(text)):
            guard !text.isEmpty else { throw Failure("\(column) is an empty string") }
            return text
        default: throw Failure("\(column) is not text")
        }
    }

    static func isDeviceId(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The raw 32-byte key inside an SPKI Ed25519 PEM.
    static func publicKeyRaw(fromPem pem: String) -> [UInt8]? {
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let der = Data(base64Encoded: body).map(Array.init), der.count == 44,
              Array(der.prefix(12)) == DeviceIdentity.spkiPrefix else { return nil }
        return Array(der.suffix(32))
    }

    /// PEM text with CRLF line ends read as LF, each line trimmed, blank lines dropped.
    static func unixLines(_ pem: String) -> String {
        pem.split(whereSeparator: { $0.isNewline })
            .map { String($0).trimmingWhitespace() }
            .filter { !$0.isEmpty }
            .joined(separator: "\n")
    }

    /// Where the private copy goes: the state dir (the parent of `state/`) as upstream's
    /// `resolveOpenClawStateDirForDatabasePath`, else the database's own directory.
    static func stagingParent(of databasePath: String) -> String {
        let directory = SecureFile.parentDirectory(of: databasePath)
        let last = directory.split(separator: "/").last.map(String.init) ?? ""
        return last == "state" ? SecureFile.parentDirectory(of: directory) : directory
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}
