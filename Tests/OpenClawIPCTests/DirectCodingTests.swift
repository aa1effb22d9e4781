import FoundationEssentials
import NIOCore
import XCTest
@testable import OpenClawIPC

/// The invoke path's messages skip `Codable` (`DirectCoding.swift`); both paths must agree
/// byte for meaning, and a malformed payload must still be explained by `Codable`.
final class DirectCodingTests: XCTestCase {
    static let toSupervisor: [NetToSupervisor] = [
        .invoke(InvokeRequest(id: "i", nodeId: "n", command: "system.run", paramsJSON: #"{"command":["/bin/echo","a/b"]}"#,
                              timeoutMs: 5, idempotencyKey: "k")),
        .invoke(InvokeRequest(id: "i2", nodeId: "n", command: "system.which", paramsJSON: nil, timeoutMs: nil, idempotencyKey: nil)),
        .invoke(delivery(7)),
    ]

    /// A delivery the NetWorker numbered (`serial`), which the Supervisor's result must carry back.
    static func delivery(_ serial: Int) -> InvokeRequest {
        var request = InvokeRequest(id: "i3", nodeId: "n", command: "system.run", paramsJSON: "{}", timeoutMs: nil, idempotencyKey: nil)
        request.serial = serial
        return request
    }

    static func answer(_ serial: Int, structured: Bool = false) -> InvokeResult {
        var result = InvokeResult(id: "i3", nodeId: "n", ok: true, payloadJSON: "{}", error: nil)
        result.serial = serial
        if structured { result.payloadStructured = true }
        return result
    }
    static let toNet: [SupervisorToNet] = [
        .invokeResult(InvokeResult(id: "i", nodeId: "n", ok: false, payloadJSON: nil, error: WireError(code: "UNAVAILABLE", message: "m \"q\""))),
        .invokeResult(InvokeResult(id: "i", nodeId: "n", ok: true, payloadJSON: #"{"stdout":"é\n"}"#, error: nil)),
        .nodeEvent(NodeEvent(event: "exec.finished", payloadJSON: "{}")),
        .invokeResult(answer(7)),
        .invokeResult(answer(8, structured: true)),
    ]
    static let toExec: [SupervisorToExec] = [
        .run(RunOrder(id: "r/1", argv: ["/bin/sh", "-c", "echo \"hi\"\t\u{1}"], cwd: "/tmp", env: ["PATH": "/bin", "LANG": "C.UTF-8"],
                      timeoutMs: 10, maxOutputBytes: 200_000, expectCwd: nil, expectOperand: OperandBinding(path: "/x", sha256: "00"))),
        .run(RunOrder(id: "r", argv: ["/bin/true"], cwd: nil, env: [:], timeoutMs: nil, maxOutputBytes: 1)),
    ]
    static let fromExec: [ExecToSupervisor] = [
        .runFinished(RunOutcome(id: "r", exitCode: -1, signal: nil, timedOut: false, stdout: "ü\u{0}\n", stderr: "x",
                                truncated: false, error: "spawn x ENOENT", refusal: .operandChanged, durationMs: 3)),
        .runFinished(RunOutcome(id: "r", exitCode: nil, signal: 9, timedOut: true, stdout: "", stderr: "", truncated: true,
                                error: nil, durationMs: 12)),
    ]

    func testEveryHotMessageHasADirectFormAndRoundTrips() throws {
        try check(Self.toSupervisor)
        try check(Self.toNet)
        try check(Self.toExec)
        try check(Self.fromExec)
    }

    /// Written directly and read by `Codable`, written by `Codable` and read directly: the same message.
    func check<M: IPCMessage & Equatable>(_ messages: [M]) throws {
        for message in messages {
            XCTAssertNotNil(message.directPayload, "\(message)")
            let direct = Array(try IPCCodec.encode(message).readableBytesView)
            XCTAssertEqual(try IPCCodec.decode(ByteBuffer(bytes: direct), as: M.self), message)
            XCTAssertEqual(try JSONDecoder().decode(CodableOnly<M>.self, from: Data(direct)).message, message)

            let viaCodable = try JSONEncoder().encode(CodableOnly(message: message))
            guard case let .object(members) = try JSONValue.parse(Array(viaCodable)) else { return XCTFail("not an object") }
            XCTAssertEqual(M.decodeDirect(kind: message.kind, members: members), message, String(decoding: viaCodable, as: UTF8.self))
        }
    }

    func testAnOrderBindingACwdIdentityGoesThroughCodable() throws {
        let order = SupervisorToExec.run(RunOrder(id: "r", argv: ["/bin/true"], cwd: "/", env: [:], timeoutMs: nil, maxOutputBytes: 1,
                                                  expectCwd: FileIdentity(device: UInt64.max, inode: 1 << 60)))
        XCTAssertNil(order.directPayload)
        XCTAssertEqual(try IPCCodec.decode(try IPCCodec.encode(order), as: SupervisorToExec.self), order)
    }

    func testMalformedHotPayloadsAreStillRejectedWithCodablesReason() {
        func error(_ text: String) -> MessageDecodeError? {
            do {
                _ = try IPCCodec.decode(ByteBuffer(string: text), as: ExecToSupervisor.self)
                return nil
            } catch {
                return error
            }
        }
        let fields = #""type":"run.finished","id":"r","timedOut":false,"stdout":"","stderr":"","truncated":false"#
        XCTAssertEqual(error("{\(fields)}"), .invalidPayload(type: "run.finished", reason: "missing `durationMs`"))
        XCTAssertEqual(error("{\(fields),\"durationMs\":\"7\"}"), .invalidPayload(type: "run.finished", reason: "wrong type at `durationMs`"))
        guard case .invalidPayload(type: "run.finished", reason: _)? = error("{\(fields),\"durationMs\":1.5}") else {
            return XCTFail("a fractional duration is refused")
        }
        guard case .invalidPayload(type: "run.finished", reason: _)? = error("{\(fields),\"durationMs\":1,\"exitCode\":4294967296}") else {
            return XCTFail("an exit code beyond Int32 is refused")
        }
        XCTAssertEqual(error(#"{"type":"run.finished","id":"r","timedOut":false,"stdout":"","stderr":"","truncated":false,"durationMs":1,"refusal":"nope"}"#),
                       .invalidPayload(type: "run.finished", reason: "bad value at `refusal`: Cannot initialize Refusal from invalid String value nope"))
    }
}

/// A message through `Codable` only (what `IPCCodec` did before the direct path).
struct CodableOnly<M: IPCMessage>: Codable {
    let message: M

    init(message: M) { self.message = message }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let type = try container.decode(String.self, forKey: Key(stringValue: "type"))
        guard let kind = M.Kind(rawValue: type) else { throw DecodingError.dataCorruptedError(forKey: Key(stringValue: "type"), in: container, debugDescription: type) }
        message = try M.decodePayload(kind: kind, from: decoder)
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(message.kind.rawValue, forKey: Key(stringValue: "type"))
        try message.encodePayload(to: encoder)
    }
}
