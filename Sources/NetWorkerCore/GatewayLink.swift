import Crypto
import FoundationEssentials
import GatewayProtocol
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import NIOWebSocket
import OpenClawIPC

/// The gateway link: one WebSocket, the challenge/connect handshake, reconnect with backoff,
/// the tick watchdog, and invoke traffic. It holds no private key: connect signatures come
/// from the Supervisor (`send(.signRequest)` → `signed(_:)`).
///
/// Confined to one event loop.
public final class GatewayLink {
    enum State {
        /// No configuration yet.
        case idle
        /// Waiting to reconnect.
        case waiting
        case connecting(attempt: Int)
        case awaitingChallenge(Channel)
        case awaitingSignature(Channel, nonce: String, signedAt: Int64, requestId: String)
        case awaitingHello(Channel, connectId: String)
        case linked(Channel)
        case stopped
    }

    static let preHelloMaxBytes = 64 * 1024
    /// How soon the node asks again while its pairing waits for an operator, so an approval
    /// takes effect within seconds (the gateway's `retryAfterMs` wins when it sends one).
    static let pairingRetryMs = 2000

    /// A step of one connection attempt. Each has a deadline, so no peer (a proxy, a half-dead
    /// gateway, a NAT that dropped the flow) can hold the node in an attempt forever: a
    /// stalled attempt is abandoned and the next one follows the usual backoff.
    enum AttemptPhase: String {
        case tcpConnect = "TCP connect"
        case tlsHandshake = "TLS handshake"
        case httpUpgrade = "WebSocket upgrade"
        /// Upstream: 15 s, then close 1008 `connect challenge timeout`.
        case challenge = "connect.challenge"
        /// The Supervisor's signature (local, but still bounded).
        case signature = "connect signature"
        /// Upstream's request timeout for `connect`: 30 s.
        case hello = "hello-ok"

        /// The default deadline, capped by the configured handshake budget.
        func timeout(cap: Int?) -> TimeAmount {
            guard let cap, self != .hello, self != .signature else { return defaultTimeout }
            return min(defaultTimeout, .milliseconds(Int64(cap)))
        }

        var defaultTimeout: TimeAmount {
            switch self {
            case .tcpConnect, .tlsHandshake, .httpUpgrade, .signature: return .seconds(10)
            case .challenge: return .seconds(15)
            case .hello: return .seconds(30)
            }
        }
    }

    private let loop: EventLoop
    private let logger: Logger
    private let toSupervisor: (NetToSupervisor) -> Void
    private var configuration: NetConfiguration?
    private var state: State = .idle
    private var attempt = 0
    private var backoff = ReconnectBackoff()
    private var signatureVersion: SignatureVersion = .v3
    private var nextRetryAfterMs: Int?
    private var reconnectTask: Scheduled<Void>?
    /// The deadline of the attempt's current phase.
    private var phaseTimer: Scheduled<Void>?
    private var watchdog: RepeatedTask?
    private var lastInbound = NIODeadline.now()
    /// Channels with a flush of this turn's frames queued on the loop.
    private var flushQueued: Set<ObjectIdentifier> = []
    private var tickIntervalMs = 30_000
    /// Invokes forwarded to the Supervisor and not yet answered. A count, not a set of ids:
    /// the Supervisor answers each forwarded invoke once, duplicate ids included, and counts
    /// the same way (its NetMonitor kills a worker that goes past `IPCLimits.maxInFlight`).
    private var invokesInFlight = 0
    /// The gateway's name for this node, from the last invoke (answers to unreadable ones).
    private var lastNodeId: String?
    private var droppedFrames = 0
    private static let unreadableLogLimit = 10
    private var unreadableWindowStart = NIODeadline.uptimeNanoseconds(0)
    private var unreadableLogged = 0
    private var unreadableSuppressed = 0
    /// Results and events produced while the link was down, sent after the next hello.
    private var outbox: [JSONValue] = []
    private static let outboxLimit = 256

    public init(loop: EventLoop, logger: Logger, toSupervisor: @escaping (NetToSupervisor) -> Void) {
        self.loop = loop
        self.logger = logger
        self.toSupervisor = toSupervisor
    }

    // MARK: Supervisor → link

    public func configure(_ configuration: NetConfiguration) {
        loop.execute {
            let first = self.configuration == nil
            self.configuration = configuration
            if first {
                self.connect()
            } else {
                // New credentials: start over with them at once.
                self.dropConnection(code: 1000, reason: "reconfigured", retryIn: 0)
            }
        }
    }

