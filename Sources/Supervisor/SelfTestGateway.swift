import Crypto
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// A minimal OpenClaw gateway on loopback for `doctor`'s self-test: challenge, v3 signature
/// check, one pairing round (refused, then approved), hello-ok, invokes. Only what the
/// pipeline test needs; the full test gateway is Tests/gateway.
final class SelfTestGateway: @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var loop: EventLoop { group.next() }
    private var server: Channel?
    private var connection: Channel?
    private var approved = false
    private var waiting: [String: EventLoopPromise<JSONValue>] = [:]
    /// Connect attempts whose signature verified, and the ones refused for pairing.
    private(set) var verifiedConnects = 0
    private(set) var pairingRequests = 0
    private(set) var helloSent = false
    private(set) var problems: [String] = []

    func start() throws -> Int {
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, _ in
                channel.pipeline.addHandler(SelfTestFrameHandler(gateway: self)).map { self.opened(channel) }
            })
        server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        return server?.localAddress?.port ?? 0
    }

    func stop() {
        try? server?.close().wait()
        try? connection?.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Lets the paired device in on its next connect.
    func approve() { loop.execute { self.approved = true } }

    func waitUntil(_ timeout: Double, _ condition: @escaping () -> Bool) -> Bool {
        let deadline = Double(Clock.monotonicMs()) / 1000 + timeout
        while Double(Clock.monotonicMs()) / 1000 < deadline {
            if (try? loop.submit(condition).wait()) == true { return true }
            usleep(50_000)
        }
        return false
    }

    /// Sends `node.invoke.request` and waits for the node's result params.
    func invoke(_ command: String, params: JSONValue, timeout: TimeAmount = .seconds(15)) -> JSONValue? {
        let id = RandomID.uuid()
        let promise = loop.makePromise(of: JSONValue.self)
        loop.execute {
            guard let channel = self.connection else { return promise.fail(ChannelError.ioOnClosedChannel) }
            self.waiting[id] = promise
            let paramsJSON = (try? JSONText.encode(params)) ?? "{}"
            self.send(["type": .string("event"), "event": .string("node.invoke.request"),
                       "payload": .object(["id": .string(id), "nodeId": .string("selftest"), "command": .string(command),
                                           "paramsJSON": .string(paramsJSON)])], on: channel)
        }
        let timer = loop.scheduleTask(in: timeout) { promise.fail(ChannelError.connectTimeout(timeout)) }
        defer { timer.cancel() }
        return try? promise.futureResult.wait()
    }

    // MARK: On the event loop

    private func opened(_ channel: Channel) {
        connection = channel
        let nonce = RandomID.uuid()
        challenges[ObjectIdentifier(channel)] = nonce
        send(["type": .string("event"), "event": .string("connect.challenge"),
              "payload": .object(["nonce": .string(nonce), "ts": .number(Double(currentTimeMillis()))])], on: channel)
    }

    private var challenges: [ObjectIdentifier: String] = [:]

    fileprivate func received(_ text: String, on channel: Channel) {
        guard let frame = try? JSONText.decode(JSONValue.self, from: text), let type = frame["type"]?.stringValue else { return }
        let id = frame["id"]?.stringValue ?? ""
        switch (type, frame["method"]?.stringValue) {
        case ("req", "connect"?):
            connect(frame["params"] ?? .null, id: id, on: channel)
        case ("req", "node.invoke.result"?):
            respond(id: id, ok: true, on: channel)
            if let params = frame["params"], let invokeId = params["id"]?.stringValue {
                waiting.removeValue(forKey: invokeId)?.succeed(params)
            }
        case ("req", _):
            respond(id: id, ok: true, on: channel)
        default:
            break
        }
    }

    private func connect(_ params: JSONValue, id: String, on channel: Channel) {
        let device = params["device"]
        guard let nonce = challenges[ObjectIdentifier(channel)], device?["nonce"]?.stringValue == nonce,
              let deviceId = device?["id"]?.stringValue, let key = device?["publicKey"]?.stringValue,
              let signature = device?["signature"]?.stringValue, let signedAt = device?["signedAt"]?.numberValue,
              let keyBytes = Base64URL.decode(key), let signatureBytes = Base64URL.decode(signature),
              let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: keyBytes) else {
            problems.append("connect frame without a usable device block")
            return refuse(id: id, code: "INVALID_REQUEST", detail: "DEVICE_AUTH_INVALID", on: channel)
        }
        let client = params["client"]
        let payload = ConnectPayload(
            deviceId: deviceId, clientId: client?["id"]?.stringValue ?? "", clientMode: client?["mode"]?.stringValue ?? "",
            role: params["role"]?.stringValue ?? "", scopes: params["scopes"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            signedAtMs: Int64(signedAt), token: params["auth"]?["token"]?.stringValue ?? "", nonce: nonce,
            platform: client?["platform"]?.stringValue ?? "", deviceFamily: client?["deviceFamily"]?.stringValue ?? ""
        )
        guard publicKey.isValidSignature(signatureBytes, for: Array(payload.text(.v3).utf8)) else {
            problems.append("device signature did not verify")
            return refuse(id: id, code: "INVALID_REQUEST", detail: "DEVICE_AUTH_SIGNATURE_INVALID", on: channel)
        }
        verifiedConnects += 1
        guard approved else {
            pairingRequests += 1
            return refuse(id: id, code: "NOT_PAIRED", detail: "PAIRING_REQUIRED", requestId: "selftest-pairing", on: channel)
        }
        helloSent = true
        send(["type": .string("res"), "id": .string(id), "ok": .bool(true), "payload": .object([
            "type": .string("hello-ok"), "protocol": .number(3),
            "server": .object(["version": .string("selftest"), "connId": .string(RandomID.uuid())]),
            "features": .object(["methods": .array([]), "events": .array([])]),
            "snapshot": .object([:]),
            "auth": .object(["deviceToken": .string("selftest-device-token"), "role": .string("node"), "scopes": .array([])]),
            "policy": .object(["maxPayload": .number(26_214_400), "maxBufferedBytes": .number(52_428_800),
                               "tickIntervalMs": .number(30_000)]),
        ])], on: channel)
    }

    private func refuse(id: String, code: String, detail: String, requestId: String? = nil, on channel: Channel) {
        var details: [String: JSONValue] = ["code": .string(detail)]
        if let requestId { details["requestId"] = .string(requestId) }
        send(["type": .string("res"), "id": .string(id), "ok": .bool(false),
              "error": .object(["code": .string(code), "message": .string(detail.lowercased()), "details": .object(details)])],
             on: channel)
    }

    private func respond(id: String, ok: Bool, on channel: Channel) {
        send(["type": .string("res"), "id": .string(id), "ok": .bool(ok), "payload": .object(["ok": .bool(ok)])], on: channel)
    }

    private func send(_ object: [String: JSONValue], on channel: Channel) {
        guard let text = try? JSONText.encode(JSONValue.object(object)) else { return }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)), promise: nil)
    }

    fileprivate func closed(_ channel: Channel) {
        challenges[ObjectIdentifier(channel)] = nil
        if connection === channel { connection = nil }
    }
}

private final class SelfTestFrameHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    let gateway: SelfTestGateway
    private var text = ""

    init(gateway: SelfTestGateway) { self.gateway = gateway }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .continuation:
            var payload = frame.unmaskedData
            text += payload.readString(length: payload.readableBytes) ?? ""
            if frame.fin {
                gateway.received(text, on: context.channel)
                text = ""
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(NIOAny(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        gateway.closed(context.channel)
    }
}
