import Crypto
import CSQLite
import Foundation
import Glibc
import Logging
import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// The one-time import of a paired official node host's `state/openclaw.sqlite`: its identity,
/// node token, node config (both layouts) and exec approvals.
final class UpstreamStateImportTests: XCTestCase {
    var dir: TemporaryDirectory!
    var paths: StatePaths!
    let identity = DeviceIdentity(privateKey: Curve25519.Signing.PrivateKey(), createdAtMs: 1_700_000_000_000)
    let logLines = ImportLogLines()

    var database: String { UpstreamStateImport.databasePath(stateDir: paths.stateDir) }
    var logger: Logger {
        let sink = logLines
        return Logger(label: "test", factory: { _ in ImportLogHandler(sink: sink) })
    }

    static let approvals = """
    {
      "agents": {
        "main": {
          "allowlist": [
            {
              "pattern": "/usr/bin/git"
            }
          ]
        }
      },
      "defaults": {
        "security": "allowlist"
      },
      "version": 1
    }

    """

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        paths = StatePaths(stateDir: dir.path)
        try SecureFile.ensureDirectory(dir.path + "/state")
        try SecureFile.ensureDirectory(dir.path + "/identity")
    }

    override func tearDown() {
        dir = nil
    }

    // MARK: Fixtures

    func identityRow(deviceId: String? = nil, publicKeyPem: String? = nil, key: String = "primary") -> String {
        "INSERT INTO device_identities VALUES (\(sqlLiteral(key)), \(sqlLiteral(deviceId ?? identity.deviceId)), \(sqlLiteral(publicKeyPem ?? identity.publicKeyPem)), \(sqlLiteral(identity.privateKeyPem)), \(identity.createdAtMs), \(identity.createdAtMs));"
    }

    func tokenRow(_ token: String, scopes: String = "[]") -> String {
        "INSERT INTO device_auth_tokens VALUES (\(sqlLiteral(identity.deviceId)), 'node', \(sqlLiteral(token)), \(sqlLiteral(scopes)), 5);"
    }

    func approvalsRow(_ raw: String = UpstreamStateImportTests.approvals) -> String {
        "INSERT INTO exec_approvals_config VALUES ('current', \(sqlLiteral(raw)), NULL, 0, 'allowlist', NULL, NULL, NULL, 1, 1, 7);"
    }

    func machineStateRow(_ json: String) -> String {
        "INSERT INTO config_machine_state VALUES ('nodeHost.config', \(sqlLiteral(json)), 9);"
    }

    /// Creates the database with upstream's current tables plus `statements`, and closes it.
    func makeDatabase(_ statements: [String], schema: String = UpstreamSchema.current, wal: Bool = true) throws {
        let fixture = try FixtureDatabase(path: database)
        if wal { try fixture.exec("PRAGMA journal_mode = WAL;") }
        try fixture.exec(schema)
        for statement in statements { try fixture.exec(statement) }
        fixture.close()
    }

    func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    // MARK: Both node-config layouts

    func testTheTableLayoutOfOlderBuildsIsImported() throws {
        try makeDatabase([
            identityRow(), tokenRow("node-token"), approvalsRow(),
            "INSERT INTO node_host_config VALUES ('current', 1, 'node-custom', NULL, 'Build Node', 'gateway.local', 18443, 1, 'fixture-digest', '/openclaw-gw', NULL, 0, 3);",
        ], schema: UpstreamSchema.current + UpstreamSchema.nodeHostConfigV11)

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(report.imported, ["identity", "deviceToken", "nodeConfig", "execApprovals"])
        let loaded = try IdentityFile.loadOrCreate(at: paths.identityFile)
        guard case .loaded = loaded else { return XCTFail("expected the imported identity file in the standard shape") }
        XCTAssertEqual(loaded.identity.deviceId, identity.deviceId)
        XCTAssertEqual(loaded.identity.publicKeyRaw, identity.publicKeyRaw)
        XCTAssertEqual(loaded.identity.createdAtMs, identity.createdAtMs)
        XCTAssertEqual(DeviceAuthFile.token(at: paths.deviceAuthFile, deviceId: identity.deviceId, role: "node"), "node-token")
        let node = try NodeConfigFile.load(paths.nodeFile)
        XCTAssertEqual(node.nodeId, "node-custom")
        XCTAssertEqual(node.displayName, "Build Node")
        XCTAssertEqual(node.gateway, NodeConfigFile.Gateway(host: "gateway.local", port: 18443, tls: true,
                                                            tlsFingerprint: "fixture-digest", contextPath: "/openclaw-gw"))
        XCTAssertNil(node.commands)
        XCTAssertNil(node.token)
    }

    func testTheFirstTableLayoutWithoutLaterColumnsIsImported() throws {
        try makeDatabase([
            identityRow(),
            "INSERT INTO node_host_config VALUES ('current', 1, 'old-node', 'legacy-token', NULL, 'gw.example', 18789, 0, NULL, 3);",
        ], schema: UpstreamSchema.current + UpstreamSchema.nodeHostConfigV1)

        let state = try UpstreamStateImport.read(databasePath: database)

        XCTAssertEqual(state.node, UpstreamState.Node(nodeId: "old-node", displayName: nil, host: "gw.example", port: 18789, tls: false,
                                                     tlsFingerprint: nil, contextPath: nil, commands: nil, source: "node_host_config"))
    }

    func testTheMachineStateLayoutIsImportedWithItsCommandAllowlist() throws {
        try makeDatabase([
            identityRow(),
            machineStateRow(#"{"version":1,"nodeId":"fixture-node","displayName":"Fixture","gateway":{"host":"gateway.example","port":18443,"tls":true,"contextPath":"/gateway"},"installedAppsSharing":true,"commands":["fixture.read","fixture.list","fixture.read"]}"#),
        ])

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(report.imported, ["identity", "nodeConfig"])
        let node = try NodeConfigFile.load(paths.nodeFile)
        XCTAssertEqual(node.nodeId, "fixture-node")
        XCTAssertEqual(node.displayName, "Fixture")
        XCTAssertEqual(node.gateway, NodeConfigFile.Gateway(host: "gateway.example", port: 18443, tls: true,
                                                            tlsFingerprint: nil, contextPath: "/gateway"))
        XCTAssertEqual(node.commands, ["fixture.list", "fixture.read"])
    }

    func testTheMachineStateRowWinsOverALeftoverTable() throws {
        try makeDatabase([
            identityRow(),
            "INSERT INTO node_host_config VALUES ('current', 1, 'table-node', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 3);",
            machineStateRow(#"{"version":1,"nodeId":"json-node"}"#),
        ], schema: UpstreamSchema.current + UpstreamSchema.nodeHostConfigV11)

        XCTAssertEqual(try UpstreamStateImport.read(databasePath: database).node?.nodeId, "json-node")
    }

    func testAnUnsupportedNodeConfigIsSkippedWithItsReason() throws {
        try makeDatabase([identityRow(), machineStateRow(#"{"version":2,"nodeId":"stale-node"}"#)])

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(report.imported, ["identity"])
        XCTAssertTrue(report.skipped.contains(.init(item: "nodeConfig", reason: "config_machine_state 'nodeHost.config': unsupported version 2")),
                      "\(report.skipped)")
        XCTAssertFalse(exists(paths.nodeFile))
    }

    // MARK: The node token

    func testTheNodeTokenIsStoredForTheImportedDevice() throws {
        try makeDatabase([identityRow(), tokenRow("node-token", scopes: #"["node.run"," node.run ","node.exec"]"#)])

        _ = UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42)

        let bytes = try XCTUnwrap(try SecureFile.read(paths.deviceAuthFile))
        let file = try JSONDecoder().decode(DeviceAuthFile.self, from: Data(bytes))
        XCTAssertEqual(file.deviceId, identity.deviceId)
        XCTAssertEqual(file.tokens["node"], DeviceAuthFile.Entry(token: "node-token", role: "node", scopes: ["node.exec", "node.run"], updatedAtMs: 42))
    }

    func testATokenOfAnotherDeviceIsNotImported() throws {
        let other = DeviceIdentity(privateKey: .init(), createdAtMs: 0)
        try makeDatabase([identityRow(), "INSERT INTO device_auth_tokens VALUES (\(sqlLiteral(other.deviceId)), 'node', 'foreign', '[]', 5);"])

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(report.imported, ["identity"])
        XCTAssertTrue(report.skipped.contains(.init(item: "deviceToken", reason: "no token for role node of device \(identity.deviceId)")))
        XCTAssertFalse(exists(paths.deviceAuthFile))
    }

    func testAnOriginScopedTokenIsTakenOnlyForTheNodesGateway() throws {
        try makeDatabase([
            identityRow(),
            machineStateRow(#"{"version":1,"nodeId":"n","gateway":{"host":"gw.example","port":18443,"tls":true}}"#),
            "INSERT INTO gateway_origin_device_tokens VALUES ('wss://other.example', \(sqlLiteral(identity.deviceId)), 'node', 'other-token', '[]', 5);",
            "INSERT INTO gateway_origin_device_tokens VALUES ('wss://gw.example:18443', \(sqlLiteral(identity.deviceId)), 'node', 'origin-token', '[\"node.run\"]', 5);",
        ])

        let state = try UpstreamStateImport.read(databasePath: database)

        XCTAssertEqual(state.nodeToken, UpstreamState.NodeToken(token: "origin-token", scopes: ["node.run"], source: "gateway_origin_device_tokens"))
    }

    func testAnOriginScopedTokenOfAnotherGatewayIsSkipped() throws {
        try makeDatabase([
            identityRow(),
            machineStateRow(#"{"version":1,"nodeId":"n","gateway":{"host":"gw.example","port":18443,"tls":true}}"#),
            "INSERT INTO gateway_origin_device_tokens VALUES ('wss://other.example', \(sqlLiteral(identity.deviceId)), 'node', 'other-token', '[]', 5);",
        ])

        let state = try UpstreamStateImport.read(databasePath: database)

        XCTAssertNil(state.nodeToken)
        XCTAssertTrue(state.skipped.contains(.init(item: "deviceToken",
                                                   reason: "gateway_origin_device_tokens holds node tokens only for other gateways (wss://other.example)")),
                      "\(state.skipped)")
    }

    // MARK: Exec approvals

    func testTheApprovalsDocumentIsWrittenAsStored() throws {
        try makeDatabase([identityRow(), approvalsRow()])

        _ = UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42)

        XCTAssertEqual(try SecureFile.read(paths.approvalsFile), Array(Self.approvals.utf8))
        var info = stat()
        XCTAssertEqual(stat(paths.approvalsFile, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
    }

    func testApprovalsThatAreNotAJSONObjectAreSkipped() throws {
        try makeDatabase([identityRow(), approvalsRow("[]")])

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertFalse(exists(paths.approvalsFile))
        XCTAssertTrue(report.skipped.contains(.init(item: "execApprovals", reason: "exec_approvals_config 'current': raw_json is not a JSON object")))
    }

    func testOurOwnApprovalsFileIsKept() throws {
        try makeDatabase([identityRow(), approvalsRow()])
        let ours = Array(#"{"version":1,"agents":{}}"#.utf8)
        try SecureFile.write(paths.approvalsFile, ours)

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(try SecureFile.read(paths.approvalsFile), ours)
        XCTAssertTrue(report.skipped.contains(.init(item: "execApprovals", reason: "\(paths.approvalsFile) already exists")))
    }

    // MARK: The identity is checked, never trusted

    func testAMismatchedDeviceIdImportsNothing() throws {
        let other = DeviceIdentity(privateKey: .init(), createdAtMs: 0)
        try makeDatabase([identityRow(deviceId: other.deviceId), tokenRow("node-token"), approvalsRow(),
                          machineStateRow(#"{"version":1,"nodeId":"n"}"#)])

        XCTAssertThrowsError(try UpstreamStateImport.read(databasePath: database)) { error in
            XCTAssertEqual("\(error)", "device_identities 'primary': device_id \(other.deviceId) is not the SHA-256 of the key's public key (\(self.identity.deviceId))")
        }
        XCTAssertNil(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        for path in [paths.identityFile, paths.deviceAuthFile, paths.nodeFile, paths.approvalsFile, ImportReport.path(stateDir: paths.stateDir)] {
            XCTAssertFalse(exists(path), path)
        }
        let warning = "warning: cannot import the official node's state from \(database): device_identities 'primary': device_id"
        XCTAssertTrue(logLines.lines.contains { $0.hasPrefix(warning) }, "\(logLines.lines)")
    }

    func testAPublicKeyOfAnotherKeyIsRefused() throws {
        let other = DeviceIdentity(privateKey: .init(), createdAtMs: 0)
        try makeDatabase([identityRow(publicKeyPem: other.publicKeyPem)])

        XCTAssertThrowsError(try UpstreamStateImport.read(databasePath: database)) { error in
            XCTAssertEqual("\(error)", "device_identities 'primary': public_key_pem is not the public key of private_key_pem")
        }
        XCTAssertNil(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))
        XCTAssertFalse(exists(paths.identityFile))
    }

    func testTheDefaultKeyOfEarlyBuildsIsRead() throws {
        try makeDatabase([identityRow(key: "default")])

        let state = try UpstreamStateImport.read(databasePath: database)

        XCTAssertEqual(state.identity?.deviceId, identity.deviceId)
        XCTAssertEqual(state.identity?.key, "default")
        XCTAssertEqual(state.identity?.seed, Array(identity.privateKey.rawRepresentation))
    }

    // MARK: When it runs

    func testAnExistingIdentityMeansNoImport() throws {
        try makeDatabase([identityRow(), tokenRow("node-token"), approvalsRow(), machineStateRow(#"{"version":1,"nodeId":"n"}"#)])
        let ours = try IdentityFile.loadOrCreate(at: paths.identityFile).identity

        XCTAssertNil(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(try IdentityFile.loadOrCreate(at: paths.identityFile).identity.deviceId, ours.deviceId)
        for path in [paths.deviceAuthFile, paths.nodeFile, paths.approvalsFile, ImportReport.path(stateDir: paths.stateDir)] {
            XCTAssertFalse(exists(path), path)
        }
    }

    func testNoDatabaseMeansNoImport() throws {
        XCTAssertNil(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))
        XCTAssertFalse(exists(paths.identityFile))
        XCTAssertTrue(logLines.lines.isEmpty, "\(logLines.lines)")
    }

    func testAnUnreadableDatabaseIsAWarningAndWritesNothing() throws {
        try SecureFile.write(database, Array(String(repeating: "not a database ", count: 100).utf8))

        XCTAssertNil(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertFalse(exists(paths.identityFile))
        XCTAssertFalse(exists(ImportReport.path(stateDir: paths.stateDir)))
        let warning = "warning: cannot import the official node's state from \(database): "
        XCTAssertTrue(logLines.lines.contains { $0.hasPrefix(warning) }, "\(logLines.lines)")
    }

    // MARK: The database is left as it was

    func testTheDatabaseIsLeftByteForByteWithoutSidecars() throws {
        try makeDatabase([identityRow(), tokenRow("node-token"), approvalsRow(), machineStateRow(#"{"version":1,"nodeId":"n"}"#)])
        XCTAssertFalse(exists(database + "-wal"))
        let before = try XCTUnwrap(try SecureFile.read(database))

        XCTAssertNotNil(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(try SecureFile.read(database), before)
        for suffix in ["-wal", "-shm", "-journal"] {
            XCTAssertFalse(exists(database + suffix), suffix)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: paths.stateDir).filter { $0.hasPrefix(".openclaw-import") }
        XCTAssertEqual(leftovers, [])
    }

    func testRowsStillInTheWriteAheadLogAreReadAndTheLogIsLeftAlone() throws {
        // The official node still has the database open: its last writes are only in the -wal.
        let live = try FixtureDatabase(path: database)
        defer { live.close() }
        try live.exec("PRAGMA journal_mode = WAL;")
        try live.exec(UpstreamSchema.current)
        try live.exec(identityRow())
        try live.exec(tokenRow("node-token"))
        XCTAssertTrue(exists(database + "-wal"))
        let mainBytes = try SecureFile.read(database)
        let walBytes = try SecureFile.read(database + "-wal")

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        XCTAssertEqual(report.imported, ["identity", "deviceToken"])
        XCTAssertEqual(try SecureFile.read(database), mainBytes)
        XCTAssertEqual(try SecureFile.read(database + "-wal"), walBytes)
    }

    // MARK: The report

    func testTheReportSaysWhatWasImportedAndWhatWasLeft() throws {
        try makeDatabase([identityRow(), tokenRow("node-token"), approvalsRow(), machineStateRow(#"{"version":1,"nodeId":"n"}"#)])
        try NodeConfigFile(version: 1, nodeId: "ours", token: nil, displayName: nil, gateway: nil, commands: nil).save(paths.nodeFile)

        let report = try XCTUnwrap(UpstreamStateImport.importIfNeeded(paths: paths, logger: logger, now: 42))

        let expected = ImportReport(importedAtMs: 42, database: database, deviceId: identity.deviceId,
                                    imported: ["identity", "deviceToken", "execApprovals"],
                                    skipped: [.init(item: "nodeConfig", reason: "\(paths.nodeFile) already exists")])
        XCTAssertEqual(report, expected)
        XCTAssertEqual(ImportReport.load(stateDir: paths.stateDir), expected)
        XCTAssertEqual(try NodeConfigFile.load(paths.nodeFile).nodeId, "ours")
        let path = ImportReport.path(stateDir: paths.stateDir)
        XCTAssertEqual(path, paths.stateDir + "/imported-from-openclaw.json")
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        let text = String(decoding: try XCTUnwrap(try SecureFile.read(path)), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{\n  \"database\": "), text)
        XCTAssertTrue(text.contains("\"importedAtMs\": 42,"), text)
        XCTAssertTrue(logLines.lines.contains("info: imported the official node's state from \(database): identity, deviceToken, execApprovals"),
                      "\(logLines.lines)")
    }
}

// MARK: - Test support

/// Upstream's state tables (its current STRICT DDL, and the two `node_host_config` shapes of
/// schema versions 1 and 11).
enum UpstreamSchema {
    static let current = """
    CREATE TABLE device_identities (
      identity_key TEXT NOT NULL PRIMARY KEY,
      device_id TEXT NOT NULL,
      public_key_pem TEXT NOT NULL,
      private_key_pem TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL,
      updated_at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX idx_device_identities_device ON device_identities(device_id, updated_at_ms DESC);
    CREATE TABLE device_auth_tokens (
      device_id TEXT NOT NULL,
      role TEXT NOT NULL,
      token TEXT NOT NULL,
      scopes_json TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL,
      PRIMARY KEY (device_id, role)
    ) STRICT;
    CREATE TABLE gateway_origin_device_tokens (
      gateway_scope TEXT NOT NULL,
      device_id TEXT NOT NULL,
      role TEXT NOT NULL,
      token TEXT NOT NULL,
      scopes_json TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL,
      PRIMARY KEY (gateway_scope, device_id, role)
    ) STRICT;
    CREATE TABLE exec_approvals_config (
      config_key TEXT NOT NULL PRIMARY KEY,
      raw_json TEXT NOT NULL,
      socket_path TEXT,
      has_socket_token INTEGER NOT NULL,
      default_security TEXT,
      default_ask TEXT,
      default_ask_fallback TEXT,
      auto_allow_skills INTEGER,
      agent_count INTEGER NOT NULL,
      allowlist_count INTEGER NOT NULL,
      updated_at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE config_machine_state (
      state_key TEXT NOT NULL PRIMARY KEY,
      value_json TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL
    ) STRICT;

    """

    /// The last `node_host_config` (v11).
    static let nodeHostConfigV11 = """
    CREATE TABLE node_host_config (
      config_key TEXT NOT NULL PRIMARY KEY,
      version INTEGER NOT NULL,
      node_id TEXT NOT NULL,
      token TEXT,
      display_name TEXT,
      gateway_host TEXT,
      gateway_port INTEGER,
      gateway_tls INTEGER,
      gateway_tls_fingerprint TEXT,
      gateway_context_path TEXT,
      gateway_cloudflare_access_json TEXT,
      installed_apps_sharing INTEGER NOT NULL DEFAULT 0,
      updated_at_ms INTEGER NOT NULL
    ) STRICT;

    """

    /// The first `node_host_config` (v1: not STRICT, no context path).
    static let nodeHostConfigV1 = """
    CREATE TABLE node_host_config (
      config_key TEXT NOT NULL PRIMARY KEY,
      version INTEGER NOT NULL,
      node_id TEXT NOT NULL,
      token TEXT,
      display_name TEXT,
      gateway_host TEXT,
      gateway_port INTEGER,
      gateway_tls INTEGER,
      gateway_tls_fingerprint TEXT,
      updated_at_ms INTEGER NOT NULL
    );

    """
}

/// An SQL string literal.
func sqlLiteral(_ text: String) -> String {
    "'" + text.replacing("'", with: "''") + "'"
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// A read-write connection that builds a fixture database the way upstream's tables look.
final class FixtureDatabase {
    private var db: OpaquePointer?

    init(path: String) throws {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK else {
            sqlite3_close(handle)
            throw FixtureError(description: "cannot open \(path)")
        }
        db = handle
    }

    deinit { close() }

    func exec(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &message) == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(message)
            throw FixtureError(description: "\(text): \(sql)")
        }
    }

    func close() {
        guard let handle = db else { return }
        sqlite3_close(handle)
        db = nil
    }
}

/// The lines a test's logger wrote, as `level: message`.
final class ImportLogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []

    func append(_ line: String) {
        lock.lock()
        stored.append(line)
        lock.unlock()
    }

    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}

struct ImportLogHandler: LogHandler {
    let sink: ImportLogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        sink.append("\(event.level.rawValue): \(event.message)")
    }
}
