import GatewayProtocol
import Logging
import OpenClawIPC
import XCTest
@testable import NetWorkerCore

/// The gateway link's protocol, driven event by event with a fake clock: what the machine
/// asks the shell to do (deadlines, frames, closes, reconnects, messages to the Supervisor).
final class LinkMachineTests: XCTestCase {
    final class Fake {
        var monotonic: Int64 = 1_000
        var ids = 0
    }

    let fake = Fake()
    let url = "ws://127.0.0.1:18789"

    func machine() -> LinkMachine {
        let fake = self.fake
        return LinkMachine(logger: Logger(label: "test"), monotonicMs: { fake.monotonic },
                           newId: { fake.ids += 1; return "id-\(fake.ids)" })
    }

    func configuration(timeoutMs: Int? = nil) -> NetConfiguration {
        var configuration = NetConfiguration(
            url: url, tlsFingerprint: nil, minProtocol: 3, maxProtocol: 4,
            client: .init(id: "node-host", displayName: "n", version: "0", platform: "linux", deviceFamily: "Linux", mode: "node",
                          instanceId: "i"),
            role: "node", scopes: [], caps: ["system"], commands: ["system.run"], pathEnv: "/bin", deviceId: "dev", publicKey: "pk")
        configuration.handshakeTimeoutMs = timeoutMs
        return configuration
    }

    var target: GatewayTarget { GatewayTarget(url: url)! }

    /// The gateway's clock in its challenges.
    static let gatewayTs: Int64 = 1_700_000_000_123

    func challenge(_ nonce: String = "n1", ts: String = String(gatewayTs)) -> String {
        #"{"type":"event","event":"connect.challenge","payload":{"nonce":"\#(nonce)","ts":\#(ts)}}"#
    }

    /// Configures and opens attempt 1 up to the challenge; returns the sign request's id.
    func toSignature(_ m: inout LinkMachine) -> String {
        _ = m.handle(.configure(configuration()))
        _ = m.handle(.upgraded(attempt: 1))
        let actions = m.handle(.text(challenge(), attempt: 1))
        guard case let .toSupervisor(.signRequest(request))? = actions.last else {
            XCTFail("no sign request: \(actions)")
            return ""
        }
        return request.requestId
    }

    /// Runs the handshake to hello-ok on attempt 1.
    func linked(_ m: inout LinkMachine, tickIntervalMs: Int = 30_000) -> [LinkMachine.Action] {
        let requestId = toSignature(&m)
        _ = m.handle(.signed(SignReply(requestId: requestId, signature: "sig", auth: .init(token: "t", password: nil))))
        guard case let .awaitingHello(_, connectId) = m.state else {
            XCTFail("not awaiting hello: \(m.state)")
            return []
        }
        return m.handle(.text(#"{"type":"res","id":"\#(connectId)","ok":true,"payload":{"protocol":4,"policy":{"tickIntervalMs":\#(tickIntervalMs)}}}"#,
                              attempt: 1))
    }

