import FoundationEssentials
import GatewayProtocol
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import NodeSupport
import OpenClawIPC

/// The gateway link's NIO shell: it performs what `LinkMachine` decides (open a transport,
/// arm a deadline, write a frame, close, reconnect later, run the watchdog, talk to the
/// Supervisor) and feeds the machine what happened on the sockets and timers. The protocol —
/// handshake, pairing, backoff, deadlines, the watchdog's verdict — is the machine's.
///
/// It holds no private key: connect signatures come from the Supervisor
/// (`send(.signRequest)` → `signed(_:)`). Confined to one event loop.
public final class GatewayLink {
    private let loop: EventLoop
    private let logger: Logger
    private let toSupervisor: (NetToSupervisor) -> Void
    private var machine: LinkMachine
    /// The channel of each attempt still open (at most the current one and a closing one).
    private var channels: [Int: Channel] = [:]
    private var deadlineTask: Scheduled<Void>?
    private var reconnectTask: Scheduled<Void>?
    private var watchdog: RepeatedTask?
    /// Channels with a flush of this turn's frames queued on the loop.
    private var flushQueued: Set<ObjectIdentifier> = []
    private var shutdownDone: (() -> Void)?

    public init(loop: EventLoop, logger: Logger, toSupervisor: @escaping (NetToSupervisor) -> Void) {
        self.loop = loop
        self.logger = logger
        self.toSupervisor = toSupervisor
        machine = LinkMachine(logger: logger, monotonicMs: { Int64(Clock.monotonicMs()) }, newId: { RandomID.uuid() })
    }

    // MARK: Supervisor → link

    public func configure(_ configuration: NetConfiguration) {
        loop.execute { self.feed(.configure(configuration)) }
    }

    public func signed(_ reply: SignReply) {
        loop.execute { self.feed(.signed(reply)) }
    }

    public func sendInvokeResult(_ result: InvokeResult) {
        onLoop { self.feed(.invokeResult(result)) }
    }

    public func sendNodeEvent(_ event: NodeEvent) {
        onLoop { self.feed(.nodeEvent(event)) }
    }

    public func call(_ call: GatewayCall) {
        onLoop { self.feed(.gatewayCall(call)) }
    }

    /// Says goodbye to the gateway (close 1000) and calls `done` once that is written,
    /// or after a short grace period if the socket does not drain.
    public func shutdown(done: @escaping () -> Void) {
        loop.execute {
            self.shutdownDone = done
            self.feed(.shutdown)
        }
    }

