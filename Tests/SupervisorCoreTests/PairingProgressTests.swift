import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// Both pairing steps, event by event: what is logged (once per state, with the operator's
/// next command), when the gateway is asked about the command surface, and the retry pace.
final class PairingProgressTests: XCTestCase {
    static let awaiting = "node capability surface is awaiting operator approval; run `openclaw nodes approve np-7f3a` "
        + "(see `openclaw nodes pending`), then this node retries automatically"

    func reply(_ code: String, _ message: String) -> Result<GatewayReply, WireError> {
        .success(GatewayReply(callId: "c", ok: false, payloadJSON: nil, error: WireError(code: code, message: message)))
    }

    func testTheGatewaysAnswersAreClassifiedAsUpstreamWordsThem() {
        XCTAssertEqual(SurfaceAnswer(.success(GatewayReply(callId: "c", ok: true, payloadJSON: #"{"nodeId":"d"}"#, error: nil))), .approved)
        XCTAssertEqual(SurfaceAnswer(reply("UNAVAILABLE", Self.awaiting)), .pending(requestId: "np-7f3a"))
        XCTAssertEqual(SurfaceAnswer(reply("UNAVAILABLE", "node runner inventory publication is not current; retry after pairing completes")),
                       .pending(requestId: nil))
        XCTAssertEqual(SurfaceAnswer(reply("UNAVAILABLE", "node runner inventory publication lost its pairing ownership; retry")),
                       .retry("node runner inventory publication lost its pairing ownership; retry"))
        XCTAssertEqual(SurfaceAnswer(.failure(WireError(code: "TIMEOUT", message: "no answer in time"))), .retry("no answer in time"))
        XCTAssertEqual(SurfaceAnswer(reply("INVALID_REQUEST", "unknown method: node.runnerInventory.update")),
                       .unsupported("unknown method: node.runnerInventory.update"))
        XCTAssertEqual(SurfaceAnswer(reply("INVALID_REQUEST", "unauthorized role: node")), .unsupported("unauthorized role: node"))
        XCTAssertEqual(SurfaceAnswer(reply("INVALID_REQUEST", "invalid node runner inventory")),
                       .refused("INVALID_REQUEST: invalid node runner inventory"))
    }

    func testTheRequestIdIsReadOnlyInUpstreamsShape() {
        XCTAssertEqual(SurfaceAnswer.requestId(in: "run `openclaw nodes approve a.b:c-1_2`, then"), "a.b:c-1_2")
        XCTAssertNil(SurfaceAnswer.requestId(in: "run `openclaw nodes approve `"))
        XCTAssertNil(SurfaceAnswer.requestId(in: "run `openclaw nodes approve -x`"), "must start with a letter or digit")
        XCTAssertNil(SurfaceAnswer.requestId(in: "run `openclaw nodes approve \(String(repeating: "a", count: 129))`"))
        XCTAssertNil(SurfaceAnswer.requestId(in: "no command here"))
    }

    func testDevicePendingThenSurfacePendingThenApprovedLogsEachStateOnce() {
        var p = PairingProgress(deviceId: "dev")
        XCTAssertEqual(p.status.state, .unknown)
        XCTAssertEqual(p.deviceRequired(requestId: "dr-1"),
                       [.log(.notice, "pairing required: approve this node on the gateway with: openclaw devices approve dr-1")])
        XCTAssertEqual(p.deviceRequired(requestId: "dr-1"), [], "the same request: logged once")
        XCTAssertEqual(p.status.state, .devicePending)
        XCTAssertEqual(p.status.deviceRequestId, "dr-1")

        XCTAssertEqual(p.connected(), [.askSurface])
        XCTAssertEqual(p.status.state, .paired)
        XCTAssertNil(p.status.deviceRequestId)
        XCTAssertEqual(p.answered(SurfaceAnswer(reply("UNAVAILABLE", Self.awaiting))), [
            .log(.notice, "device paired; command surface pending approval: run 'openclaw nodes approve np-7f3a' on the gateway host "
                 + "(see 'openclaw nodes pending')"),
            .scheduleRetry(afterMs: 5_000),
        ])
        XCTAssertEqual(p.status.state, .surfacePending)
        XCTAssertEqual(p.status.surfaceRequestId, "np-7f3a")
        XCTAssertEqual(p.retryDue(), [.askSurface])
        XCTAssertEqual(p.answered(.pending(requestId: "np-7f3a")), [.scheduleRetry(afterMs: 10_000)], "unchanged: not logged again")
        XCTAssertEqual(p.retryDue(), [.askSurface])
        XCTAssertEqual(p.answered(.approved), [.log(.notice, "command surface approved; the gateway now routes this node's commands")])
        XCTAssertEqual(p.status.state, .paired)
        XCTAssertNil(p.status.surfaceRequestId)
    }

    func testAPendingSurfaceIsAskedOnASlowCappedBackoffNeverEveryFiveSecondsForever() {
        var p = PairingProgress(deviceId: "dev")
        _ = p.connected()
        var delays: [Int] = []
        for _ in 0..<8 {
            for effect in p.answered(.pending(requestId: "np-1")) {
                if case let .scheduleRetry(afterMs) = effect { delays.append(afterMs) }
            }
            XCTAssertEqual(p.retryDue(), [.askSurface])
        }
        XCTAssertEqual(delays, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000, 60_000])
    }

    func testAnApprovalSignalAsksAtOnceAndResetsThePace() {
        var p = PairingProgress(deviceId: "dev")
        _ = p.connected()
        _ = p.answered(.pending(requestId: "np-1"))
        _ = p.retryDue()
        XCTAssertEqual(p.answered(.pending(requestId: "np-1")), [.scheduleRetry(afterMs: 10_000)])
        XCTAssertEqual(p.invokeArrived(), [.cancelRetry, .askSurface], "an invoke means some command was approved")
        XCTAssertEqual(p.invokeArrived(), [], "one question at a time")
        XCTAssertEqual(p.answered(.pending(requestId: "np-1")), [.scheduleRetry(afterMs: 5_000)])
        XCTAssertEqual(p.gatewayEvent(PairingEvent(event: "node.pair.resolved", requestId: "np-1", nodeId: "other", decision: "approved")), [],
                       "another node's approval")
        XCTAssertEqual(p.gatewayEvent(PairingEvent(event: "node.pair.resolved", requestId: "np-1", nodeId: "dev", decision: "approved")),
                       [.cancelRetry, .askSurface])
        XCTAssertEqual(p.answered(.approved), [.log(.notice, "command surface approved; the gateway now routes this node's commands")])
        XCTAssertEqual(p.invokeArrived(), [], "nothing to learn once approved")
    }

    func testARejectedSurfaceRequestIsLoggedWithTheWayForward() {
        var p = PairingProgress(deviceId: "dev")
        _ = p.connected()
        _ = p.answered(.pending(requestId: "np-1"))
        XCTAssertEqual(p.gatewayEvent(PairingEvent(event: "node.pair.resolved", requestId: "np-0", nodeId: "dev", decision: "rejected")), [],
                       "a superseded request")
        XCTAssertEqual(p.gatewayEvent(PairingEvent(event: "node.pair.resolved", requestId: "np-1", nodeId: "dev", decision: "rejected")), [
            .log(.warning, "command surface request np-1 was rejected on the gateway; this node's commands stay unavailable until an "
                 + "operator approves a new request (the gateway files one when the node reconnects: openclaw-node restart)"),
        ])
        XCTAssertEqual(p.gatewayEvent(PairingEvent(event: "node.pair.requested", requestId: "np-2", nodeId: "dev", decision: nil)), [
            .log(.notice, "device paired; command surface pending approval: run 'openclaw nodes approve np-2' on the gateway host "
                 + "(see 'openclaw nodes pending')"),
        ])
    }

    func testLosingTheConnectionStopsAskingAndTheNextHelloAsksAgain() {
        var p = PairingProgress(deviceId: "dev")
        _ = p.connected()
        _ = p.answered(.pending(requestId: nil))
        XCTAssertEqual(p.status.state, .surfacePending)
        XCTAssertNil(p.status.surfaceRequestId)
        XCTAssertEqual(p.disconnected(), [.cancelRetry])
        XCTAssertEqual(p.connected(), [.askSurface])
        XCTAssertEqual(p.status.state, .surfacePending, "still pending until the gateway says otherwise")
    }

    func testAGatewayWithoutSurfaceReportsIsAskedOnceAndLeftAlone() {
        var p = PairingProgress(deviceId: "dev")
        _ = p.connected()
        XCTAssertEqual(p.answered(.unsupported("unknown method: node.runnerInventory.update")), [
            .log(.debug, "gateway does not report command-surface approval (node.runnerInventory.update: unknown method: node.runnerInventory.update)"),
        ])
        XCTAssertEqual(p.status.state, .paired)
    }

    func testADevicePendingAfterAPairedSurfaceForgetsTheSurfaceRequest() {
        var p = PairingProgress(deviceId: "dev")
        _ = p.connected()
        _ = p.answered(.pending(requestId: "np-1"))
        _ = p.disconnected()
        XCTAssertEqual(p.deviceRequired(requestId: nil),
                       [.log(.notice, "pairing required: approve this node on the gateway ('openclaw devices list' shows its request)")])
        XCTAssertEqual(p.status.state, .devicePending)
        XCTAssertNil(p.status.surfaceRequestId)
    }
}