    public func signed(_ reply: SignReply) {
        loop.execute { self.handleSignature(reply) }
    }

    public func sendInvokeResult(_ result: InvokeResult) {
        onLoop {
            self.invokesInFlight = max(0, self.invokesInFlight - 1)
            self.sendOrQueue(GatewayFrames.invokeResult(id: Self.newId(), result))
        }
    }

    public func sendNodeEvent(_ event: NodeEvent) {
        onLoop { self.sendOrQueue(GatewayFrames.nodeEvent(id: Self.newId(), event)) }
    }

    /// Runs `body` now when already on the loop (the Supervisor link shares it), else on it.
    private func onLoop(_ body: @escaping () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    /// Says goodbye to the gateway (close 1000) and calls `done` once that is written,
    /// or after a short grace period if the socket does not drain.
    public func shutdown(done: @escaping () -> Void) {
        loop.execute {
            let channel: Channel?
            switch self.state {
            case let .awaitingChallenge(c), let .awaitingSignature(c, _, _, _), let .awaitingHello(c, _), let .linked(c):
                channel = c
            default:
                channel = nil
            }
            self.state = .stopped
            self.reconnectTask?.cancel()
            guard let channel else { return done() }
            self.loop.scheduleTask(in: .milliseconds(500)) { done() }
            channel.writeAndFlush(Self.closeFrame(code: 1000, reason: "node shutting down")).whenComplete { _ in done() }
        }
    }

    // MARK: Connecting

    private func connect() {
        guard let configuration, let target = GatewayTarget(url: configuration.url) else {
            logger.error("unusable gateway url")
            return
        }
        attempt += 1
        let thisAttempt = attempt
        state = .connecting(attempt: thisAttempt)
        toSupervisor(.linkState(LinkState(phase: .connecting, detail: configuration.url)))
        let tls: NIOSSLContext?
        do {
            tls = try target.secure ? Self.tlsContext(pinned: configuration.tlsFingerprint != nil) : nil
        } catch {
            logger.error("cannot set up TLS", metadata: ["error": "\(error)"])
            scheduleReconnect()
            return
        }
        let pin = configuration.tlsFingerprint
        let seen = AttemptObservations()
        ClientBootstrap(group: loop)
            .connectTimeout(AttemptPhase.tcpConnect.timeout(cap: configuration.handshakeTimeoutMs))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try Self.tlsHandler(tls, host: target.host, pin: pin) {
                            seen.presented = $0
                        })
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatcher { [weak self] in
                            self?.attemptReached(.httpUpgrade, on: channel, attempt: thisAttempt)
                        })
                    } else {
                        try channel.pipeline.syncOperations.addHandler(TLSReplySniffer { seen.tlsReply = $0 })
                    }
                }
            }
            .connect(host: target.host, port: target.port)
            .flatMap { channel in
                self.attemptReached(tls == nil ? .httpUpgrade : .tlsHandshake, on: channel, attempt: thisAttempt)
                return self.upgrade(channel, target: target)
            }
            .hop(to: loop)
            .whenComplete { result in
                guard case .connecting(let current) = self.state, current == thisAttempt else {
                    // Already adopted by its first frame (see `received`), or a stale attempt.
                    if case let .success(channel) = result, !self.isCurrent(channel) { channel.close(promise: nil) }
                    return
                }
                switch result {
                case let .success(channel):
                    self.opened(channel)
                case let .failure(error):
                    let failure = ConnectFailure.classify(error, secure: target.secure, pin: pin, presented: seen.presented,
                                                          sawTLSReply: seen.tlsReply)
                    self.logger.debug("gateway connect failed", metadata: ["url": "\(configuration.url)", "error": "\(error)"])
                    if case .untrusted(nil) = failure {
                        // Learn the certificate's fingerprint (a second handshake that trusts
                        // nothing and sends nothing), so the sentence can say what to pin.
                        self.presentedFingerprint(target: target) { fingerprint in
                            self.reportFailure(.untrusted(fingerprint: fingerprint), target: target)
                        }
                    } else {
                        self.reportFailure(failure, target: target)
                    }
                    self.scheduleReconnect()
                }
            }
    }

    /// Logs a failed attempt as one sentence and tells the Supervisor (status, doctor, install).
    private func reportFailure(_ failure: ConnectFailure, target: GatewayTarget) {
        let sentence = failure.sentence(for: target)
        logger.warning("\(sentence)", metadata: ["url": "\(configuration?.url ?? "-")"])
        toSupervisor(.linkState(LinkState(phase: .disconnected, detail: sentence)))
    }

    /// The SHA-256 of the leaf certificate `target` presents, from a handshake that trusts no
    /// certificate (so it always fails after the peer has shown its chain) and sends nothing.
    private func presentedFingerprint(target: GatewayTarget, then report: @escaping (String?) -> Void) {
        let seen = AttemptObservations()
        guard let context = try? Self.tlsContext(pinned: true) else { return report(nil) }
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try Self.tlsHandler(
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

    private func upgrade(_ channel: Channel, target: GatewayTarget) -> EventLoopFuture<Channel> {
        let upgraded = channel.eventLoop.makePromise(of: Channel.self)
        let frameHandler = GatewayFrameHandler(link: self)
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

    /// The opening phases (TCP is bounded by the bootstrap): past the deadline the channel is
    /// closed and the attempt counts as failed.
    private func attemptReached(_ phase: AttemptPhase, on channel: Channel, attempt: Int) {
        onLoop {
            guard case .connecting(let current) = self.state, current == attempt else { return }
            self.phaseTimer?.cancel()
            let timeout = phase.timeout(cap: self.configuration?.handshakeTimeoutMs)
            self.phaseTimer = self.loop.scheduleTask(in: timeout) { [weak self] in
                guard let self, case .connecting(let current) = self.state, current == attempt else { return }
                self.logger.info("gateway connect attempt stalled; retrying", metadata: [
                    "phase": "\(phase.rawValue)", "timeoutMs": .typed(timeout.nanoseconds / 1_000_000),
                ])
                if let target = self.configuration.flatMap({ GatewayTarget(url: $0.url) }) {
                    self.reportFailure(.timedOut(phase: phase.rawValue, milliseconds: Int(timeout.nanoseconds / 1_000_000)), target: target)
                }
                self.state = .waiting
                channel.close(promise: nil)
                self.scheduleReconnect()
            }
        }
    }

    /// A phase after the upgrade: past its deadline the connection is closed with `code`.
    private func armDeadline(_ phase: AttemptPhase, on channel: Channel, code: UInt16, reason: String) {
        phaseTimer?.cancel()
        let timeout = phase.timeout(cap: configuration?.handshakeTimeoutMs)
        phaseTimer = loop.scheduleTask(in: timeout) { [weak self] in
            guard let self, self.isCurrent(channel), !self.isLinked else { return }
            self.logger.warning("gateway handshake stalled; retrying", metadata: [
                "phase": "\(phase.rawValue)", "timeoutMs": .typed(timeout.nanoseconds / 1_000_000),
            ])
            self.dropConnection(code: code, reason: reason)
        }
    }

    private func opened(_ channel: Channel) {
        state = .awaitingChallenge(channel)
        lastInbound = .now()
        armDeadline(.challenge, on: channel, code: 1008, reason: "connect challenge timeout")
        channel.closeFuture.hop(to: loop).whenComplete { [weak self] _ in
            self?.closed(channel)
        }
    }

    // MARK: Inbound

    func received(text: String, on channel: Channel) {
        // The gateway may send its challenge before the upgrade future completes: the first
        // frame on the attempt in progress adopts the channel.
        if case .connecting = state { opened(channel) }
        guard isCurrent(channel) else { return }
        lastInbound = .now()
        if !isLinked, text.utf8.count > Self.preHelloMaxBytes {
            logger.warning("gateway sent an oversized frame before hello; closing")
            dropConnection(code: 1009, reason: "preauth payload too large")
            return
        }
        let frame: JSONValue
        do {
            frame = try JSONValue.parse(Array(text.utf8))
        } catch {
            return unreadable(text, reason: error.description)
        }
        guard case .object = frame, let type = frame["type"]?.stringValue else {
            return unreadable(text, reason: "not a JSON object with a type")
        }
        switch (type, state) {
        case ("event", .awaitingChallenge):
            guard frame["event"]?.stringValue == "connect.challenge" else { return }
            guard let nonce = frame["payload"]?["nonce"]?.stringValue?.trimmingSpaces(), !nonce.isEmpty else {
                dropConnection(code: 1008, reason: "connect challenge missing nonce")
                return
            }
            let requestId = Self.newId()
            let signedAt = Self.nowMs()
            state = .awaitingSignature(channel, nonce: nonce, signedAt: signedAt, requestId: requestId)
            armDeadline(.signature, on: channel, code: 1008, reason: "connect failed")
            toSupervisor(.signRequest(SignRequest(requestId: requestId, nonce: nonce, signedAt: signedAt, version: signatureVersion)))
        case ("res", .awaitingHello(_, let connectId)):
            guard frame["id"]?.stringValue == connectId else { return }
            if frame["ok"]?.boolValue == true {
                helloReceived(frame["payload"], on: channel)
            } else {
                connectRefused(frame["error"])
            }
        case ("event", .linked):
            linkedEvent(frame)
        default:
            break  // responses to our node.invoke.result / node.event are best-effort
        }
    }

    private func handleSignature(_ reply: SignReply) {
        guard case let .awaitingSignature(channel, nonce, signedAt, requestId) = state, reply.requestId == requestId,
              let configuration else { return }
        guard let signature = reply.signature, let auth = reply.auth else {
            logger.error("supervisor refused to sign the connect payload", metadata: ["error": "\(reply.error ?? "-")"])
            dropConnection(code: 1008, reason: "connect failed")
            return
        }
        let connectId = Self.newId()
        let frame = GatewayFrames.connect(id: connectId, configuration: configuration, auth: auth, signature: signature,
                                          signedAt: signedAt, nonce: nonce)
        state = .awaitingHello(channel, connectId: connectId)
        armDeadline(.hello, on: channel, code: 1008, reason: "connect failed")
        write(frame, to: channel)
    }

    private func helloReceived(_ payload: JSONValue?, on channel: Channel) {
        let policy = payload?["policy"]
        tickIntervalMs = min(max(1, (policy?["tickIntervalMs"]?.numberValue ?? 30_000).saturatingInt), 3_600_000)
        let auth = payload?["auth"]
        let summary = HelloSummary(
            protocol: payload?["protocol"]?.intValue ?? 3,
            deviceToken: auth?["deviceToken"]?.stringValue,
            role: auth?["role"]?.stringValue,
            scopes: auth?["scopes"]?.arrayValue?.compactMap(\.stringValue),
            tickIntervalMs: tickIntervalMs,
            serverVersion: payload?["server"]?["version"]?.stringValue
        )
        phaseTimer?.cancel()
        state = .linked(channel)
        backoff.reset()
        signatureVersion = .v3
        nextRetryAfterMs = nil
        toSupervisor(.helloOk(summary))
        toSupervisor(.linkState(LinkState(phase: .connected, detail: configuration?.url)))
        startWatchdog(on: channel)
        let pending = outbox
        outbox.removeAll()
        for frame in pending { write(frame, to: channel) }
    }

    private func connectRefused(_ error: JSONValue?) {
        let rejection = GatewayFrames.rejection(from: error)
        if rejection.detail == "DEVICE_AUTH_SIGNATURE_INVALID", signatureVersion == .v3 {
            logger.info("gateway rejected the v3 signature; retrying once with v2")
            signatureVersion = .v2
            nextRetryAfterMs = 0
        } else {
            signatureVersion = .v3
            nextRetryAfterMs = rejection.retryAfterMs
        }
        if rejection.isPairingRequired {
            toSupervisor(.linkState(LinkState(phase: .pairingPending, detail: rejection.requestId)))
            // An approval takes effect on the next connect: ask again soon, at a steady pace.
            nextRetryAfterMs = rejection.retryAfterMs ?? Self.pairingRetryMs
            backoff.reset()
        }
        toSupervisor(.connectRejected(rejection))
        dropConnection(code: 1000, reason: "connect rejected")
    }

    private func linkedEvent(_ frame: JSONValue) {
        switch frame["event"]?.stringValue {
        case "node.invoke.request":
            let request: InvokeRequest
            switch GatewayFrames.invokeRequest(from: frame["payload"]) {
            case let .success(parsed): request = parsed
            case let .failure(rejection):
                logger.warning("malformed node.invoke.request", metadata: ["id": "\(rejection.id ?? "-")", "reason": "\(rejection.message)"])
                countDropped()
                if let id = rejection.id { answerInvalid(id: id, nodeId: rejection.nodeId, message: rejection.message) }
                return
            }
            lastNodeId = request.nodeId
            if invokesInFlight >= IPCLimits.maxInFlight {
                let busy = InvokeResult(id: request.id, nodeId: request.nodeId, ok: false, payloadJSON: nil,
                                        error: WireError(code: "UNAVAILABLE", message: "node is busy: too many invokes in flight"))
                sendOrQueue(GatewayFrames.invokeResult(id: Self.newId(), busy))
                return
            }
            invokesInFlight += 1
            toSupervisor(.invoke(request))
        case "shutdown":
            logger.info("gateway is shutting down; will reconnect")
        default:
            break
        }
    }

    /// A frame that cannot be read is logged (size and a prefix, rate-limited) and counted; an
    /// invoke whose id can still be read from the text gets an `INVALID_REQUEST` result.
    private func unreadable(_ text: String, reason: String) {
        countDropped()
        let now = NIODeadline.now()
        if now - unreadableWindowStart > .seconds(60) {
            if unreadableSuppressed > 0 {
                logger.warning("suppressed \(unreadableSuppressed) more unreadable gateway frames in the last minute")
            }
            unreadableWindowStart = now
            unreadableLogged = 0
            unreadableSuppressed = 0
        }
        if unreadableLogged < Self.unreadableLogLimit {
            unreadableLogged += 1
            logger.warning("gateway sent a frame that cannot be read; ignoring it", metadata: [
                "bytes": .typed(text.utf8.count), "reason": "\(reason)", "prefix": "\(String(text.prefix(120)))",
            ])
        } else {
            unreadableSuppressed += 1
        }
        guard isLinked, let (id, nodeId) = GatewayFrames.unreadableInvoke(text) else { return }
        answerInvalid(id: id, nodeId: nodeId, message: "INVALID_REQUEST: invoke frame is not valid JSON (\(reason))")
    }

    private func answerInvalid(id: String, nodeId: String?, message: String) {
        let node = nodeId ?? lastNodeId ?? configuration?.deviceId ?? ""
        let result = InvokeResult(id: id, nodeId: node, ok: false, payloadJSON: nil,
                                  error: WireError(code: "INVALID_REQUEST", message: message))
        sendOrQueue(GatewayFrames.invokeResult(id: Self.newId(), result))
    }

    /// Dropped frames reach the Supervisor's metrics in batches (at most one message a second).
    private func countDropped() {
        droppedFrames += 1
        guard droppedFrames == 1 else { return }
        loop.scheduleTask(in: .seconds(1)) { [weak self] in
            guard let self, self.droppedFrames > 0 else { return }
            self.toSupervisor(.framesDropped(FramesDropped(count: self.droppedFrames)))
            self.droppedFrames = 0
        }
    }

    // MARK: Keepalive

    private func startWatchdog(on channel: Channel) {
        watchdog?.cancel()
        let interval = max(tickIntervalMs, 1000)
        watchdog = loop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(interval)), delay: .milliseconds(Int64(interval))) { [weak self] _ in
            guard let self, case let .linked(current) = self.state, current === channel else { return }
            let silentMs = (NIODeadline.now() - self.lastInbound).nanoseconds / 1_000_000
            if silentMs > Int64(2 * self.tickIntervalMs) {
                self.logger.warning("no frame from the gateway for \(silentMs) ms; reconnecting")
                self.dropConnection(code: 4000, reason: "tick timeout")
            }
        }
    }

    // MARK: Outbound and teardown

    private func sendOrQueue(_ frame: JSONValue) {
        if case let .linked(channel) = state {
            write(frame, to: channel)
        } else if outbox.count < Self.outboxLimit {
            outbox.append(frame)
        } else {
            logger.warning("gateway link down and outbox full; dropping a result")
        }
    }

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

    /// Sends a close frame with `code`, closes the socket, and schedules the next attempt.
    private func dropConnection(code: UInt16, reason: String, retryIn: Int? = nil) {
        let channel: Channel?
        switch state {
        case let .awaitingChallenge(c), let .awaitingSignature(c, _, _, _), let .awaitingHello(c, _), let .linked(c):
            channel = c
        default:
            channel = nil
        }
        leaveConnection()
        if let channel {
            channel.writeAndFlush(Self.closeFrame(code: code, reason: reason)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
        if let retryIn { nextRetryAfterMs = retryIn }
        scheduleReconnect()
    }

    private func closed(_ channel: Channel) {
        guard isCurrent(channel) else { return }
        leaveConnection()
        toSupervisor(.linkState(LinkState(phase: .disconnected, detail: "connection closed")))
        scheduleReconnect()
    }

    private func leaveConnection() {
        phaseTimer?.cancel()
        watchdog?.cancel()
        watchdog = nil
        if case .stopped = state { return }
        state = .waiting
    }

    private func scheduleReconnect() {
        guard case .waiting = state else {
            if case .connecting = state { state = .waiting } else { return }
            return scheduleReconnect()
        }
        guard reconnectTask == nil else { return }
        let delay = backoff.next(retryAfterMs: nextRetryAfterMs)
        nextRetryAfterMs = nil
        reconnectTask = loop.scheduleTask(in: .milliseconds(Int64(delay))) { [weak self] in
            guard let self else { return }
            self.reconnectTask = nil
            if case .waiting = self.state { self.connect() }
        }
    }

    private var isLinked: Bool {
        if case .linked = state { return true }
        return false
    }

    private func isCurrent(_ channel: Channel) -> Bool {
        switch state {
        case let .awaitingChallenge(c), let .awaitingSignature(c, _, _, _), let .awaitingHello(c, _), let .linked(c):
            return c === channel
        default:
            return false
        }
    }

    // MARK: TLS

    static func tlsContext(pinned: Bool) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if pinned {
            // The pin replaces CA validation: the custom callback is the only check.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates([])
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Lowercase hex SHA-256 of a certificate's DER: what `--tls-fingerprint` pins.
    static func fingerprint(der: [UInt8]) -> String {
        SHA256.hash(data: der).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// TLS for the gateway: CA validation, or with a pin the pin alone. `presented` sees the
    /// leaf fingerprint the peer offered (the connect-failure sentence and doctor report it on
    /// a mismatch; no credential is sent to a peer that does not match).
    static func tlsHandler(_ context: NIOSSLContext, host: String, pin: String?,
                           presented: @escaping @Sendable (String) -> Void = { _ in }) throws -> NIOSSLClientHandler {
        let sni = GatewayTarget.isIPLiteral(host) ? nil : host
        guard let pin else { return try NIOSSLClientHandler(context: context, serverHostname: sni) }
        return try NIOSSLClientHandler(context: context, serverHostname: sni, customVerificationCallback: { certificates, promise in
            guard let leaf = certificates.first, let der = try? leaf.toDERBytes() else {
                promise.succeed(.failed)
                return
            }
            let actual = Self.fingerprint(der: der)
            presented(actual)
            if actual == pin {
                promise.succeed(.certificateVerified)
            } else {
                promise.succeed(.failed)
            }
        })
    }

    static func newId() -> String { RandomID.uuid() }

    static func nowMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec / 1_000_000)
    }
}

/// What one attempt saw before it failed (written on its channel's loop, read after).
final class AttemptObservations: @unchecked Sendable {
    /// The leaf certificate's SHA-256 the peer presented.
    var presented: String?
    /// A plaintext attempt was answered with TLS bytes.
    var tlsReply = false
}

enum GatewayLinkError: Error {
    case upgradeRefused
}

/// Host, port and path of a `ws://`/`wss://` URL.
struct GatewayTarget {
    var secure: Bool
    var host: String
    var port: Int
    var path: String

    init?(url: String) {
        let rest: Substring
        if url.hasPrefix("wss://") {
            secure = true
            rest = url.dropFirst(6)
        } else if url.hasPrefix("ws://") {
            secure = false
            rest = url.dropFirst(5)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" }
        path = rest.dropFirst(authority.count).isEmpty ? "/" : String(rest.dropFirst(authority.count))
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? 0 : (secure ? 443 : 80)
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = Int(authority[authority.index(after: colon)...]) ?? 0
        } else {
            host = String(authority)
            port = secure ? 443 : 80
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }

    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return "\(name):\(port)"
    }

    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Reports the end of the TLS handshake, where the next phase's deadline starts.
final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let completed: () -> Void

    init(completed: @escaping () -> Void) {
        self.completed = completed
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { completed() }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Turns WebSocket frames into link events: text to `received`, ping to pong, close to close.
final class GatewayFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let link: GatewayLink

    init(link: GatewayLink) {
        self.link = link
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            var data = frame.unmaskedData
            let text = data.readString(length: data.readableBytes) ?? ""
            link.received(text: text, on: context.channel)
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
