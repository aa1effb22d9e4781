import FoundationEssentials
import GatewayProtocol
import Glibc
import Logging
import NodeSupport

/// The `run` flags (design §7), before they are merged with `node.json`.
public struct RunFlags: Sendable {
    public var host: String?
    public var port: Int?
    public var tls: Bool
    public var tlsFingerprint: String?
    public var nodeId: String?
    public var displayName: String?
    /// `--commands` (normalised) replaces the saved allowlist; `--all-commands` forgets it.
    public var commands: [String]?
    public var allCommands = false
    /// `--no-tls`: plaintext even when the config enables `gateway.tls`.
    public var noTls = false
    /// `--context-path` as given ("" clears the saved one).
    public var contextPath: String?
    /// `--pair` / `--pair-if-needed` (and `connect`): a decoded setup code.
    public var pair: PairingRequest?

    /// Any flag that names the endpoint: with one, a setup code's URLs are only the baseline.
    var namesEndpoint: Bool { host != nil || port != nil || contextPath != nil || tls || noTls || tlsFingerprint != nil }

    public init(host: String? = nil, port: Int? = nil, tls: Bool = false, tlsFingerprint: String? = nil,
                nodeId: String? = nil, displayName: String? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.tlsFingerprint = tlsFingerprint
        self.nodeId = nodeId
        self.displayName = displayName
    }
}

/// Where the node keeps its state (design §5).
public struct StatePaths: Sendable {
    public var stateDir: String
    public var configPath: String

    public init(stateDir: String, configPath: String? = nil) {
        self.stateDir = stateDir
        self.configPath = configPath ?? "\(stateDir)/openclaw.json"
    }

    public static func resolve(environment: (String) -> String? = SecretResolver.processEnvironment) -> StatePaths {
        let home = environment("HOME") ?? "/root"
        let state = environment("OPENCLAW_STATE_DIR").flatMap { $0.isEmpty ? nil : $0 } ?? "\(home)/.openclaw"
        let config = environment("OPENCLAW_CONFIG_PATH").flatMap { $0.isEmpty ? nil : $0 } ?? "\(state)/openclaw.json"
        return StatePaths(stateDir: state, configPath: config)
    }

    public var nodeFile: String { "\(stateDir)/node.json" }
    public var identityFile: String { "\(stateDir)/identity/device.json" }
    public var deviceAuthFile: String { "\(stateDir)/identity/device-auth.json" }
    public var approvalsFile: String { "\(stateDir)/exec-approvals.json" }
}

/// Everything `run` needs, resolved before any worker starts. Failures here are config
/// errors (exit 78) and happen before any connection attempt.
public struct NodeSetup {
    public var paths: StatePaths
    public var config: OpenClawConfig
    public var identity: DeviceIdentity
    public var link: LinkSettings
    /// The state dir's single-instance lock, held for the process's life.
    public var lock: NodeLock
    /// The saved `--commands` allowlist (nil: the full surface).
    public var commands: [String]?

    public static let defaultPath = ExecutableSearch.defaultPath

    public static func prepare(flags: RunFlags, version: String, logger: Logger,
                               environment: @escaping (String) -> String? = SecretResolver.processEnvironment) throws -> NodeSetup {
        let paths = StatePaths.resolve(environment: environment)
        do {
            try SecureFile.ensureDirectory(paths.stateDir)
            try SecureFile.ensureDirectory("\(paths.stateDir)/identity")
        } catch {
            throw ConfigError("cannot prepare state directory: \(error)")
        }
        // Before anything in the state dir is read or written: one node per state dir.
        let lock = try NodeLock.acquire(stateDir: paths.stateDir)
        let config = try OpenClawConfig.load(paths.configPath)
        // A paired official node host in this state dir: take over its identity, token, node
        // config and approvals once, before any of our files is read (issue 18).
        UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: currentTimeMillis())
        for problem in ConfigCheck.run(configPath: paths.configPath, approvalsPath: paths.approvalsFile) {
            let line: Logger.Message = "config: \(problem.text)"
            if problem.severity == .error { logger.error(line) } else { logger.warning(line) }
        }

        var node = try NodeConfigFile.load(paths.nodeFile)
        // A setup code's first URL is the baseline the flags override (upstream's
        // resolveNodeGatewayOptions); without flags naming the endpoint its URLs are tried in order.
        var baseline = node
        if let primary = flags.pair?.code.candidates.first {
            baseline.gateway = .init(host: primary.host, port: primary.port, tls: primary.tls, tlsFingerprint: primary.fingerprint,
                                     contextPath: primary.contextPath)
        }
        let endpoint = GatewayEndpoint.resolve(flags: flags, node: baseline, config: config)
        if !endpoint.tls {
            try GatewayURL.checkPlaintextAllowed(host: endpoint.host, url: endpoint.url,
                                                 allowPrivate: environment("OPENCLAW_ALLOW_INSECURE_PRIVATE_WS") == "1")
        }

