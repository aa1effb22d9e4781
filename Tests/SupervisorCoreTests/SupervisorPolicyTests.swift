import Foundation
import Logging
import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// The IPC policy table, run bookkeeping, and link settings the Supervisor decides on.
final class SupervisorPolicyTests: XCTestCase {
    func testNetWorkerMayOnlyInvokeOnAnAcceptedLink() {
        XCTAssertTrue(IPCPolicy.permits(NetToSupervisor.Kind.invoke, in: .linked))
        for phase in NetPhase.allCases where phase != .linked {
            XCTAssertFalse(IPCPolicy.permits(NetToSupervisor.Kind.invoke, in: phase), "\(phase)")
        }
    }

    func testSignaturesOnlyBeforeHello() {
        XCTAssertTrue(IPCPolicy.permits(NetToSupervisor.Kind.signRequest, in: .linking))
        XCTAssertFalse(IPCPolicy.permits(NetToSupervisor.Kind.signRequest, in: .linked))
        XCTAssertFalse(IPCPolicy.permits(NetToSupervisor.Kind.signRequest, in: .awaitingReady))
    }

    func testReadyIsTheOnlyFirstMessage() {
        for kind in NetToSupervisor.Kind.allCases {
            XCTAssertEqual(IPCPolicy.permits(kind, in: .awaitingReady), kind == .ready, "\(kind)")
        }
        for kind in ExecToSupervisor.Kind.allCases {
            XCTAssertEqual(IPCPolicy.permits(kind, in: .awaitingReady), kind == .ready, "\(kind)")
        }
        for kind in BrowserToSupervisor.Kind.allCases {
            XCTAssertEqual(IPCPolicy.permits(kind, in: .awaitingReady), kind == .ready, "\(kind)")
            XCTAssertFalse(IPCPolicy.permits(kind, in: .notStarted), "\(kind)")
            XCTAssertFalse(IPCPolicy.permits(kind, in: .stopping), "\(kind)")
        }
        XCTAssertTrue(IPCPolicy.permits(BrowserToSupervisor.Kind.response, in: .ready))
    }

    func testEveryKindHasARow() {
        XCTAssertEqual(Set(IPCPolicy.net.keys), Set(NetToSupervisor.Kind.allCases))
        XCTAssertEqual(Set(IPCPolicy.exec.keys), Set(ExecToSupervisor.Kind.allCases))
        XCTAssertEqual(Set(IPCPolicy.browser.keys), Set(BrowserToSupervisor.Kind.allCases))
    }

    func order(_ id: String) -> RunOrder {
        RunOrder(id: id, argv: ["/bin/true"], cwd: nil, env: [:], timeoutMs: nil, maxOutputBytes: 10)
    }

    func testRunsInFlightWhenTheExecWorkerDiesAreAnsweredWithAnError() {
        let dispatcher = ExecDispatcher(maxConcurrent: 2, maxQueued: 1, logger: Logger(label: "test"))
        var sent: [String] = []
        dispatcher.send = { sent.append($0.id) }
        var results: [String: Result<RunOutcome, WireError>] = [:]
        for id in ["a", "b", "c"] {
            XCTAssertNil(dispatcher.submit(order(id)) { results[id] = $0 })
        }
        XCTAssertEqual(sent, [], "nothing is sent before the worker is ready")
        dispatcher.workerReady()
        XCTAssertEqual(sent, ["a", "b"])
        dispatcher.workerDied(reason: "signal 9")
        for id in ["a", "b"] {
            guard case let .failure(error)? = results[id] else { return XCTFail("run \(id) not answered") }
            XCTAssertEqual(error.code, "UNAVAILABLE")
            XCTAssertTrue(error.message.hasPrefix("node exec worker stopped during the run"), error.message)
        }
        XCTAssertNil(results["c"], "the queued run waits for the next worker")
        dispatcher.workerReady()
        XCTAssertEqual(sent, ["a", "b", "c"])
    }

    func testQueueBeyondItsBoundIsRefused() {
        let dispatcher = ExecDispatcher(maxConcurrent: 1, maxQueued: 1, logger: Logger(label: "test"))
        XCTAssertNil(dispatcher.submit(order("a")) { _ in })
        XCTAssertNil(dispatcher.submit(order("b")) { _ in })
        let refusal = dispatcher.submit(order("c")) { _ in }
        XCTAssertEqual(refusal?.code, "UNAVAILABLE")
        XCTAssertEqual(refusal?.message, "node is busy: all 1 run slots are in use and 1 runs are queued; retry later")
    }

    func testUnknownRunIdsAreViolations() {
        let dispatcher = ExecDispatcher(maxConcurrent: 1, maxQueued: 1, logger: Logger(label: "test"))
        let outcome = RunOutcome(id: "zz", exitCode: 0, signal: nil, timedOut: false, stdout: "", stderr: "", truncated: false,
                                 error: nil, durationMs: 1)
        XCTAssertEqual(dispatcher.finished(outcome), "run.finished for unknown run \"zz\"")
    }

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
