import Foundation
import Logging
import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// Link settings and state files the Supervisor decides on (the monitors' menus: MonitorTests).
final class SupervisorPolicyTests: XCTestCase {
    func testRestartBackoffDoublesAndResetsAfterAStableRun() {
        var backoff = RestartBackoff(initialMs: 250, maxMs: 1000, stableAfterMs: 30_000)
        XCTAssertEqual([0, 0, 0, 0].map { backoff.delayAfterDeath(uptimeMs: $0) }, [250, 500, 1000, 1000])
        XCTAssertEqual(backoff.delayAfterDeath(uptimeMs: 60_000), 250)
    }

    func testFingerprintIsAcceptedInAnySpelling() {
        let hex = String(repeating: "ab", count: 32)
        let colons = (0..<32).map { _ in "AB" }.joined(separator: ":")
        XCTAssertEqual(TLSFingerprint.normalize(hex), hex)
        XCTAssertEqual(TLSFingerprint.normalize("sha256:" + colons), hex)
        XCTAssertEqual(TLSFingerprint.normalize("  SHA-256 " + colons.replacingOccurrences(of: ":", with: " ")), hex)
    }

    func testPlaintextToNonLoopbackIsRefused() {
        XCTAssertNoThrow(try GatewayURL.checkPlaintextAllowed(host: "127.0.0.2", url: "ws://127.0.0.2:1", allowPrivate: false))
        XCTAssertNoThrow(try GatewayURL.checkPlaintextAllowed(host: "localhost.", url: "ws://localhost.:1", allowPrivate: false))
        XCTAssertThrowsError(try GatewayURL.checkPlaintextAllowed(host: "10.0.0.5", url: "ws://10.0.0.5:18789", allowPrivate: false)) {
            XCTAssertEqual(($0 as? ConfigError)?.message,
                           "node host: gateway URL \"ws://10.0.0.5:18789\" uses plaintext ws:// to a non-loopback address. Use --tls (wss://), or for a private address on a network you trust set OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1.")
        }
        XCTAssertNoThrow(try GatewayURL.checkPlaintextAllowed(host: "10.0.0.5", url: "ws://10.0.0.5:1", allowPrivate: true))
        XCTAssertNoThrow(try GatewayURL.checkPlaintextAllowed(host: "fd00::1", url: "ws://[fd00::1]:1", allowPrivate: true))
        XCTAssertThrowsError(try GatewayURL.checkPlaintextAllowed(host: "8.8.8.8", url: "ws://8.8.8.8:1", allowPrivate: true))
        XCTAssertThrowsError(try GatewayURL.checkPlaintextAllowed(host: "gw.example.com", url: "ws://gw.example.com:1", allowPrivate: true))
    }

    func config(_ text: String) throws -> OpenClawConfig {
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        return OpenClawConfig(root: try decoder.decode(JSONValue.self, from: Data(text.utf8)))
    }

    func testEnvTokenBeatsConfig() throws {
        let cfg = try config("{gateway: {auth: {token: 'from-config'}}}")
        let env = ["OPENCLAW_GATEWAY_TOKEN": "from-env"]
        XCTAssertEqual(try GatewayCredentials.resolve(config: cfg, resolver: SecretResolver(config: cfg) { env[$0] }).token, "from-env")
        XCTAssertEqual(try GatewayCredentials.resolve(config: cfg, resolver: SecretResolver(config: cfg) { _ in nil }).token, "from-config")
    }

    func testRemoteFieldsOnlyInRemoteMode() throws {
        let local = try config("{gateway: {remote: {token: 'r'}}}")
        XCTAssertNil(try GatewayCredentials.resolve(config: local, resolver: SecretResolver(config: local) { _ in nil }).token)
        let remote = try config("{gateway: {mode: 'remote', auth: {token: 'a'}, remote: {token: 'r'}}}")
        XCTAssertEqual(try GatewayCredentials.resolve(config: remote, resolver: SecretResolver(config: remote) { _ in nil }).token, "r")
    }

    func testSecretRefFromEnvAndFile() throws {
        let dir = try TemporaryDirectory()
        try SecureFile.write(dir.path + "/secrets.json", Array(#"{"gateway":{"token":"file-token"}}"#.utf8))
        let cfg = try config("""
        {secrets: {providers: {mounted: {source: 'file', path: '\(dir.path)/secrets.json', mode: 'json'}}},
         gateway: {auth: {token: {source: 'file', provider: 'mounted', id: '/gateway/token'},
                          password: {source: 'env', provider: 'default', id: 'PW'}, mode: 'password'}}}
        """)
        XCTAssertEqual(try SecretResolver(config: cfg) { _ in nil }.resolve("gateway.auth.token"), "file-token")
        XCTAssertEqual(try SecretResolver(config: cfg) { $0 == "PW" ? "pw" : nil }.resolve("gateway.auth.password"), "pw")
    }

    func testUnresolvableSecretRefFailsClosed() throws {
        let cfg = try config("{gateway: {auth: {token: {source: 'env', provider: 'default', id: 'MISSING_TOKEN'}}}}")
        XCTAssertThrowsError(try GatewayCredentials.resolve(config: cfg, resolver: SecretResolver(config: cfg) { _ in nil })) {
            XCTAssertEqual(($0 as? ConfigError)?.message,
                           "gateway.auth.token secret reference could not be resolved: environment variable MISSING_TOKEN is not set")
        }
        let legacy = try config("{gateway: {auth: {token: '${MISSING_TOKEN}'}}}")
        XCTAssertThrowsError(try SecretResolver(config: legacy) { _ in nil }.resolve("gateway.auth.token"))
    }

    func testStateFilesUseTheUpstreamJSONShape() throws {
        let text = String(decoding: try StateJSON.encode(["b": JSONValue.array([]), "a": .object(["x": .number(1)])]), as: UTF8.self)
        XCTAssertEqual(text, "{\n  \"a\": {\n    \"x\": 1\n  },\n  \"b\": []\n}\n")
    }
}