    func rejection(_ detail: String, retryAfterMs: Int? = nil, requestId: String? = nil) -> String {
        var details = #""code":"\#(detail)""#
        if let requestId { details += #","requestId":"\#(requestId)""# }
        let retry = retryAfterMs.map { #","retryAfterMs":\#($0)"# } ?? ""
        return #"{"type":"res","id":"CONNECT","ok":false,"error":{"code":"UNAVAILABLE","message":"refused","details":{\#(details)}\#(retry)}}"#
    }

    /// Answers the pending connect of attempt 1 with `text` (its id substituted).
    func answerConnect(_ m: inout LinkMachine, _ text: String) -> [LinkMachine.Action] {
        guard case let .awaitingHello(attempt, connectId) = m.state else {
            XCTFail("not awaiting hello: \(m.state)")
            return []
        }
        return m.handle(.text(text.replacingOccurrences(of: "CONNECT", with: connectId), attempt: attempt))
    }

    // MARK: Opening

    func testTheFirstConfigurationOpensAttemptOneAndReportsConnecting() {
        var m = machine()
        XCTAssertEqual(m.handle(.configure(configuration())), [
            .toSupervisor(.linkState(LinkState(phase: .connecting, detail: url))),
            .open(attempt: 1, target: target, pin: nil, handshakeTimeoutMs: nil),
        ])
        XCTAssertEqual(m.state, .connecting(attempt: 1))
    }

    func testEachOpeningPhaseHasItsDeadlineCappedByTheHandshakeBudget() {
        let cases: [(LinkMachine.AttemptPhase, Int?, Int)] = [
            (.tcpConnect, nil, 10_000), (.tlsHandshake, nil, 10_000), (.httpUpgrade, nil, 10_000),
            (.challenge, nil, 15_000), (.signature, nil, 10_000), (.hello, nil, 30_000),
            (.tlsHandshake, 2_000, 2_000), (.challenge, 2_000, 2_000), (.hello, 2_000, 30_000), (.signature, 2_000, 10_000),
        ]
        for (phase, cap, expected) in cases {
            XCTAssertEqual(phase.timeoutMs(cap: cap), expected, "\(phase) cap \(String(describing: cap))")
        }
    }

    func testAStalledOpeningAttemptIsAbandonedReportedAndRetriedWithBackoff() {
        var m = machine()
        _ = m.handle(.configure(configuration(timeoutMs: 3_000)))
        let armed = m.handle(.transportReached(.tlsHandshake, attempt: 1))
        XCTAssertEqual(armed, [.armDeadline(.opening(.tlsHandshake, attempt: 1, timeoutMs: 3_000))])
        let actions = m.handle(.deadlinePassed(.opening(.tlsHandshake, attempt: 1, timeoutMs: 3_000)))
        XCTAssertEqual(actions, [
            .toSupervisor(.linkState(LinkState(phase: .disconnected,
                                               detail: ConnectFailure.timedOut(phase: "TLS handshake", milliseconds: 3_000).sentence(for: target)))),
            .abandon(attempt: 1),
            .scheduleReconnect(afterMs: 1_000),
        ])
        XCTAssertEqual(m.state, .waiting)
        // A deadline of an attempt that is over does nothing.
        XCTAssertEqual(m.handle(.deadlinePassed(.opening(.tlsHandshake, attempt: 1, timeoutMs: 3_000))), [])
    }

    func testBackoffDoublesToThirtySecondsAndResetsOnHello() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        var delays: [Int] = []
        for attempt in 1...7 {
            for action in m.handle(.attemptFailed(attempt: attempt)) {
                if case let .scheduleReconnect(ms) = action { delays.append(ms) }
            }
            _ = m.handle(.reconnectDue)
        }
        XCTAssertEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000])
        XCTAssertEqual(m.attempt, 8)
    }

    func testAFailureOfAnOldAttemptDoesNotScheduleASecondReconnect() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        XCTAssertEqual(m.handle(.attemptFailed(attempt: 1)), [.scheduleReconnect(afterMs: 1_000)])
        XCTAssertEqual(m.handle(.attemptFailed(attempt: 1)), [])
    }

    // MARK: The handshake

    func testChallengeTimeoutClosesWith1008() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        let opened = m.handle(.upgraded(attempt: 1))
        let deadline = LinkMachine.Deadline.handshake(.challenge, attempt: 1, timeoutMs: 15_000, code: 1008, reason: "connect challenge timeout")
        XCTAssertEqual(opened, [.armDeadline(deadline)])
        XCTAssertEqual(m.handle(.deadlinePassed(deadline)), [
            .close(attempt: 1, code: 1008, reason: "connect challenge timeout"),
            .scheduleReconnect(afterMs: 1_000),
        ])
    }

    func testTheFirstFrameAdoptsTheConnectionBeforeTheUpgradeCompletes() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        let actions = m.handle(.text(challenge(), attempt: 1))
        XCTAssertEqual(actions.first, .armDeadline(.handshake(.challenge, attempt: 1, timeoutMs: 15_000, code: 1008,
                                                              reason: "connect challenge timeout")))
        XCTAssertEqual(actions.last, .toSupervisor(.signRequest(SignRequest(requestId: "id-1", nonce: "n1", signedAt: Self.gatewayTs, version: .v3))))
        // The late upgrade of the adopted attempt changes nothing.
        XCTAssertEqual(m.handle(.upgraded(attempt: 1)), [])
    }

    func testAChallengeWithoutNonceClosesWith1008() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        _ = m.handle(.upgraded(attempt: 1))
        let actions = m.handle(.text(#"{"type":"event","event":"connect.challenge","payload":{"nonce":"  "}}"#, attempt: 1))
        XCTAssertEqual(actions, [.cancelDeadline, .close(attempt: 1, code: 1008, reason: "connect challenge missing nonce"),
                                 .scheduleReconnect(afterMs: 1_000)])
    }

    func testAnOversizedFrameBeforeHelloClosesWith1009() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        _ = m.handle(.upgraded(attempt: 1))
        let big = String(repeating: "x", count: LinkMachine.preHelloMaxBytes + 1)
        XCTAssertEqual(m.handle(.text(big, attempt: 1)), [.cancelDeadline, .close(attempt: 1, code: 1009, reason: "preauth payload too large"),
                                                          .scheduleReconnect(afterMs: 1_000)])
    }

    func testARefusedSignatureClosesWith1008() {
        var m = machine()
        let requestId = toSignature(&m)
        XCTAssertEqual(m.handle(.signed(SignReply(requestId: "other", refused: "x"))), [], "a reply to another request is ignored")
        XCTAssertEqual(m.handle(.signed(SignReply(requestId: requestId, refused: "nonce refused"))), [
            .cancelDeadline, .close(attempt: 1, code: 1008, reason: "connect failed"), .scheduleReconnect(afterMs: 1_000),
        ])
    }

    func testHelloOkLinksAndStartsTheWatchdog() {
        var m = machine()
        XCTAssertEqual(m.handle(.nodeEvent(NodeEvent(event: "node.host.stats", payloadJSON: "{}"))), [], "produced while down: dropped")
        let actions = linked(&m, tickIntervalMs: 5_000)
        XCTAssertEqual(m.state, .linked(attempt: 1))
        XCTAssertEqual(Array(actions.prefix(4)), [
            .cancelDeadline,
            .toSupervisor(.helloOk(HelloSummary(protocol: 4, deviceToken: nil, role: nil, scopes: nil, tickIntervalMs: 5_000, serverVersion: nil))),
            .toSupervisor(.linkState(LinkState(phase: .connected, detail: url))),
            .startWatchdog(attempt: 1, intervalMs: 5_000),
        ])
        XCTAssertEqual(actions.count, 4, "nothing of an earlier connection is sent")
    }

    func testAHelloAfterTheWatchdogReconnectIsForTheNewAttemptOnly() {
        var m = machine()
        _ = linked(&m, tickIntervalMs: 1_000)
        fake.monotonic += 2_001
        XCTAssertEqual(m.handle(.watchdogTick(attempt: 1)), [
            .stopWatchdog, .close(attempt: 1, code: 4000, reason: "tick timeout"), .scheduleReconnect(afterMs: 1_000),
        ])
        // A frame or close still arriving on the dropped connection changes nothing.
        XCTAssertEqual(m.handle(.text(#"{"type":"res","id":"id-2","ok":true,"payload":{}}"#, attempt: 1)), [])
        XCTAssertEqual(m.handle(.closed(attempt: 1)), [])
        XCTAssertEqual(m.handle(.watchdogTick(attempt: 1)), [])
        XCTAssertEqual(m.handle(.reconnectDue).last, .open(attempt: 2, target: target, pin: nil, handshakeTimeoutMs: nil))
    }

    func testTheWatchdogToleratesTwoTickIntervalsOfSilence() {
        var m = machine()
        _ = linked(&m, tickIntervalMs: 1_000)
        fake.monotonic += 2_000
        XCTAssertEqual(m.handle(.watchdogTick(attempt: 1)), [])
        _ = m.handle(.text(#"{"type":"event","event":"tick"}"#, attempt: 1))
        fake.monotonic += 1_500
        XCTAssertEqual(m.handle(.watchdogTick(attempt: 1)), [])
    }

    // MARK: Refusals

    func testPairingRequiredPausesAtTheGatewaysPaceOrTwoSeconds() {
        let cases: [(Int?, Int)] = [(nil, LinkMachine.pairingRetryMs), (7_000, 7_000)]
        for (retryAfter, expected) in cases {
            var m = machine()
            let requestId = toSignature(&m)
            _ = m.handle(.signed(SignReply(requestId: requestId, signature: "s", auth: .init(token: "t", password: nil))))
            let actions = answerConnect(&m, rejection("PAIRING_REQUIRED", retryAfterMs: retryAfter, requestId: "req-9"))
            XCTAssertEqual(actions.first, .toSupervisor(.linkState(LinkState(phase: .pairingPending, detail: "req-9"))))
            guard case .toSupervisor(.connectRejected(let rejection))? = actions.dropFirst().first else { return XCTFail("\(actions)") }
            XCTAssertEqual(rejection.requestId, "req-9")
            XCTAssertEqual(Array(actions.suffix(3)), [.cancelDeadline, .close(attempt: 1, code: 1000, reason: "connect rejected"),
                                                      .scheduleReconnect(afterMs: expected)], "retryAfter \(String(describing: retryAfter))")
        }
    }

    func testAnInvalidV3SignatureIsRetriedOnceAtOnceWithV2() {
        var m = machine()
        _ = toSignature(&m)
        _ = m.handle(.signed(SignReply(requestId: "id-1", signature: "s", auth: .init(token: "t", password: nil))))
        let first = answerConnect(&m, rejection("DEVICE_AUTH_SIGNATURE_INVALID"))
        XCTAssertEqual(first.last, .scheduleReconnect(afterMs: 0))
        XCTAssertEqual(m.signatureVersion, .v2)
        _ = m.handle(.reconnectDue)
        _ = m.handle(.upgraded(attempt: 2))
        guard case .toSupervisor(.signRequest(let request))? = m.handle(.text(challenge("n2"), attempt: 2)).last else {
            return XCTFail("no second sign request")
        }
        XCTAssertEqual(request.version, .v2)
        _ = m.handle(.signed(SignReply(requestId: request.requestId, signature: "s", auth: .init(token: "t", password: nil))))
        let second = answerConnect2(&m, rejection("DEVICE_AUTH_SIGNATURE_INVALID"))
        XCTAssertEqual(second.last, .scheduleReconnect(afterMs: 1_000), "not again: the usual backoff")
        XCTAssertEqual(m.signatureVersion, .v3)
    }

    func answerConnect2(_ m: inout LinkMachine, _ text: String) -> [LinkMachine.Action] {
        guard case let .awaitingHello(attempt, connectId) = m.state else { XCTFail("\(m.state)"); return [] }
        return m.handle(.text(text.replacingOccurrences(of: "CONNECT", with: connectId), attempt: attempt))
    }

    // MARK: Linked traffic

    func testInvokesAreBoundedAndAMalformedOneIsAnswered() {
        var m = machine()
        _ = linked(&m)
        func invoke(_ id: String) -> String {
            #"{"type":"event","event":"node.invoke.request","payload":{"id":"\#(id)","nodeId":"n","command":"system.which","paramsJSON":"{}"}}"#
        }
        guard case .toSupervisor(.invoke(let request))? = m.handle(.text(invoke("i1"), attempt: 1)).last else { return XCTFail("not forwarded") }
        XCTAssertEqual(request.id, "i1")
        XCTAssertEqual(m.invokesInFlight, 1)
        for index in 1..<IPCLimits.maxInFlight { _ = m.handle(.text(invoke("i\(index + 1)"), attempt: 1)) }
        XCTAssertEqual(m.invokesInFlight, IPCLimits.maxInFlight)
        guard case let .send(busy, attempt: 1)? = m.handle(.text(invoke("one-more"), attempt: 1)).last else { return XCTFail("not answered busy") }
        XCTAssertEqual(busy["params"]?["error"]?["message"]?.stringValue, "node is busy: too many invokes in flight")
        _ = m.handle(.invokeResult(InvokeResult(id: "i1", nodeId: "n", ok: true, payloadJSON: "{}", error: nil)))
        XCTAssertEqual(m.invokesInFlight, IPCLimits.maxInFlight - 1)
        let malformed = #"{"type":"event","event":"node.invoke.request","payload":{"id":"bad","nodeId":"n"}}"#
        let actions = m.handle(.text(malformed, attempt: 1))
        XCTAssertEqual(actions.first, .scheduleDroppedReport(afterMs: 1_000))
        guard case let .send(answer, attempt: 1)? = actions.last else { return XCTFail("malformed invoke not answered") }
        XCTAssertEqual(answer["params"]?["id"]?.stringValue, "bad")
        XCTAssertEqual(answer["params"]?["error"]?["code"]?.stringValue, "INVALID_REQUEST")
        XCTAssertEqual(m.handle(.droppedReportDue), [.toSupervisor(.framesDropped(FramesDropped(count: 1)))])
    }

    func testEventsAndResultsWhileDownAreDropped() {
        var m = machine()
        _ = linked(&m)
        _ = m.handle(.text(invokeFrame("i1"), attempt: 1))
        _ = m.handle(.closed(attempt: 1))
        XCTAssertEqual(m.handle(.nodeEvent(NodeEvent(event: "node.host.stats", payloadJSON: "{}"))), [])
        XCTAssertEqual(m.handle(.invokeResult(InvokeResult(id: "i1", nodeId: "n", ok: true, payloadJSON: "{}", error: nil))), [])
    }

    func testReconfiguringStartsOverAtOnce() {
        var m = machine()
        _ = linked(&m)
        XCTAssertEqual(m.handle(.configure(configuration())), [
            .stopWatchdog, .close(attempt: 1, code: 1000, reason: "reconfigured"), .scheduleReconnect(afterMs: 0),
        ])
    }

    func testShutdownSaysGoodbyeOnTheOpenConnectionAndNeverReconnects() {
        var m = machine()
        _ = linked(&m)
        XCTAssertEqual(m.handle(.shutdown), [.goodbye(attempt: 1)])
        XCTAssertEqual(m.handle(.closed(attempt: 1)), [])
        XCTAssertEqual(m.handle(.reconnectDue), [])
        var idle = machine()
        _ = idle.handle(.configure(configuration()))
        _ = idle.handle(.attemptFailed(attempt: 1))
        XCTAssertEqual(idle.handle(.shutdown), [.cancelReconnect, .goodbye(attempt: nil)])
    }

    func testReconfiguringOrStoppingWhileAnAttemptOpensClosesItsTransport() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        XCTAssertEqual(m.handle(.configure(configuration())), [.abandon(attempt: 1), .scheduleReconnect(afterMs: 0)])
        _ = m.handle(.reconnectDue)
        XCTAssertEqual(m.handle(.shutdown), [.abandon(attempt: 2), .goodbye(attempt: nil)])
    }

    func invokeFrame(_ id: String) -> String {
        #"{"type":"event","event":"node.invoke.request","payload":{"id":"\#(id)","nodeId":"n","command":"system.run","paramsJSON":"{}"}}"#
    }

    func testACancelForAnActiveInvokeReachesTheSupervisorAndFencesItsResult() {
        var m = machine()
        _ = linked(&m)
        _ = m.handle(.text(invokeFrame("i1"), attempt: 1))
        let cancel = #"{"type":"event","event":"node.invoke.cancel","payload":{"invokeId":"i1","nodeId":"n"}}"#
        XCTAssertEqual(m.handle(.text(cancel, attempt: 1)), [.toSupervisor(.invokeCancel(InvokeCancel(invokeId: "i1")))])
        XCTAssertEqual(m.handle(.text(cancel, attempt: 1)), [], "a second cancel: the invoke is no longer active")
        XCTAssertEqual(m.handle(.text(#"{"type":"event","event":"node.invoke.cancel","payload":{"invokeId":"zz","nodeId":"n"}}"#,
                                      attempt: 1)), [], "unknown id: ignored")
        XCTAssertEqual(m.handle(.text(#"{"type":"event","event":"node.invoke.cancel","payload":{"invokeId":"i1"}}"#, attempt: 1)), [],
                       "without nodeId: ignored")
        XCTAssertEqual(m.handle(.invokeResult(InvokeResult(id: "i1", nodeId: "n", ok: true, payloadJSON: "{}", error: nil))), [],
                       "a late result of a cancelled invoke is not published")
    }

    // MARK: A setup code's endpoints

    func testAnEndpointUnreachableBeforeConnectMovesOnAndTheWinnerIsKept() {
        var m = machine()
        var configuration = configuration()
        configuration.fallbacks = [.init(url: "wss://b.example", tlsFingerprint: String(repeating: "b", count: 64)),
                                   .init(url: "ws://c.example:9", tlsFingerprint: nil)]
        _ = m.handle(.configure(configuration))
        XCTAssertEqual(m.currentEndpoint?.url, url)
        XCTAssertEqual(m.handle(.attemptFailed(attempt: 1)), [.scheduleReconnect(afterMs: 0)], "the next one, at once")
        let second = m.handle(.reconnectDue)
        XCTAssertEqual(second.last, .open(attempt: 2, target: GatewayTarget(url: "wss://b.example")!, pin: String(repeating: "b", count: 64),
                                          handshakeTimeoutMs: nil))
        // Closed after the upgrade but before `connect`: still the next one.
        _ = m.handle(.upgraded(attempt: 2))
        XCTAssertEqual(m.handle(.closed(attempt: 2)).last, .scheduleReconnect(afterMs: 0))
        _ = m.handle(.reconnectDue)
        XCTAssertEqual(m.currentEndpoint?.url, "ws://c.example:9")
        // After the last one: the usual backoff, then the first again (not the last forever).
        XCTAssertEqual(m.handle(.attemptFailed(attempt: 3)), [.scheduleReconnect(afterMs: 1_000)])
        XCTAssertEqual(m.candidate, 0)
        XCTAssertEqual(m.handle(.reconnectDue).last, .open(attempt: 4, target: GatewayTarget(url: url)!, pin: nil, handshakeTimeoutMs: nil))
        XCTAssertEqual(m.handle(.attemptFailed(attempt: 4)), [.scheduleReconnect(afterMs: 0)], "and round again")
        XCTAssertEqual(m.candidate, 1)
    }

    func testOnceConnectWasSentOrAHelloCameTheEndpointStays() {
        var m = machine()
        var configuration = configuration()
        configuration.fallbacks = [.init(url: "ws://b.example:1", tlsFingerprint: nil)]
        _ = m.handle(.configure(configuration))
        let requestId = toSignatureOnCurrentConfiguration(&m)
        _ = m.handle(.signed(SignReply(requestId: requestId, signature: "s", auth: .init(token: "t", password: nil))))
        XCTAssertEqual(m.handle(.closed(attempt: 1)).last, .scheduleReconnect(afterMs: 1_000), "connect was sent: no fallback")
        XCTAssertEqual(m.candidate, 0)
    }

    func toSignatureOnCurrentConfiguration(_ m: inout LinkMachine) -> String {
        _ = m.handle(.upgraded(attempt: 1))
        guard case let .toSupervisor(.signRequest(request))? = m.handle(.text(challenge(), attempt: 1)).last else {
            XCTFail("no sign request")
            return ""
        }
        return request.requestId
    }

    // MARK: Supervisor requests and pairing events

    func testASupervisorRequestIsWrittenAndItsResponseComesBackUnderItsCallId() {
        var m = machine()
        XCTAssertEqual(m.handle(.gatewayCall(GatewayCall(callId: "c0", method: "node.runnerInventory.update", paramsJSON: "{}"))),
                       [.toSupervisor(.gatewayReply(.unavailable("c0", "gateway not connected")))], "not linked: answered at once")
        _ = linked(&m)
        let actions = m.handle(.gatewayCall(GatewayCall(callId: "c1", method: "node.runnerInventory.update",
                                                        paramsJSON: #"{"protocolFeatures":[]}"#)))
        guard case let .send(frame, attempt: 1)? = actions.first, actions.count == 1, let frameId = frame["id"]?.stringValue else {
            return XCTFail("no request frame: \(actions)")
        }
        XCTAssertEqual(frame["method"]?.stringValue, "node.runnerInventory.update")
        XCTAssertEqual(frame["params"]?["protocolFeatures"], .array([]))
        XCTAssertEqual(m.handle(.text(#"{"type":"res","id":"\#(frameId)","ok":false,"error":{"code":"UNAVAILABLE","message":"wait","details":{}}}"#,
                                      attempt: 1)),
                       [.toSupervisor(.gatewayReply(GatewayReply(callId: "c1", ok: false, payloadJSON: nil,
                                                                 error: WireError(code: "UNAVAILABLE", message: "wait"))))])
        XCTAssertEqual(m.handle(.text(#"{"type":"res","id":"\#(frameId)","ok":true,"payload":{}}"#, attempt: 1)), [],
                       "a second response to the same frame is not a reply")
        XCTAssertEqual(m.handle(.gatewayCall(GatewayCall(callId: "c2", method: "m", paramsJSON: "{nope"))),
                       [.toSupervisor(.gatewayReply(GatewayReply(callId: "c2", ok: false, payloadJSON: nil,
                                                                 error: WireError(code: "INVALID_REQUEST", message: "params are not JSON"))))])
    }

    func testRequestsAreBoundedAndFailWithTheirConnection() {
        var m = machine()
        _ = linked(&m)
        for n in 0..<LinkMachine.maxPendingCalls {
            _ = m.handle(.gatewayCall(GatewayCall(callId: "c\(n)", method: "m", paramsJSON: "{}")))
        }
        XCTAssertEqual(m.handle(.gatewayCall(GatewayCall(callId: "over", method: "m", paramsJSON: "{}"))),
                       [.toSupervisor(.gatewayReply(.unavailable("over", "too many gateway requests in flight")))])
        let replies = m.handle(.closed(attempt: 1)).compactMap { action -> GatewayReply? in
            if case let .toSupervisor(.gatewayReply(reply)) = action { return reply }
            return nil
        }
        XCTAssertEqual(replies.count, LinkMachine.maxPendingCalls)
        XCTAssertTrue(replies.allSatisfy { $0.error == WireError(code: "UNAVAILABLE", message: "gateway connection closed") })
        XCTAssertTrue(m.pendingCalls.isEmpty)
    }

    func testPairingEventsReachTheSupervisorWithTheirFieldsBounded() {
        var m = machine()
        _ = linked(&m)
        let long = String(repeating: "x", count: 500)
        let resolved = #"{"type":"event","event":"node.pair.resolved","payload":{"requestId":"\#(long)","nodeId":"dev","decision":"approved","ts":1}}"#
        XCTAssertEqual(m.handle(.text(resolved, attempt: 1)), [
            .toSupervisor(.pairingEvent(PairingEvent(event: "node.pair.resolved", requestId: String(repeating: "x", count: 128),
                                                     nodeId: "dev", decision: "approved"))),
        ])
        XCTAssertEqual(m.handle(.text(#"{"type":"event","event":"node.pair.requested","payload":{"requestId":"r2","nodeId":"dev"}}"#, attempt: 1)),
                       [.toSupervisor(.pairingEvent(PairingEvent(event: "node.pair.requested", requestId: "r2", nodeId: "dev", decision: nil)))])
    }

    func testARedeliveredIdCountsOnceAndLosingTheConnectionCancelsEverything() {
        var m = machine()
        _ = linked(&m)
        _ = m.handle(.text(invokeFrame("i1"), attempt: 1))
        var replacement = InvokeRequest(id: "i1", nodeId: "n", command: "system.run", paramsJSON: "{}", timeoutMs: nil, idempotencyKey: nil)
        replacement.serial = 2
        XCTAssertEqual(m.handle(.text(invokeFrame("i1"), attempt: 1)), [
            .toSupervisor(.invokeCancel(InvokeCancel(invokeId: "i1"))),
            .toSupervisor(.invoke(replacement)),
        ], "the original is cancelled before the replacement is counted")
        // The original's result, already on its way when the cancel went out, is not the replacement's.
        var late = InvokeResult(id: "i1", nodeId: "n", ok: true, payloadJSON: "{}", error: nil)
        late.serial = 1
        XCTAssertEqual(m.handle(.invokeResult(late)), [])
        XCTAssertEqual(m.invokesInFlight, 1, "the replacement is still active")
        var current = late
        current.serial = 2
        XCTAssertEqual(m.handle(.invokeResult(current)).count, 1, "the replacement's result is published")
        XCTAssertEqual(m.invokesInFlight, 0)
        _ = m.handle(.text(invokeFrame("i1"), attempt: 1))
        _ = m.handle(.text(invokeFrame("i2"), attempt: 1))
        XCTAssertEqual(m.invokesInFlight, 2)
        let actions = m.handle(.closed(attempt: 1))
        XCTAssertEqual(actions.first, .toSupervisor(.invokeCancel(InvokeCancel(invokeId: nil))))
        XCTAssertEqual(m.invokesInFlight, 0)
        XCTAssertEqual(m.handle(.invokeResult(InvokeResult(id: "i2", nodeId: "n", ok: true, payloadJSON: "{}", error: nil))), [])
    }

    func testTheSignatureUsesTheChallengesTimeAndAChallengeWithoutOneIsRefused() {
        var m = machine()
        _ = m.handle(.configure(configuration()))
        _ = m.handle(.upgraded(attempt: 1))
        guard case .toSupervisor(.signRequest(let request))? = m.handle(.text(challenge(ts: "1700000000999"), attempt: 1)).last else {
            return XCTFail("no sign request")
        }
        XCTAssertEqual(request.signedAt, 1_700_000_000_999, "signedAt is the challenge's ts, not our clock")
        for bad in ["null", "-1", "1.5", "\"1700000000000\"", "1e300"] {
            var m = machine()
            _ = m.handle(.configure(configuration()))
            _ = m.handle(.upgraded(attempt: 1))
            XCTAssertEqual(m.handle(.text(challenge(ts: bad), attempt: 1)),
                           [.cancelDeadline, .close(attempt: 1, code: 1008, reason: "connect failed"),
                            .scheduleReconnect(afterMs: LinkMachine.invalidChallengeRetryMs)], bad)
        }
        var missing = machine()
        _ = missing.handle(.configure(configuration()))
        _ = missing.handle(.upgraded(attempt: 1))
        XCTAssertEqual(missing.handle(.text(#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n"}}"#, attempt: 1)).dropFirst().first,
                       .close(attempt: 1, code: 1008, reason: "connect failed"))
    }

    func testInputForAnInvokeWithoutAnInputChannelIsDroppedQuietly() {
        var m = machine()
        _ = linked(&m)
        _ = m.handle(.text(invokeFrame("i1"), attempt: 1))
        let input = #"{"type":"event","event":"node.invoke.input","payload":{"id":"i1","nodeId":"n","seq":0,"payloadJSON":"{}"}}"#
        XCTAssertEqual(m.handle(.text(input, attempt: 1)), [], "no answer, no close, nothing to the Supervisor")
        XCTAssertEqual(m.state, .linked(attempt: 1))
        XCTAssertEqual(m.invokesInFlight, 1)
    }

    func testAStartingGatewayIsAskedAgainShortlyAndQuietly() {
        for (retryAfter, expected) in [(nil, 500), (50, 100), (300, 300), (60_000, 2_000)] as [(Int?, Int)] {
            var m = machine()
            let requestId = toSignature(&m)
            _ = m.handle(.signed(SignReply(requestId: requestId, signature: "s", auth: .init(token: "t", password: nil))))
            let retry = retryAfter.map { #","retryAfterMs":\#($0)"# } ?? ""
            let actions = answerConnect(&m, #"{"type":"res","id":"CONNECT","ok":false,"error":{"code":"UNAVAILABLE","message":"gateway starting; retry shortly","retryable":true,"details":{"reason":"startup-sidecars"}\#(retry)}}"#)
            XCTAssertEqual(actions, [.cancelDeadline, .close(attempt: 1, code: 1013, reason: "gateway starting"),
                                     .scheduleReconnect(afterMs: expected)], "retryAfterMs \(String(describing: retryAfter))")
        }
        // Not retryable: an ordinary refusal (reported to the Supervisor, closed 1000, the usual backoff).
        var m = machine()
        let requestId = toSignature(&m)
        _ = m.handle(.signed(SignReply(requestId: requestId, signature: "s", auth: .init(token: "t", password: nil))))
        let actions = answerConnect(&m, #"{"type":"res","id":"CONNECT","ok":false,"error":{"code":"UNAVAILABLE","message":"gateway starting; retry shortly","details":{"reason":"startup-sidecars"}}}"#)
        XCTAssertTrue(actions.contains(.close(attempt: 1, code: 1000, reason: "connect rejected")), "\(actions)")
    }
}