        // With a setup code the node presents its bootstrap token, never shared secrets (upstream).
        let credentials = flags.pair != nil ? GatewayCredentials(token: nil, password: nil)
            : try GatewayCredentials.resolve(config: config, resolver: SecretResolver(config: config, environment: environment))

        let identity: DeviceIdentity
        do {
            let loaded = try IdentityFile.loadOrCreate(at: paths.identityFile)
            switch loaded {
            case .created: logger.info("created device identity", metadata: ["deviceId": "\(loaded.identity.deviceId)"])
            case .repaired: logger.info("rewrote device identity file in the standard shape")
            case let .replaced(_, backup): logger.warning("device identity file was unreadable; kept it and made a new key", metadata: ["backup": "\(backup)"])
            case .loaded: break
            }
            identity = loaded.identity
        } catch {
            throw ConfigError("cannot load device identity: \(error)")
        }

        // The client instance id only (as upstream since 2026-07): the device id comes from the
        // key, so its pairing and device token stay.
        if let nodeId = flags.nodeId?.trimmingWhitespace(), !nodeId.isEmpty, nodeId != node.nodeId {
            node.nodeId = nodeId
        }
        let displayName = flags.displayName?.trimmingWhitespace().nonEmpty ?? node.displayName?.nonEmpty ?? Self.hostName()
        node.displayName = displayName
        // The command allowlist: `--commands` replaces the saved one, `--all-commands` forgets
        // it, neither keeps it (upstream's configureNodeHost).
        if flags.allCommands, node.commands != nil {
            logger.info("node-host: cleared saved command allowlist; advertising the full default command surface")
        }
        node.commands = flags.allCommands ? nil : (flags.commands ?? node.commands)
        node.gateway = .init(host: endpoint.host, port: endpoint.port, tls: endpoint.tls, tlsFingerprint: endpoint.fingerprint,
                             contextPath: endpoint.contextPath)
        do {
            try node.save(paths.nodeFile)
        } catch {
            throw ConfigError("cannot write \(paths.nodeFile): \(error)")
        }

        var pathEnv = environment("PATH") ?? ""
        if pathEnv.isEmpty { pathEnv = defaultPath }
        var link = LinkSettings(
            url: endpoint.url, tlsFingerprint: endpoint.fingerprint, nodeId: node.nodeId, displayName: displayName, version: version,
            pathEnv: pathEnv, sharedToken: credentials.token, password: credentials.password,
            deviceAuthPath: paths.deviceAuthFile
        )
        // Upstream's pre-auth handshake budget: OPENCLAW_HANDSHAKE_TIMEOUT_MS, else
        // gateway.handshakeTimeoutMs (each handshake phase's deadline, at most its default).
        let handshake = environment("OPENCLAW_HANDSHAKE_TIMEOUT_MS").flatMap { Int($0.trimmingWhitespace()) }
            ?? config.value("gateway.handshakeTimeoutMs")?.intValue
        link.handshakeTimeoutMs = handshake.map { min(max($0, 250), 60_000) }
        link.nodeFile = paths.nodeFile
        link.accessHeaders = try CloudflareAccess.headers(environment: environment, tls: endpoint.tls)
        if let pair = flags.pair, !flags.namesEndpoint {
            link.fallbacks = Array(pair.code.candidates.dropFirst())
            for fallback in link.fallbacks where !fallback.tls {
                try GatewayURL.checkPlaintextAllowed(host: fallback.host, url: fallback.url,
                                                     allowPrivate: environment("OPENCLAW_ALLOW_INSECURE_PRIVATE_WS") == "1")
            }
        }
        link.bootstrapToken = flags.pair?.code.bootstrapToken
        link.preferBootstrapToken = flags.pair?.preferBootstrapToken ?? false
        return NodeSetup(paths: paths, config: config, identity: identity, link: link, lock: lock, commands: node.commands)
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "linux-node" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "linux-node" : name
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

/// TLS certificate pins (protocol.md §9).
public enum TLSFingerprint {
    /// Trim, drop a leading `sha256`/`sha-256` label, keep hex digits only, lowercase.
    public static func normalize(_ text: String) -> String {
        var rest = Substring(text.trimmingWhitespace())
        for label in ["sha-256", "sha256"] where rest.lowercased().hasPrefix(label) {
            rest = rest.dropFirst(label.count)
            break
        }
        let hex = rest.unicodeScalars.filter { scalar in
            (48...57).contains(scalar.value) || (65...70).contains(scalar.value) || (97...102).contains(scalar.value)
        }
        return String(String.UnicodeScalarView(hex)).lowercased()
    }

