@testable import GatewayProtocol
import OpenClawIPC
import XCTest

/// Issue 14 finding 5: every invoke whose id can be read gets an answer.
final class GatewayFramesTests: XCTestCase {
    func payload(_ text: String) -> JSONValue? { try? JSONValue.parse(Array(text.utf8)) }

    func testAnInvokeWithAnInfiniteTimeoutIsRejectedWithItsIds() {
        let result = GatewayFrames.invokeRequest(from: payload(#"{"id":" a ","nodeId":"n","command":"system.run","timeoutMs":1e400}"#))
        XCTAssertEqual(result, .failure(GatewayFrames.InvokeRejection(
            id: "a", nodeId: "n", message: "INVALID_REQUEST: timeoutMs must be a non-negative finite number")))
        for bad in ["-1", "\"5\"", "true", "[]"] {
            guard case let .failure(rejection) = GatewayFrames.invokeRequest(from: payload(#"{"id":"a","nodeId":"n","command":"c","timeoutMs":\#(bad)}"#)) else {
                return XCTFail(bad)
            }
            XCTAssertEqual(rejection.message, "INVALID_REQUEST: timeoutMs must be a non-negative finite number")
        }
    }

    func testMissingFieldsAreNamed() {
        XCTAssertEqual(GatewayFrames.invokeRequest(from: payload(#"{"nodeId":"n","command":"c"}"#)),
                       .failure(.init(id: nil, nodeId: "n", message: "INVALID_REQUEST: id required")))
        XCTAssertEqual(GatewayFrames.invokeRequest(from: payload(#"{"id":"a","command":"c"}"#)),
                       .failure(.init(id: "a", nodeId: nil, message: "INVALID_REQUEST: nodeId required")))
        XCTAssertEqual(GatewayFrames.invokeRequest(from: payload(#"{"id":"a","nodeId":"n","command":"  "}"#)),
                       .failure(.init(id: "a", nodeId: "n", message: "INVALID_REQUEST: command required")))
        XCTAssertEqual(GatewayFrames.invokeRequest(from: .string("x")),
                       .failure(.init(id: nil, nodeId: nil, message: "INVALID_REQUEST: invoke payload must be an object")))
    }

    func testAValidInvokeKeepsItsFields() throws {
        let request = try GatewayFrames.invokeRequest(from: payload(
            #"{"id":"a","nodeId":"n","command":"system.which","params":{"bins":["sh"]},"timeoutMs":1500,"idempotencyKey":"k"}"#)).get()
        XCTAssertEqual(request, InvokeRequest(id: "a", nodeId: "n", command: "system.which", paramsJSON: #"{"bins":["sh"]}"#,
                                              timeoutMs: 1500, idempotencyKey: "k"))
    }

    func testAVeryLongInvokeTimeoutIsClampedToATimerSafeValue() throws {
        let request = try GatewayFrames.invokeRequest(from: payload(#"{"id":"a","nodeId":"n","command":"c","timeoutMs":1e15}"#)).get()
        XCTAssertEqual(request.timeoutMs, 2_147_483_647, "not the 30 s default of an absent timeout")
        XCTAssertEqual(try GatewayFrames.invokeRequest(from: payload(#"{"id":"a","nodeId":"n","command":"c","timeoutMs":0}"#)).get().timeoutMs, 0)
    }

    func testTheIdOfAnUnreadableInvokeFrameIsRecovered() {
        let frame = #"{"type":"event","event":"node.invoke.request","payload":{"id" : "inv-1","nodeId":"node-7","paramsJSON":"{}",,}}"#
        let recovered = GatewayFrames.unreadableInvoke(frame)
        XCTAssertEqual(recovered?.id, "inv-1")
        XCTAssertEqual(recovered?.nodeId, "node-7")
        XCTAssertNil(GatewayFrames.unreadableInvoke(#"{"type":"event","event":"tick","payload":{"id":"x"},,}"#))
        XCTAssertNil(GatewayFrames.unreadableInvoke(#"{"type":"event","event":"node.invoke.request","payload":{"id":"a\"b"}"#),
                     "an id with escapes is not guessed at")
        XCTAssertNil(GatewayFrames.unreadableInvoke("garbage"))
    }
}