    /// Runs `body` now when already on the loop (the Supervisor link shares it), else on it.
    private func onLoop(_ body: @escaping () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    // MARK: The machine

    /// Feeds one event to the machine and performs its actions, in order.
    private func feed(_ event: LinkMachine.Event) {
        for action in machine.handle(event) { perform(action) }
    }

    private func perform(_ action: LinkMachine.Action) {
        switch action {
        case let .open(attempt, target, pin, handshakeTimeoutMs):
            open(attempt, target: target, pin: pin, handshakeTimeoutMs: handshakeTimeoutMs)
        case let .armDeadline(deadline):
            deadlineTask?.cancel()
            deadlineTask = loop.scheduleTask(in: .milliseconds(Int64(deadline.timeoutMs))) { [weak self] in
                self?.deadlineTask = nil
                self?.feed(.deadlinePassed(deadline))
            }
        case .cancelDeadline:
            deadlineTask?.cancel()
            deadlineTask = nil
        case let .send(frame, attempt):
            if let channel = channels[attempt] { write(frame, to: channel) }
        case let .close(attempt, code, reason):
            guard let channel = channels[attempt] else { return }
            channel.writeAndFlush(Self.closeFrame(code: code, reason: reason)).whenComplete { _ in
                channel.close(promise: nil)
            }
        case let .abandon(attempt):
            channels[attempt]?.close(promise: nil)
        case let .scheduleReconnect(afterMs):
            reconnectTask = loop.scheduleTask(in: .milliseconds(Int64(afterMs))) { [weak self] in
                self?.reconnectTask = nil
                self?.feed(.reconnectDue)
            }
        case .cancelReconnect:
            reconnectTask?.cancel()
            reconnectTask = nil
        case let .startWatchdog(attempt, intervalMs):
            watchdog?.cancel()
            watchdog = loop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(intervalMs)),
                                                 delay: .milliseconds(Int64(intervalMs))) { [weak self] _ in
                self?.feed(.watchdogTick(attempt: attempt))
            }
        case .stopWatchdog:
            watchdog?.cancel()
            watchdog = nil
        case let .scheduleDroppedReport(afterMs):
            loop.scheduleTask(in: .milliseconds(Int64(afterMs))) { [weak self] in self?.feed(.droppedReportDue) }
        case let .toSupervisor(message):
            toSupervisor(message)
        case let .goodbye(attempt):
            let done = shutdownDone ?? {}
            shutdownDone = nil
            guard let attempt, let channel = channels[attempt] else { return done() }
            loop.scheduleTask(in: .milliseconds(500)) { done() }
            channel.writeAndFlush(Self.closeFrame(code: 1000, reason: "node shutting down")).whenComplete { _ in done() }
        }
    }

    // MARK: Transport

    /// Opens `attempt`'s transport: TCP, TLS (pinned or CA-validated), the WebSocket upgrade.
    /// Each opening phase reports to the machine, which arms its deadline.
    private func open(_ attempt: Int, target: GatewayTarget, pin: String?, handshakeTimeoutMs: Int?) {
        let tls: NIOSSLContext?
        do {
            tls = try target.secure ? GatewayTLS.context(pinned: pin != nil) : nil
        } catch {
            logger.error("cannot set up TLS", metadata: ["error": "\(error)"])
            feed(.attemptFailed(attempt: attempt))
            return
        }
        let seen = AttemptObservations()
        let reached: @Sendable (LinkMachine.AttemptPhase) -> Void = { [weak self] phase in
            self?.onLoop { self?.feed(.transportReached(phase, attempt: attempt)) }
        }
        ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(LinkMachine.AttemptPhase.tcpConnect.timeoutMs(cap: handshakeTimeoutMs))))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try GatewayTLS.handler(tls, host: target.host, pin: pin) {
                            seen.presented = $0
                        })
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatcher { reached(.httpUpgrade) })
                    } else {
                        try channel.pipeline.syncOperations.addHandler(TLSReplySniffer { seen.tlsReply = $0 })
                    }
                }
            }
            .connect(host: target.host, port: target.port)
            .flatMap { channel in
                self.onLoop { self.adopt(channel, attempt: attempt) }
                reached(tls == nil ? .httpUpgrade : .tlsHandshake)
                return self.upgrade(channel, target: target, attempt: attempt)
            }
            .hop(to: loop)
            .whenComplete { result in
                switch result {
                case .success:
                    self.feed(.upgraded(attempt: attempt))
                case let .failure(error):
                    guard self.machine.state == .connecting(attempt: attempt) else { return }
                    let failure = ConnectFailure.classify(error, secure: target.secure, pin: pin, presented: seen.presented,
                                                          sawTLSReply: seen.tlsReply)
                    self.logger.debug("gateway connect failed", metadata: ["url": "\(self.machine.configuration?.url ?? "-")",
                                                                           "error": "\(error)"])
                    if case .untrusted(nil) = failure {
                        // Learn the certificate's fingerprint (a second handshake that trusts
                        // nothing and sends nothing), so the sentence can say what to pin.
                        self.presentedFingerprint(target: target) { fingerprint in
                            self.feed(.failureObserved(.untrusted(fingerprint: fingerprint), target: target))
                        }
                    } else {
                        self.feed(.failureObserved(failure, target: target))
                    }
                    self.feed(.attemptFailed(attempt: attempt))
                }
            }
    }

    /// Keeps `attempt`'s channel until it closes, and tells the machine when it does.
    private func adopt(_ channel: Channel, attempt: Int) {
        channels[attempt] = channel
        channel.closeFuture.hop(to: loop).whenComplete { [weak self] _ in
            guard let self else { return }
            if channels[attempt] === channel { channels[attempt] = nil }
            feed(.closed(attempt: attempt))
        }
    }

    /// A text frame from `attempt`'s WebSocket.
    fileprivate func received(text: String, attempt: Int) {
        feed(.text(text, attempt: attempt))
    }

    /// The SHA-256 of the leaf certificate `target` presents, from a handshake that trusts no
    /// certificate (so it always fails after the peer has shown its chain) and sends nothing.
    private func presentedFingerprint(target: GatewayTarget, then report: @escaping (String?) -> Void) {
        let seen = AttemptObservations()
        guard let context = try? GatewayTLS.context(pinned: true) else { return report(nil) }
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try GatewayTLS.handler(
                        context, host: target.host, pin: String(repeating: "0", count: 64)) { seen.presented = $0 })
                }
            }
            .connect(host: target.host, port: target.port)
            .hop(to: loop)
            .whenComplete { result in
                guard case let .success(channel) = result else { return report(nil) }
                let timer = self.loop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
                channel.closeFuture.hop(to: self.loop).whenComplete { _ in
                    timer.cancel()
                    report(seen.presented)
                }
            }
    }

    private func upgrade(_ channel: Channel, target: GatewayTarget, attempt: Int) -> EventLoopFuture<Channel> {
        let upgraded = channel.eventLoop.makePromise(of: Channel.self)
        let frameHandler = GatewayFrameHandler(link: self, attempt: attempt)
        let upgrader = NIOTypedWebSocketClientUpgrader<Void>(
            maxFrameSize: IPCLimits.maxGatewayPayload,
            enableAutomaticErrorHandling: true,
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096,
                                                    maxAccumulatedFrameSize: IPCLimits.maxGatewayPayload),
                        frameHandler,
                    ])
                }
            }
        )
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: target.hostHeader)
        // Edge credentials go to the configured endpoint only, and only over TLS (upstream:
        // candidate 0, wss://).
        if let configuration = machine.configuration, target.secure, machine.currentEndpoint?.url == configuration.url {
            for (name, value) in configuration.upgradeHeaders.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.path, headers: headers)
        let configuration = NIOTypedHTTPClientUpgradeConfiguration<Void>(
            upgradeRequestHead: head, upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeFailedFuture(GatewayLinkError.upgradeRefused)
            }
        )
        do {
            var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
            // The gateway sends connect.challenge right after the 101; when both arrive in one
            // read, the bytes after the response must reach the WebSocket decoder, not be dropped.
            pipeline.leftOverBytesStrategy = .forwardBytes
            let done = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
            done.whenComplete { result in
                switch result {
                case .success: upgraded.succeed(channel)
                case let .failure(error):
                    channel.close(promise: nil)
                    upgraded.fail(error)
                }
            }
        } catch {
            channel.close(promise: nil)
            upgraded.fail(error)
        }
        return upgraded.futureResult
    }

    // MARK: Outbound

    private func write(_ frame: JSONValue, to channel: Channel) {
        let text = GatewayFrames.encode(frame)
        let ws = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text))
        channel.write(ws, promise: nil)
        // One flush after the frames of this turn: an `exec.finished` event and its invoke
        // result reach the gateway in one segment.
        guard flushQueued.insert(ObjectIdentifier(channel)).inserted else { return }
        loop.execute {
            self.flushQueued.remove(ObjectIdentifier(channel))
            channel.flush()
        }
    }

    static func closeFrame(code: UInt16, reason: String) -> WebSocketFrame {
        var buffer = ByteBuffer()
        buffer.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: Int(code)))
        buffer.writeString(String(reason.utf8.prefix(120)) ?? "")
        return WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buffer)
    }

}

enum GatewayLinkError: Error {
    case upgradeRefused
}

/// Turns WebSocket frames into link events: text to `received`, ping to pong, close to close.
final class GatewayFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let link: GatewayLink
    private let attempt: Int

    init(link: GatewayLink, attempt: Int) {
        self.link = link
        self.attempt = attempt
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            var data = frame.unmaskedData
            let text = data.readString(length: data.readableBytes) ?? ""
            link.received(text: text, attempt: attempt)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode()
            var echo = ByteBuffer()
            if let code { echo.write(webSocketErrorCode: code) }
            let reply = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo)
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in context.close(promise: nil) }
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
