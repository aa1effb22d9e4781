import NIOCore
import XCTest
@testable import OpenClawIPC

/// The IPC wire: length-prefixed JSON frames decoded into closed message enums.
final class FrameCodecTests: XCTestCase {
    static let netMessages: [NetToSupervisor] = [
        .ready(WorkerHello(pid: 42, role: .net)),
        .signRequest(SignRequest(requestId: "r", nonce: "n", signedAt: 1_737_264_000_000, version: .v3)),
        .linkState(LinkState(phase: .pairingPending, detail: "req-1")),
        .helloOk(HelloSummary(protocol: 4, deviceToken: "tok", role: "node", scopes: [], tickIntervalMs: 30000, serverVersion: "x")),
        .connectRejected(ConnectRejection(code: "NOT_PAIRED", message: "pairing required", detailCode: "PAIRING_REQUIRED", requestId: "q", retryAfterMs: nil)),
        .invoke(InvokeRequest(id: "i", nodeId: "n", command: "system.run", paramsJSON: #"{"command":["/bin/echo","a/b"]}"#, timeoutMs: 5, idempotencyKey: nil)),
        .metricsRequest(MetricsRequest(requestId: "m")),
        .framesDropped(FramesDropped(count: 3)),
        .invokeCancel(InvokeCancel(invokeId: "i")),
        .invokeCancel(InvokeCancel(invokeId: nil)),
        .gatewayReply(GatewayReply(callId: "c", ok: true, payloadJSON: #"{"nodeId":"d"}"#, error: nil)),
        .gatewayReply(.unavailable("c", "gateway connection closed")),
        .pairingEvent(PairingEvent(event: "node.pair.resolved", requestId: "np-1", nodeId: "d", decision: "approved")),
    ]
    static let toNet: [SupervisorToNet] = [
        .configure(NetConfiguration(url: "wss://h:1", tlsFingerprint: "ab", minProtocol: 3, maxProtocol: 4,
                                    client: .init(id: "node-host", displayName: "d", version: "v", platform: "linux", deviceFamily: "Linux", mode: "node", instanceId: "i"),
                                    role: "node", scopes: [], caps: ["system"], commands: ["system.run"], pathEnv: "/bin",
                                    deviceId: "d", publicKey: "p")),
        .signReply(SignReply(requestId: "r", signature: "s", auth: .init(token: "t", password: nil))),
        .invokeResult(InvokeResult(id: "i", nodeId: "n", ok: false, payloadJSON: nil, error: WireError(code: "UNAVAILABLE", message: "m"))),
        .nodeEvent(NodeEvent(event: "exec.finished", payloadJSON: "{}")),
        .metricsReply(MetricsReply(requestId: "m", text: "openclaw_node_gateway_connected 1\n")),
        .gatewayCall(GatewayCall(callId: "c", method: "node.runnerInventory.update", paramsJSON: #"{"protocolFeatures":[]}"#)),
        .shutdown(Empty()),
    ]
    static let execMessages: [ExecToSupervisor] = [
        .ready(WorkerHello(pid: 7, role: .exec)),
        .runFinished(RunOutcome(id: "r", exitCode: nil, signal: 9, timedOut: true, stdout: "ü\n", stderr: "", truncated: true, error: nil, durationMs: 12)),
    ]
    static let toExec: [SupervisorToExec] = [
        .run(RunOrder(id: "r", argv: ["/bin/sh", "-c", "echo hi"], cwd: "/tmp", env: ["PATH": "/bin"], timeoutMs: 10,
                      maxOutputBytes: 200_000, expectCwd: FileIdentity(device: 1, inode: 2), expectOperand: OperandBinding(path: "/x", sha256: "00"))),
        .cancel(RunCancel(id: "r")),
        .shutdown(Empty()),
    ]

    static let browserMessages: [BrowserToSupervisor] = [
        .ready(WorkerHello(pid: 8, role: .browser)),
        .response(BrowserResponse(id: "b1", status: 404, body: .object(["error": .string("tab not found")]))),
    ]
    static let toBrowser: [SupervisorToBrowser] = [
        .configure(BrowserConfiguration(
            enabled: true, evaluateEnabled: false, defaultProfile: "openclaw",
            profiles: [.init(name: "work", cdpPort: 18801, cdpUrl: nil, attachOnly: false, color: "#FF4500", headless: true,
                             executablePath: nil)],
            executablePath: "/usr/lib/chromium/chromium", headless: nil, noSandbox: false, extraArgs: ["--lang=de"],
            dataDir: "/var/lib/openclaw-node/browser", displayPresent: false)),
        .request(BrowserRequest(id: "b1", method: "POST", path: "/act", query: ["profile": "openclaw"],
                                body: .object(["kind": .string("click"), "ref": .string("e1")]), timeoutMs: 20000)),
        .shutdown(Empty()),
    ]

    func testBrowserMessagesRoundTrip() throws {
        try roundTrip(Self.browserMessages)
        try roundTrip(Self.toBrowser)
    }

    func roundTrip<M: IPCMessage & Equatable>(_ messages: [M]) throws {
        XCTAssertEqual(Set(messages.map(\.kind)), Set(M.Kind.allCases), "every kind is covered")
        for message in messages {
            let body = try IPCCodec.encode(message)
            XCTAssertEqual(try IPCCodec.decode(body, as: M.self), message)
        }
    }

    func testEveryMessageTypeRoundTrips() throws {
        try roundTrip(Self.netMessages)
        try roundTrip(Self.toNet)
        try roundTrip(Self.execMessages)
        try roundTrip(Self.toExec)
    }

    func testTypeDiscriminatorIsOnTheWire() throws {
        let body = try IPCCodec.encode(NetToSupervisor.signRequest(SignRequest(requestId: "r", nonce: "n", signedAt: 1, version: .v2)))
        let text = String(buffer: body)
        XCTAssertTrue(text.contains(#""type":"sign.request""#), text)
    }

    func testFramesSplitAtEveryByteBoundaryDecode() throws {
        var stream: [UInt8] = []
        for message in Self.netMessages {
            stream += Array(try IPCCodec.encodeFrame(message).readableBytesView)
        }
        for split in 0...stream.count {
            var splitter = FrameSplitter()
            var decoded: [NetToSupervisor] = []
            splitter.append(contentsOf: stream[0..<split])
            while let body = try splitter.next() { decoded.append(try IPCCodec.decode(body)) }
            splitter.append(contentsOf: stream[split...])
            while let body = try splitter.next() { decoded.append(try IPCCodec.decode(body)) }
            try splitter.finish()
            XCTAssertEqual(decoded, Self.netMessages, "split at \(split)")
        }
    }

    func testByteAtATimeDelivery() throws {
        let frame = Array(try IPCCodec.encodeFrame(Self.toExec[0]).readableBytesView)
        var splitter = FrameSplitter()
        var bodies = 0
        for byte in frame {
            splitter.append(contentsOf: [byte])
            while try splitter.next() != nil { bodies += 1 }
        }
        XCTAssertEqual(bodies, 1)
    }

    func testZeroLengthFrameIsRejected() {
        var splitter = FrameSplitter()
        splitter.append(contentsOf: [0, 0, 0, 0])
        XCTAssertThrowsError(try splitter.next()) { XCTAssertEqual($0 as? FrameError, .emptyFrame) }
    }

    func testOverLimitLengthIsRejectedFromTheHeaderAlone() {
        var splitter = FrameSplitter()
        let length = UInt32(IPCLimits.maxFrameBody + 1)
        splitter.append(contentsOf: [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)])
        XCTAssertThrowsError(try splitter.next()) {
            XCTAssertEqual($0 as? FrameError, .frameTooLarge(length: IPCLimits.maxFrameBody + 1, limit: IPCLimits.maxFrameBody))
        }
    }

    func testMaximumFrameIsLargeEnoughForA25MiBPayload() {
        XCTAssertEqual(IPCLimits.maxFrameBody, 25 * 1024 * 1024 + 64 * 1024)
    }

    func testTruncatedStreamIsReported() throws {
        var splitter = FrameSplitter()
        splitter.append(contentsOf: [0, 0, 0, 10, 0x7b, 0x7d])
        XCTAssertNil(try splitter.next())
        XCTAssertThrowsError(try splitter.finish()) { XCTAssertEqual($0 as? FrameError, .truncated(expected: 14, received: 6)) }
        var header = FrameSplitter()
        header.append(contentsOf: [0, 0])
        XCTAssertThrowsError(try header.finish()) { XCTAssertEqual($0 as? FrameError, .truncated(expected: 4, received: 2)) }
    }

    func decodeError(_ bytes: [UInt8]) -> MessageDecodeError? {
        do {
            _ = try IPCCodec.decode(ByteBuffer(bytes: bytes), as: NetToSupervisor.self)
            return nil
        } catch {
            return error
        }
    }

    func testInvalidUTF8IsRejected() {
        XCTAssertEqual(decodeError(Array(#"{"type":"ready","pid":1,"version":""#.utf8) + [0xff, 0x22, 0x7d]), .invalidUTF8)
    }

    func testNonJSONIsRejected() {
        guard case .notJSON? = decodeError(Array("type=ready".utf8)) else { return XCTFail("expected notJSON") }
    }

    func testNonObjectIsRejected() {
        XCTAssertEqual(decodeError(Array("[1,2]".utf8)), .notAnObject)
        XCTAssertEqual(decodeError(Array("\"ready\"".utf8)), .notAnObject)
    }

    func testMissingTypeIsRejected() {
        XCTAssertEqual(decodeError(Array(#"{"pid":1}"#.utf8)), .missingType)
        XCTAssertEqual(decodeError(Array(#"{"type":7}"#.utf8)), .missingType)
    }

    func testUnknownTypeIsRejected() {
        XCTAssertEqual(decodeError(Array(#"{"type":"run"}"#.utf8)), .unknownType("run"))
    }

    func testInvalidPayloadNamesTheField() {
        XCTAssertEqual(decodeError(Array(#"{"type":"ready","version":"x"}"#.utf8)),
                       .invalidPayload(type: "ready", reason: "missing `pid`"))
    }

    /// 100 000 random and mutated frames: the decoder returns or throws, never crashes.
    func testRandomAndMutatedFramesNeverCrashTheDecoder() throws {
        var generator = SplitMix64(seed: 0x0C1A_77)
        let seeds = try (Self.netMessages.map { Array(try IPCCodec.encodeFrame($0).readableBytesView) }
            + Self.execMessages.map { Array(try IPCCodec.encodeFrame($0).readableBytesView) })
        var outcomes = (decoded: 0, rejected: 0)
        for round in 0..<100_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = seeds[Int(generator.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + Int(generator.next() % 4)) {
                    let index = Int(generator.next() % UInt64(bytes.count))
                    switch generator.next() % 3 {
                    case 0: bytes[index] = UInt8(truncatingIfNeeded: generator.next())
                    case 1: bytes.remove(at: index)
                    default: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: index)
                    }
                    if bytes.isEmpty { break }
                }
            }
            var splitter = FrameSplitter(maxBody: 1 << 16)
            splitter.append(contentsOf: bytes)
            do {
                while let body = try splitter.next() {
                    if round % 2 == 0 {
                        _ = try IPCCodec.decode(body, as: NetToSupervisor.self)
                    } else {
                        _ = try IPCCodec.decode(body, as: ExecToSupervisor.self)
                    }
                    outcomes.decoded += 1
                }
                try splitter.finish()
            } catch {
                outcomes.rejected += 1
            }
        }
        XCTAssertGreaterThan(outcomes.rejected, 50_000)
        XCTAssertGreaterThan(outcomes.decoded, 0)
    }
}

/// Deterministic PRNG so a failing mutation can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