    public static func isValid(_ normalized: String) -> Bool { normalized.utf8.count == 64 }
}

/// The plaintext `ws://` rule (protocol.md §9, v3-era).
/// Where `run` connects (node-host.md §9.2): host and port from the flag, else node.json, else
/// 127.0.0.1:18789; TLS from `--tls` or a fingerprint, else config `gateway.tls.enabled`.
/// `doctor` and `install` use the same answer, so they check and install what `run` would do.
public struct GatewayEndpoint: Equatable, Sendable {
    public var host: String
    public var port: Int
    public var tls: Bool
    /// Normalised SHA-256 pin, when one was given.
    public var fingerprint: String?
    /// The path the WebSocket URL ends in (`--context-path`), with its leading `/`.
    public var contextPath: String?

    public init(host: String, port: Int, tls: Bool, fingerprint: String?, contextPath: String? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.fingerprint = fingerprint
        self.contextPath = contextPath
    }

    public var url: String { "\(tls ? "wss" : "ws")://\(GatewayURL.hostForURL(host)):\(port)\(contextPath ?? "")" }

    public static func resolve(flags: RunFlags, node: NodeConfigFile?, config: OpenClawConfig?) -> GatewayEndpoint {
        let fingerprint = flags.tlsFingerprint.map(TLSFingerprint.normalize)
        // The saved context path, TLS and pin belong to the saved host and port.
        let sameEndpoint = (flags.host == nil || flags.host == node?.gateway?.host) && (flags.port == nil || flags.port == node?.gateway?.port)
        let contextPath = flags.contextPath.flatMap(normalizeContextPath) ?? (sameEndpoint ? node?.gateway?.contextPath : nil)
        let savedPin = sameEndpoint && !flags.noTls ? node?.gateway?.tlsFingerprint : nil
        let pin = fingerprint ?? savedPin
        let savedTLS = sameEndpoint && node?.gateway?.tls == true
        return GatewayEndpoint(
            host: flags.host ?? node?.gateway?.host ?? "127.0.0.1",
            port: flags.port ?? node?.gateway?.port ?? 18789,
            tls: !flags.noTls && (flags.tls || pin != nil || savedTLS || config?.bool("gateway.tls.enabled") == true),
            fingerprint: pin,
            contextPath: contextPath?.isEmpty == false ? contextPath : nil
        )
    }

    /// `/openclaw-gw` from `openclaw-gw` or `/openclaw-gw/`; "" for an empty value (it clears
    /// the saved one); nil when it cannot be a URL path.
    public static func normalizeContextPath(_ text: String) -> String? {
        var path = text.trimmingWhitespace()
        if path.isEmpty || path == "/" { return "" }
        guard !path.contains(where: { $0 == "?" || $0 == "#" || $0 == " " || $0 == "\\" || $0.isNewline }),
              path.utf8.count <= 512 else { return nil }
        if !path.hasPrefix("/") { path = "/" + path }
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return path
    }
}

public enum GatewayURL {
    /// The TCP port of a `ws://host:port` / `wss://host:port` URL.
    public static func port(of url: String) -> UInt16? {
        GatewayTarget(url: url).map { UInt16($0.port) }
    }

    public static func hostForURL(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }

    public static func isLoopback(_ host: String) -> Bool {
        var name = host.lowercased()
        while name.hasSuffix(".") { name.removeLast() }
        if name == "localhost" || name == "::1" || name == "[::1]" { return true }
        if let octets = ipv4(name) { return octets[0] == 127 }
        return false
    }

    /// RFC 1918, link-local, CGNAT, and the IPv6 loopback/link-local/unique-local/site-local ranges.
    public static func isPrivateLiteral(_ host: String) -> Bool {
        if let o = ipv4(host) {
            return o[0] == 10 || o[0] == 127 || (o[0] == 172 && (16...31).contains(o[1])) || (o[0] == 192 && o[1] == 168)
                || (o[0] == 169 && o[1] == 254) || (o[0] == 100 && (64...127).contains(o[1]))
        }
        var name = host.lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        guard name.contains(":"), let v6 = ipv6(name) else { return false }
        if v6 == [UInt8](repeating: 0, count: 15) + [1] { return true }
        return (v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80) || (v6[0] & 0xfe) == 0xfc || (v6[0] == 0xfe && (v6[1] & 0xc0) == 0xc0)
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: address.s_addr) { Array($0) }
    }

    static func ipv6(_ text: String) -> [UInt8]? {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: address) { Array($0) }
    }

    public static func checkPlaintextAllowed(host: String, url: String, allowPrivate: Bool) throws {
        if isLoopback(host) { return }
        if allowPrivate, isPrivateLiteral(host) { return }
        throw ConfigError("node host: gateway URL \"\(url)\" uses plaintext ws:// to a non-loopback address. Use --tls (wss://), or for a private address on a network you trust set OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1.")
    }
}
