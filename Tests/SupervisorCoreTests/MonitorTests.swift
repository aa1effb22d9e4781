import Crypto
import Logging
import NIOCore
import NIOEmbedded
import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// The role table's monitors: each menu's rows (what a worker may send, when, how often), the
/// menu's limits, the shared pending-call table, and the run queue.
final class MonitorTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    func context() -> MonitorContext {
        MonitorContext(loop: loop, logger: Logger(label: "test"), metrics: NodeMetrics(), reaper: Reaper(logger: Logger(label: "test")),
                       shutdownGrace: .milliseconds(10))
    }

    func netMonitor() throws -> NetMonitor {
        let identity = DeviceIdentity(privateKey: try .init(rawRepresentation: [UInt8](repeating: 7, count: 32)), createdAtMs: 0)
        let settings = LinkSettings(url: "ws://127.0.0.1:1", tlsFingerprint: nil, nodeId: "n", displayName: "d", version: "0",
                                    pathEnv: "/bin", sharedToken: nil, password: nil, deviceAuthPath: "/nonexistent/device-auth.json")
        let link = LinkAuthority(settings: settings, identity: identity, router: CommandRouter(), logger: Logger(label: "test"))
        return NetMonitor(launch: .ownBinary(as: .net), confinement: .init(), environment: [:], context: context(), link: link, probe: false)
    }

    func execMonitor() -> ExecMonitor {
        ExecMonitor(launch: .ownBinary(as: .exec), confinement: .init(), environment: [:], context: context(), maxConcurrent: 1, maxQueued: 1)
    }

    func browserMonitor() -> BrowserMonitor {
        BrowserMonitor(settings: BrowserWorkerSettings(confinement: .init(), configuration: BrowserConfiguration(
            enabled: true, evaluateEnabled: false, defaultProfile: "openclaw", profiles: [], executablePath: nil, headless: true,
            noSandbox: false, extraArgs: [], dataDir: "/nonexistent", displayPresent: false)),
                       environment: [:], context: context())
    }

    // MARK: The menus

    func testTheNetWorkersMenu() throws {
        let table = try netMonitor().menu.table
        XCTAssertEqual(Set(table.keys), Set(NetToSupervisor.Kind.allCases), "every kind has a row")
        XCTAssertEqual(table[.ready]?.phases, [.awaitingReady])
        XCTAssertEqual(table[.ready]?.limit, .once)
        for kind in [NetToSupervisor.Kind.signRequest, .helloOk, .connectRejected] {
            XCTAssertEqual(table[kind]?.phases, [.linking], "\(kind)")
            XCTAssertEqual(table[kind]?.limit, .once, "\(kind): once per connect attempt")
        }
        XCTAssertEqual(table[.invoke]?.phases, [.linked], "invokes only on an accepted link")
        XCTAssertEqual(table[.invoke]?.limit, .inFlight(IPCLimits.maxInFlight))
        XCTAssertEqual(table[.linkState]?.phases, [.linking, .linked, .stopping])
        XCTAssertEqual(table[.metricsRequest]?.phases, [.linking, .linked])
        XCTAssertEqual(table[.framesDropped]?.phases, [.linking, .linked])
        XCTAssertEqual(table[.gatewayReply]?.phases, [.linking, .linked, .stopping], "answers may trail the link's loss")
        XCTAssertEqual(table[.pairingEvent]?.phases, [.linked], "pairing events only on an accepted link")
        for (kind, row) in table { XCTAssertFalse(row.phases.contains(.awaitingReady) && kind != .ready, "\(kind)") }
    }

    func testTheExecWorkersMenu() {
        let table = execMonitor().menu.table
        XCTAssertEqual(Set(table.keys), Set(ExecToSupervisor.Kind.allCases))
        XCTAssertEqual(table[.ready]?.phases, [.awaitingReady])
        XCTAssertEqual(table[.ready]?.limit, .once)
        XCTAssertEqual(table[.runFinished]?.phases, [.ready, .stopping])
    }

    func testTheBrowserWorkersMenu() {
        let table = browserMonitor().menu.table
        XCTAssertEqual(Set(table.keys), Set(BrowserToSupervisor.Kind.allCases))
        XCTAssertEqual(table[.ready]?.phases, [.awaitingReady])
        XCTAssertEqual(table[.response]?.phases, [.ready])
        for (_, row) in table {
            XCTAssertFalse(row.phases.contains(.notStarted))
            XCTAssertFalse(row.phases.contains(.stopping))
        }
    }

    // MARK: Menu limits

    func sign() -> NetToSupervisor { .signRequest(SignRequest(requestId: "r", nonce: "n", signedAt: 0, version: .v3)) }

    func admits(_ menu: inout Menu<NetToSupervisor, NetPhase>, _ message: NetToSupervisor, in phase: NetPhase) -> String? {
        switch menu.admit(message, in: phase) {
        case .success: return nil
        case let .failure(violation): return violation.description
        }
    }

    func testOnceRowsComeOncePerArmingAndWrongPhasesAreNamed() {
        var handled = 0
        var menu = Menu<NetToSupervisor, NetPhase>(subject: "the link", rows: [
            .init(.signRequest, in: [.linking], limit: .once) { _ in handled += 1 },
        ])
        XCTAssertNil(admits(&menu, sign(), in: .linking))
        XCTAssertEqual(admits(&menu, sign(), in: .linking), "\"sign.request\" may come once while the link is linking; it came again")
        menu.rearm([.signRequest])
        XCTAssertNil(admits(&menu, sign(), in: .linking))
        XCTAssertEqual(admits(&menu, sign(), in: .linked), "\"sign.request\" is not allowed while the link is linked")
        XCTAssertEqual(admits(&menu, .framesDropped(FramesDropped(count: 1)), in: .linking),
                       "\"frames.dropped\" is not allowed while the link is linking", "a kind without a row")
    }

    func testInFlightRowsAreBoundedUntilReleased() {
        var menu = Menu<NetToSupervisor, NetPhase>(subject: "the link", rows: [
            .init(.signRequest, in: [.linking], limit: .inFlight(2)) { _ in },
        ])
        XCTAssertNil(admits(&menu, sign(), in: .linking))
        XCTAssertNil(admits(&menu, sign(), in: .linking))
        XCTAssertEqual(admits(&menu, sign(), in: .linking), "more than 2 \"sign.request\" outstanding at once")
        menu.release(.signRequest)
        XCTAssertNil(admits(&menu, sign(), in: .linking))
        menu.reset()
        XCTAssertEqual(menu.count(.signRequest), 0)
    }

    // MARK: Pending calls

    func testPendingCallsCompleteOnceByAnswerDeadlineOrFanOut() {
        let calls = PendingCalls<String, Int>(loop: loop)
        var results: [String: Result<Int, WireError>] = [:]
        for id in ["a", "b", "c"] {
            XCTAssertTrue(calls.add(id, deadline: id == "b" ? .seconds(1) : nil,
                                    expired: { WireError(code: "TIMEOUT", message: "late") }) { results[id] = $0 })
        }
        XCTAssertFalse(calls.add("a") { _ in XCTFail("a second call under one id") })
        XCTAssertTrue(calls.complete("a", with: .success(1)))
        XCTAssertFalse(calls.complete("a", with: .success(2)), "answered once")
        loop.advanceTime(by: .seconds(2))
        XCTAssertEqual(results["b"].flatMap { try? $0.get() }, nil)
        guard case let .failure(late)? = results["b"] else { return XCTFail("b did not expire") }
        XCTAssertEqual(late.message, "late")
        calls.failAll(WireError(code: "UNAVAILABLE", message: "gone"))
        guard case let .failure(gone)? = results["c"] else { return XCTFail("c not failed") }
        XCTAssertEqual(gone.message, "gone")
        XCTAssertTrue(calls.isEmpty)
        guard case .success(1)? = results["a"] else { return XCTFail("a changed") }
    }

    // MARK: The run queue

    func order(_ id: String) -> RunOrder {
        RunOrder(id: id, argv: ["/bin/true"], cwd: nil, env: [:], timeoutMs: nil, maxOutputBytes: 10)
    }

    func testRunsInFlightWhenTheExecWorkerDiesAreAnsweredWithAnError() {
        let queue = RunQueue(maxConcurrent: 2, maxQueued: 1, loop: loop)
        var sent: [String] = []
        queue.send = { sent.append($0.id) }
        var results: [String: Result<RunOutcome, WireError>] = [:]
        for id in ["a", "b", "c"] {
            XCTAssertNil(queue.submit(order(id)) { results[id] = $0 })
        }
        XCTAssertEqual(sent, [], "nothing is sent before the worker is ready")
        queue.workerReady()
        XCTAssertEqual(sent, ["a", "b"])
        XCTAssertEqual(queue.workerDied(reason: "signal 9"), ["a", "b"])
        for id in ["a", "b"] {
            guard case let .failure(error)? = results[id] else { return XCTFail("run \(id) not answered") }
            XCTAssertEqual(error.code, "UNAVAILABLE")
            XCTAssertEqual(error.message, "node exec worker stopped during the run (signal 9); the command was killed")
        }
        XCTAssertNil(results["c"], "the queued run waits for the next worker")
        queue.workerReady()
        XCTAssertEqual(sent, ["a", "b", "c"])
    }

    func testQueueBeyondItsBoundIsRefused() {
        let queue = RunQueue(maxConcurrent: 1, maxQueued: 1, loop: loop)
        XCTAssertNil(queue.submit(order("a")) { _ in })
        XCTAssertNil(queue.submit(order("b")) { _ in })
        let refusal = queue.submit(order("c")) { _ in }
        XCTAssertEqual(refusal?.code, "UNAVAILABLE")
        XCTAssertEqual(refusal?.message, "node is busy: all 1 run slots are in use and 1 runs are queued; retry later")
        queue.shutdown()
        XCTAssertEqual(queue.submit(order("d")) { _ in }?.message, "node is shutting down")
    }

    func testRefusalSaysWhatSubmitWouldAnswerWithoutQueueing() {
        let queue = RunQueue(maxConcurrent: 1, maxQueued: 1, loop: loop)
        XCTAssertNil(queue.refusal())
        XCTAssertNil(queue.submit(order("a")) { _ in })
        XCTAssertNil(queue.refusal())
        XCTAssertEqual(queue.queuedCount, 1, "asking queues nothing")
        XCTAssertNil(queue.submit(order("b")) { _ in })
        XCTAssertEqual(queue.refusal(), queue.submit(order("c")) { _ in })
        XCTAssertEqual(queue.refusal()?.message, "node is busy: all 1 run slots are in use and 1 runs are queued; retry later")
        queue.shutdown()
        XCTAssertEqual(queue.refusal(), WireError(code: "UNAVAILABLE", message: "node is shutting down"))
    }

    func testASecondOrderUnderARunningIdIsAnsweredNotSent() {
        let queue = RunQueue(maxConcurrent: 2, maxQueued: 0, loop: loop)
        var sent: [String] = []
        queue.send = { sent.append($0.id) }
        queue.workerReady()
        var second: Result<RunOutcome, WireError>?
        XCTAssertNil(queue.submit(order("a")) { _ in })
        XCTAssertNil(queue.submit(order("a")) { second = $0 })
        XCTAssertEqual(sent, ["a"])
        guard case let .failure(error)? = second else { return XCTFail("the duplicate was not answered") }
        XCTAssertEqual(error.message, "run id a is already running")
    }

    func testCancelDropsAQueuedRunAndKillsARunningOne() {
        let queue = RunQueue(maxConcurrent: 1, maxQueued: 2, loop: loop)
        var sent: [String] = []
        queue.send = { sent.append($0.id) }
        queue.workerReady()
        var results: [String: Result<RunOutcome, WireError>] = [:]
        for id in ["a", "b"] { XCTAssertNil(queue.submit(order(id)) { results[id] = $0 }) }
        var killed: [String] = []
        queue.cancel("b") { killed.append($0) }
        guard case let .failure(error)? = results["b"] else { return XCTFail("the queued run was not answered") }
        XCTAssertEqual(error.code, "ABORTED")
        XCTAssertEqual(queue.queuedCount, 0)
        queue.cancel("a") { killed.append($0) }
        XCTAssertEqual(killed, ["a"], "the running one is killed by its worker, which then reports it")
        XCTAssertNil(results["a"])
        queue.cancel("zz") { killed.append($0) }
        XCTAssertEqual(killed, ["a"])
        XCTAssertEqual(sent, ["a"], "the cancelled queued run was never sent")
    }

    func testUnknownRunIdsAreRefused() {
        let queue = RunQueue(maxConcurrent: 1, maxQueued: 1, loop: loop)
        let outcome = RunOutcome(id: "zz", exitCode: 0, signal: nil, timedOut: false, stdout: "", stderr: "", truncated: false,
                                 error: nil, durationMs: 1)
        XCTAssertFalse(queue.finished(outcome))
    }

    // MARK: The role table

    func testEveryRoleIsOneRow() {
        XCTAssertEqual(WorkerRole.allCases.map(\.processName),
                       ["openclaw-node-net", "openclaw-node-exec", "openclaw-node-browser", "openclaw-node-files", "openclaw-node-mcp"])
        XCTAssertEqual(WorkerRole.allCases.filter(\.startsWithNode), [.net, .exec])
        XCTAssertEqual(WorkerRole.invoked(as: "/proc/self/exe"), nil)
        XCTAssertEqual(WorkerRole.invoked(as: "openclaw-node-exec"), .exec)
        XCTAssertEqual(WorkerRole.invoked(as: "/usr/libexec/openclaw-node/openclaw-node-net"), .net)
        XCTAssertEqual(WorkerRole.invoked(as: "openclaw-node"), nil)
        XCTAssertEqual(WorkerLaunch.resolve(.browser, override: nil), WorkerLaunch(path: "/proc/self/exe", argv0: "openclaw-node-browser"))
        XCTAssertEqual(WorkerLaunch.resolve(.net, override: "/tmp/forged"), WorkerLaunch(path: "/tmp/forged", argv0: "/tmp/forged"))
    }
}
