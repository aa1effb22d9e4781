import GatewayProtocol
import Logging
import OpenClawIPC

/// The gateway link's protocol as a plain state machine: events in, actions out. No sockets,
/// no timers, no clocks of its own (in the style of swift-nio's upgrader state machines):
/// `GatewayLink` is the NIO shell that performs the actions and feeds back what happened.
///
/// A connection is named by its attempt number; the shell maps attempts to channels. What
/// the machine owns: the handshake (challenge → signature from the Supervisor → connect →
/// hello), a deadline per phase of an attempt, pairing pauses and backoff, the v3→v2
/// signature retry, the tick watchdog's verdict, and the invokes active on the connection (a
/// cancel, or the connection's loss, fences their results; nothing is kept for a later one).
struct LinkMachine {
    /// Where the link is.
    enum State: Equatable {
        /// No configuration yet.
        case idle
        /// Waiting to reconnect.
        case waiting
        /// Opening a transport (TCP, TLS, the WebSocket upgrade).
        case connecting(attempt: Int)
        case awaitingChallenge(attempt: Int)
        case awaitingSignature(attempt: Int, nonce: String, signedAt: Int64, requestId: String)
        case awaitingHello(attempt: Int, connectId: String)
        case linked(attempt: Int)
        case stopped

        /// The attempt whose WebSocket is open (after the upgrade), if any.
        var openAttempt: Int? {
            switch self {
            case let .awaitingChallenge(attempt), let .awaitingSignature(attempt, _, _, _), let .awaitingHello(attempt, _),
                 let .linked(attempt):
                return attempt
            default:
                return nil
            }
        }
    }

    /// A step of one connection attempt. Each has a deadline, so no peer (a proxy, a half-dead
    /// gateway, a NAT that dropped the flow) can hold the node in an attempt forever: a
    /// stalled attempt is abandoned and the next one follows the usual backoff.
    enum AttemptPhase: String, Equatable {
        case tcpConnect = "TCP connect"
        case tlsHandshake = "TLS handshake"
        case httpUpgrade = "WebSocket upgrade"
        /// Upstream: 15 s, then close 1008 `connect challenge timeout`.
        case challenge = "connect.challenge"
        /// The Supervisor's signature (local, but still bounded).
        case signature = "connect signature"
        /// Upstream's request timeout for `connect`: 30 s.
        case hello = "hello-ok"

        /// The default deadline in milliseconds, capped by the configured handshake budget.
        func timeoutMs(cap: Int?) -> Int {
            guard let cap, self != .hello, self != .signature else { return defaultTimeoutMs }
            return min(defaultTimeoutMs, cap)
        }

        var defaultTimeoutMs: Int {
            switch self {
            case .tcpConnect, .tlsHandshake, .httpUpgrade, .signature: return 10_000
            case .challenge: return 15_000
            case .hello: return 30_000
            }
        }
    }

    /// A phase deadline the shell arms; it comes back as `.deadlinePassed` when it fires.
    enum Deadline: Equatable {
        /// Before the WebSocket is open: the attempt is abandoned.
        case opening(AttemptPhase, attempt: Int, timeoutMs: Int)
        /// After it: the connection is closed with `code`.
        case handshake(AttemptPhase, attempt: Int, timeoutMs: Int, code: UInt16, reason: String)

        var timeoutMs: Int {
            switch self {
            case let .opening(_, _, timeoutMs), let .handshake(_, _, timeoutMs, _, _): return timeoutMs
            }
        }
    }

    /// What happened, as the shell tells it.
    enum Event {
        case configure(NetConfiguration)
        case reconnectDue
        /// The attempt's transport reached `phase` (TCP connected, TLS done).
        case transportReached(AttemptPhase, attempt: Int)
        /// The WebSocket upgrade completed.
        case upgraded(attempt: Int)
        /// The attempt failed before its WebSocket was open (the sentence is reported apart).
        case attemptFailed(attempt: Int)
        /// One failed attempt, as one sentence for the log and the Supervisor.
        case failureObserved(ConnectFailure, target: GatewayTarget)
        case text(String, attempt: Int)
        case closed(attempt: Int)
        case deadlinePassed(Deadline)
        case watchdogTick(attempt: Int)
        case droppedReportDue
        case signed(SignReply)
        case invokeResult(InvokeResult)
        case nodeEvent(NodeEvent)
        case gatewayCall(GatewayCall)
        case shutdown
    }

    /// What the shell must do, in order.
    enum Action: Equatable {
        /// Open a transport for `attempt` (TCP, TLS with the pin, the WebSocket upgrade).
        case open(attempt: Int, target: GatewayTarget, pin: String?, handshakeTimeoutMs: Int?)
        case armDeadline(Deadline)
        case cancelDeadline
        /// Write a gateway frame on `attempt`'s WebSocket.
        case send(JSONValue, attempt: Int)
        /// Write a close frame, then close the socket.
        case close(attempt: Int, code: UInt16, reason: String)
        /// Close the socket at once (a stalled opening attempt).
        case abandon(attempt: Int)
        case scheduleReconnect(afterMs: Int)
        case cancelReconnect
        case startWatchdog(attempt: Int, intervalMs: Int)
        case stopWatchdog
        case scheduleDroppedReport(afterMs: Int)
        case toSupervisor(NetToSupervisor)
        /// The shutdown goodbye: close 1000 on `attempt` (nil: nothing open), then exit.
        case goodbye(attempt: Int?)
    }

    static let preHelloMaxBytes = 64 * 1024
    /// How soon the node asks again while its pairing waits for an operator, so an approval
    /// takes effect within seconds (the gateway's `retryAfterMs` wins when it sends one).
    static let pairingRetryMs = 2000
    /// After a challenge without a valid `ts`, upstream's client stops for good; a daemon waits
    /// this long instead (nothing is sent sooner) and then tries again, so a gateway fixed in
    /// the meantime gets its node back without an operator.
    static let invalidChallengeRetryMs = 30_000
    private static let unreadableLogLimit = 10
    /// Supervisor requests waiting for the gateway's response on one connection.
    static let maxPendingCalls = 16
    /// Longest identifier or decision read from a pairing event.
    private static let maxPairingField = 128

    private(set) var state: State = .idle
    private(set) var configuration: NetConfiguration?
    private(set) var attempt = 0
    private var backoff = ReconnectBackoff()
    private(set) var signatureVersion: SignatureVersion = .v3
    private var nextRetryAfterMs: Int?
    private var reconnectPending = false
    /// Which endpoint attempts go to: 0 is `url`, then `fallbacks`, until one reaches hello.
    private(set) var candidate = 0
    private var winnerSelected = false
    /// The current attempt wrote `connect` (after that, no other endpoint is tried).
    private var connectSent = false
    private var deadlineArmed = false
    private(set) var tickIntervalMs = 30_000
    private var lastInboundMs: Int64 = 0
    /// Invokes of this connection forwarded to the Supervisor and not yet answered, by id. A
    /// redelivered id replaces its original (the Supervisor aborts that one), so an id counts
    /// once, on both sides (the NetMonitor kills a worker past `IPCLimits.maxInFlight`).
    /// Each active id with the serial of its current delivery.
    private(set) var activeInvokes: [String: Int] = [:]
    private var deliveries = 0
    var invokesInFlight: Int { activeInvokes.count }
    /// The Supervisor's requests written on this connection and not yet answered: request
    /// frame id → the Supervisor's call id. Answered as failed when the connection goes.
    private(set) var pendingCalls: [String: String] = [:]
    /// The gateway's name for this node, from the last invoke (answers to unreadable ones).
    private var lastNodeId: String?
    private var droppedFrames = 0
    private var unreadableWindowStartMs: Int64 = 0
    private var unreadableLogged = 0
    private var unreadableSuppressed = 0

    private let logger: Logger
    /// Milliseconds on a monotonic clock (silence, log windows).
    private let monotonicMs: () -> Int64
    private let newId: () -> String

    init(logger: Logger, monotonicMs: @escaping () -> Int64, newId: @escaping () -> String) {
        self.logger = logger
        self.monotonicMs = monotonicMs
        self.newId = newId
    }

    /// Feeds one event; returns what to do.
    mutating func handle(_ event: Event) -> [Action] {
        var actions: [Action] = []
        switch event {
        case let .configure(configuration):
            let first = self.configuration == nil
            self.configuration = configuration
            candidate = 0
            winnerSelected = configuration.fallbacks.isEmpty
            if first {
                connect(&actions)
            } else {
                // New credentials: start over with them at once.
                dropConnection(code: 1000, reason: "reconfigured", retryIn: 0, &actions)
            }
        case .reconnectDue:
            reconnectPending = false
            if state == .waiting { connect(&actions) }
        case let .transportReached(phase, attempt):
            guard state == .connecting(attempt: attempt) else { break }
            arm(.opening(phase, attempt: attempt, timeoutMs: phase.timeoutMs(cap: configuration?.handshakeTimeoutMs)), &actions)
        case let .upgraded(attempt):
            // Already adopted by its first frame (see `.text`), or a stale attempt.
            if state == .connecting(attempt: attempt) {
                opened(attempt, &actions)
            } else if state.openAttempt != attempt {
                actions.append(.abandon(attempt: attempt))
            }
        case let .attemptFailed(attempt):
            guard state == .connecting(attempt: attempt) else { break }
            scheduleReconnect(&actions)
        case let .failureObserved(failure, target):
            report(failure, target: target, &actions)
        case let .text(text, attempt):
            received(text, attempt: attempt, &actions)
        case let .closed(attempt):
            guard state.openAttempt == attempt else { break }
            leaveConnection(&actions)
            actions.append(.toSupervisor(.linkState(LinkState(phase: .disconnected, detail: "connection closed"))))
            scheduleReconnect(&actions)
        case let .deadlinePassed(deadline):
            deadlinePassed(deadline, &actions)
        case let .watchdogTick(attempt):
            guard state == .linked(attempt: attempt) else { break }
            let silentMs = monotonicMs() - lastInboundMs
            if silentMs > Int64(2 * tickIntervalMs) {
                logger.warning("no frame from the gateway for \(silentMs) ms; reconnecting")
                dropConnection(code: 4000, reason: "tick timeout", &actions)
            }
        case .droppedReportDue:
            if droppedFrames > 0 {
                actions.append(.toSupervisor(.framesDropped(FramesDropped(count: droppedFrames))))
                droppedFrames = 0
            }
        case let .signed(reply):
            signed(reply, &actions)
        case let .invokeResult(result):
            // Only for an invoke still active: one cancelled, or of a connection that is gone,
            // publishes nothing (upstream fences late results the same way).
            // …and only the current delivery's: a replaced one's late result is not the replacement's.
            guard let serial = activeInvokes[result.id] else {
                logger.debug("result for an invoke that is no longer active; dropped", metadata: ["id": "\(result.id.prefix(64))"])
                break
            }
            guard result.serial == nil || result.serial == serial else {
                logger.debug("result of a replaced delivery; dropped", metadata: ["id": "\(result.id.prefix(64))"])
                break
            }
            activeInvokes.removeValue(forKey: result.id)
            send(GatewayFrames.invokeResult(id: newId(), result), &actions)
        case let .nodeEvent(event):
            // Only on a linked connection: an event of a lost one is stale (upstream publishes
            // only after hello, on the connection it was made for).
            guard case let .linked(attempt) = state else {
                logger.debug("node event while the link is down; dropped", metadata: ["event": "\(event.event)"])
                break
            }
            actions.append(.send(GatewayFrames.nodeEvent(id: newId(), event), attempt: attempt))
        case let .gatewayCall(call):
            gatewayCall(call, &actions)
        case .shutdown:
            let open = state.openAttempt
            if case let .connecting(attempt) = state { actions.append(.abandon(attempt: attempt)) }
            state = .stopped
            if reconnectPending {
                reconnectPending = false
                actions.append(.cancelReconnect)
            }
            actions.append(.goodbye(attempt: open))
        }
        return actions
    }

    // MARK: Connecting

    private mutating func connect(_ actions: inout [Action]) {
        guard let configuration, let endpoint = currentEndpoint, let target = GatewayTarget(url: endpoint.url) else {
            logger.error("unusable gateway url")
            return
        }
        attempt += 1
        connectSent = false
        state = .connecting(attempt: attempt)
        actions.append(.toSupervisor(.linkState(LinkState(phase: .connecting, detail: endpoint.url))))
        actions.append(.open(attempt: attempt, target: target, pin: endpoint.tlsFingerprint,
                             handshakeTimeoutMs: configuration.handshakeTimeoutMs))
    }

    /// The endpoint attempts go to now.
    var currentEndpoint: NetConfiguration.Endpoint? {
        guard let configuration else { return nil }
        let all = [NetConfiguration.Endpoint(url: configuration.url, tlsFingerprint: configuration.tlsFingerprint)] + configuration.fallbacks
        return all[min(candidate, all.count - 1)]
    }

    /// Logs a failed attempt as one sentence and tells the Supervisor (status, doctor, install).
    private func report(_ failure: ConnectFailure, target: GatewayTarget, _ actions: inout [Action]) {
        let sentence = failure.sentence(for: target)
        logger.warning("\(sentence)", metadata: ["url": "\(configuration?.url ?? "-")"])
        actions.append(.toSupervisor(.linkState(LinkState(phase: .disconnected, detail: sentence))))
    }

    private mutating func opened(_ attempt: Int, _ actions: inout [Action]) {
        state = .awaitingChallenge(attempt: attempt)
        lastInboundMs = monotonicMs()
        arm(.handshake(.challenge, attempt: attempt, timeoutMs: AttemptPhase.challenge.timeoutMs(cap: configuration?.handshakeTimeoutMs),
                       code: 1008, reason: "connect challenge timeout"), &actions)
    }

    private mutating func arm(_ deadline: Deadline, _ actions: inout [Action]) {
        deadlineArmed = true
        actions.append(.armDeadline(deadline))
    }

    private mutating func disarm(_ actions: inout [Action]) {
        guard deadlineArmed else { return }
        deadlineArmed = false
        actions.append(.cancelDeadline)
    }

    private mutating func deadlinePassed(_ deadline: Deadline, _ actions: inout [Action]) {
        switch deadline {
        case let .opening(phase, attempt, timeoutMs):
            guard state == .connecting(attempt: attempt) else { return }
            deadlineArmed = false
            logger.info("gateway connect attempt stalled; retrying", metadata: [
                "phase": "\(phase.rawValue)", "timeoutMs": .typed(timeoutMs),
            ])
            if let target = currentEndpoint.flatMap({ GatewayTarget(url: $0.url) }) {
                report(.timedOut(phase: phase.rawValue, milliseconds: timeoutMs), target: target, &actions)
            }
            state = .waiting
            actions.append(.abandon(attempt: attempt))
            scheduleReconnect(&actions)
        case let .handshake(phase, attempt, timeoutMs, code, reason):
            guard state.openAttempt == attempt, state != .linked(attempt: attempt) else { return }
            deadlineArmed = false
            logger.warning("gateway handshake stalled; retrying", metadata: [
                "phase": "\(phase.rawValue)", "timeoutMs": .typed(timeoutMs),
            ])
            dropConnection(code: code, reason: reason, &actions)
        }
    }

    // MARK: Inbound

    private mutating func received(_ text: String, attempt: Int, _ actions: inout [Action]) {
        // The gateway may send its challenge before the upgrade completes: the first frame on
        // the attempt in progress adopts the connection.
        if state == .connecting(attempt: attempt) { opened(attempt, &actions) }
        guard state.openAttempt == attempt else { return }
        lastInboundMs = monotonicMs()
        let linked = state == .linked(attempt: attempt)
        if !linked, text.utf8.count > Self.preHelloMaxBytes {
            logger.warning("gateway sent an oversized frame before hello; closing")
            dropConnection(code: 1009, reason: "preauth payload too large", &actions)
            return
        }
        let frame: JSONValue
        do {
            frame = try JSONValue.parse(Array(text.utf8))
        } catch {
            return unreadable(text, reason: error.description, &actions)
        }
        guard case .object = frame, let type = frame["type"]?.stringValue else {
            return unreadable(text, reason: "not a JSON object with a type", &actions)
        }
        switch (type, state) {
        case ("event", .awaitingChallenge):
            guard frame["event"]?.stringValue == "connect.challenge" else { return }
            guard let nonce = frame["payload"]?["nonce"]?.stringValue?.trimmingSpaces(), !nonce.isEmpty else {
                dropConnection(code: 1008, reason: "connect challenge missing nonce", &actions)
                return
            }
            // Signed with the gateway's own time (the challenge `ts`), as today's clients do; a
            // challenge without a non-negative integer `ts` is invalid.
            guard let ts = frame["payload"]?["ts"]?.numberValue, ts >= 0, ts <= 9_007_199_254_740_991, ts.rounded() == ts else {
                logger.error("node host gateway connect failed: gateway connect challenge timestamp invalid",
                             metadata: ["retryInMs": .typed(Self.invalidChallengeRetryMs)])
                dropConnection(code: 1008, reason: "connect failed", retryIn: Self.invalidChallengeRetryMs, &actions)
                return
            }
            let requestId = newId()
            let signedAt = Int64(ts)
            state = .awaitingSignature(attempt: attempt, nonce: nonce, signedAt: signedAt, requestId: requestId)
            arm(.handshake(.signature, attempt: attempt, timeoutMs: AttemptPhase.signature.timeoutMs(cap: configuration?.handshakeTimeoutMs),
                           code: 1008, reason: "connect failed"), &actions)
            actions.append(.toSupervisor(.signRequest(SignRequest(requestId: requestId, nonce: nonce, signedAt: signedAt,
                                                                   version: signatureVersion))))
        case let ("res", .awaitingHello(_, connectId)):
            guard frame["id"]?.stringValue == connectId else { return }
            if frame["ok"]?.boolValue == true {
                hello(frame["payload"], attempt: attempt, &actions)
            } else {
                refused(frame["error"], &actions)
            }
        case ("event", .linked):
            linkedEvent(frame, &actions)
        case ("res", .linked):
            // The answer to a Supervisor request; those to our node.invoke.result and
            // node.event are best-effort and not read.
            guard let frameId = frame["id"]?.stringValue, let callId = pendingCalls.removeValue(forKey: frameId) else { return }
            actions.append(.toSupervisor(.gatewayReply(Self.reply(callId, to: frame))))
        default:
            break
        }
    }

    private mutating func signed(_ reply: SignReply, _ actions: inout [Action]) {
        guard case let .awaitingSignature(attempt, nonce, signedAt, requestId) = state, reply.requestId == requestId,
              let configuration else { return }
        guard let signature = reply.signature, let auth = reply.auth else {
            logger.error("supervisor refused to sign the connect payload", metadata: ["error": "\(reply.error ?? "-")"])
            dropConnection(code: 1008, reason: "connect failed", &actions)
            return
        }
        let connectId = newId()
        let frame = GatewayFrames.connect(id: connectId, configuration: configuration, auth: auth, signature: signature,
                                          signedAt: signedAt, nonce: nonce)
        state = .awaitingHello(attempt: attempt, connectId: connectId)
        connectSent = true
        arm(.handshake(.hello, attempt: attempt, timeoutMs: AttemptPhase.hello.timeoutMs(cap: configuration.handshakeTimeoutMs),
                       code: 1008, reason: "connect failed"), &actions)
        actions.append(.send(frame, attempt: attempt))
    }

    private mutating func hello(_ payload: JSONValue?, attempt: Int, _ actions: inout [Action]) {
        let policy = payload?["policy"]
        tickIntervalMs = min(max(1, (policy?["tickIntervalMs"]?.numberValue ?? 30_000).saturatingInt), 3_600_000)
        let auth = payload?["auth"]
        let capabilities = payload?["features"]?["capabilities"]?.arrayValue?.prefix(HelloSummary.maxCapabilities)
            .compactMap { $0.stringValue.map { String($0.prefix(128)) } }
        var summary = HelloSummary(
            protocol: payload?["protocol"]?.intValue ?? 3,
            deviceToken: auth?["deviceToken"]?.stringValue,
            role: auth?["role"]?.stringValue,
            scopes: auth?["scopes"]?.arrayValue?.compactMap(\.stringValue),
            tickIntervalMs: tickIntervalMs,
            serverVersion: payload?["server"]?["version"]?.stringValue.map { String($0.prefix(128)) }
        )
        // upstream's node host reads only `features.capabilities` (its worker-hosting options).
        summary.capabilities = capabilities
        disarm(&actions)
        state = .linked(attempt: attempt)
        backoff.reset()
        signatureVersion = .v3
        nextRetryAfterMs = nil
        actions.append(.toSupervisor(.helloOk(summary)))
        winnerSelected = true
        actions.append(.toSupervisor(.linkState(LinkState(phase: .connected, detail: currentEndpoint?.url))))
        actions.append(.startWatchdog(attempt: attempt, intervalMs: max(tickIntervalMs, 1000)))
    }

    /// How soon to ask again while the gateway is starting (upstream's client: its
    /// `retryAfterMs`, 500 by default, kept within 100–2000 ms).
    static func startupRetryMs(_ retryAfterMs: Int?) -> Int { min(2_000, max(100, retryAfterMs ?? 500)) }

    private mutating func refused(_ error: JSONValue?, _ actions: inout [Action]) {
        let rejection = GatewayFrames.rejection(from: error)
        if rejection.isGatewayStarting {
            // Not a refusal of us: the gateway is not ready yet. Close as upstream's client does
            // and come back shortly, without telling anyone.
            logger.debug("gateway starting; retrying", metadata: ["retryAfterMs": .typed(Self.startupRetryMs(rejection.retryAfterMs))])
            signatureVersion = .v3
            dropConnection(code: 1013, reason: "gateway starting", retryIn: Self.startupRetryMs(rejection.retryAfterMs), &actions)
            return
        }
        if rejection.detail == "DEVICE_AUTH_SIGNATURE_INVALID", signatureVersion == .v3 {
            logger.info("gateway rejected the v3 signature; retrying once with v2")
            signatureVersion = .v2
            nextRetryAfterMs = 0
        } else {
            signatureVersion = .v3
            nextRetryAfterMs = rejection.retryAfterMs
        }
        if rejection.isPairingRequired {
            actions.append(.toSupervisor(.linkState(LinkState(phase: .pairingPending, detail: rejection.requestId))))
            // An approval takes effect on the next connect: ask again soon, at a steady pace.
            nextRetryAfterMs = rejection.retryAfterMs ?? Self.pairingRetryMs
            backoff.reset()
        }
        actions.append(.toSupervisor(.connectRejected(rejection)))
        dropConnection(code: 1000, reason: "connect rejected", &actions)
    }

    private mutating func linkedEvent(_ frame: JSONValue, _ actions: inout [Action]) {
        switch frame["event"]?.stringValue {
        case "node.invoke.request":
            let request: InvokeRequest
            switch GatewayFrames.invokeRequest(from: frame["payload"]) {
            case let .success(parsed): request = parsed
            case let .failure(rejection):
                logger.warning("malformed node.invoke.request", metadata: ["id": "\(rejection.id ?? "-")", "reason": "\(rejection.message)"])
                countDropped(&actions)
                if let id = rejection.id { answerInvalid(id: id, nodeId: rejection.nodeId, message: rejection.message, &actions) }
                return
            }
            lastNodeId = request.nodeId
            if activeInvokes[request.id] == nil, activeInvokes.count >= IPCLimits.maxInFlight {
                let busy = InvokeResult(id: request.id, nodeId: request.nodeId, ok: false, payloadJSON: nil,
                                        error: WireError(code: "UNAVAILABLE", message: "node is busy: too many invokes in flight"))
                send(GatewayFrames.invokeResult(id: newId(), busy), &actions)
                return
            }
            // A redelivered id: the original is cancelled first, so the Supervisor frees its
            // slot before it counts the replacement (an id counts once on both sides).
            deliveries += 1
            if activeInvokes.updateValue(deliveries, forKey: request.id) != nil {
                actions.append(.toSupervisor(.invokeCancel(InvokeCancel(invokeId: request.id))))
            }
            var forwarded = request
            forwarded.serial = deliveries
            actions.append(.toSupervisor(.invoke(forwarded)))
        case "node.invoke.cancel":
            // `{invokeId, nodeId}`; anything else, or an id not active, is ignored (as upstream).
            guard let invokeId = frame["payload"]?["invokeId"]?.stringValue, frame["payload"]?["nodeId"]?.stringValue != nil,
                  activeInvokes.removeValue(forKey: invokeId) != nil else { return }
            actions.append(.toSupervisor(.invokeCancel(InvokeCancel(invokeId: invokeId))))
        case "node.invoke.input":
            // Input is for duplex commands; none of ours is one, so every frame is for an
            // invoke without an input channel: dropped, as upstream drops those.
            let id = frame["payload"]?["id"]?.stringValue ?? "-"
            logger.debug("node-host: dropped inactive or duplicate input for invoke \(String(id.prefix(64)))")
        case "node.pair.requested", "node.pair.resolved":
            // The Supervisor decides what they mean for this node; it gets the few fields it reads.
            let payload = frame["payload"]
            let field = { (key: String) in payload?[key]?.stringValue.map { String($0.prefix(Self.maxPairingField)) } }
            actions.append(.toSupervisor(.pairingEvent(PairingEvent(event: frame["event"]?.stringValue ?? "", requestId: field("requestId"),
                                                                    nodeId: field("nodeId"), decision: field("decision")))))
        case "shutdown":
            logger.info("gateway is shutting down; will reconnect")
        default:
            break
        }
    }

    /// A frame that cannot be read is logged (size and a prefix, rate-limited) and counted; an
    /// invoke whose id can still be read from the text gets an `INVALID_REQUEST` result.
    private mutating func unreadable(_ text: String, reason: String, _ actions: inout [Action]) {
        countDropped(&actions)
        let now = monotonicMs()
        if now - unreadableWindowStartMs > 60_000 {
            if unreadableSuppressed > 0 {
                logger.warning("suppressed \(unreadableSuppressed) more unreadable gateway frames in the last minute")
            }
            unreadableWindowStartMs = now
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
        guard case .linked = state, let (id, nodeId) = GatewayFrames.unreadableInvoke(text) else { return }
        answerInvalid(id: id, nodeId: nodeId, message: "INVALID_REQUEST: invoke frame is not valid JSON (\(reason))", &actions)
    }

    private mutating func answerInvalid(id: String, nodeId: String?, message: String, _ actions: inout [Action]) {
        let node = nodeId ?? lastNodeId ?? configuration?.deviceId ?? ""
        let result = InvokeResult(id: id, nodeId: node, ok: false, payloadJSON: nil,
                                  error: WireError(code: "INVALID_REQUEST", message: message))
        send(GatewayFrames.invokeResult(id: newId(), result), &actions)
    }

    /// Dropped frames reach the Supervisor's metrics in batches (at most one message a second).
    private mutating func countDropped(_ actions: inout [Action]) {
        droppedFrames += 1
        if droppedFrames == 1 { actions.append(.scheduleDroppedReport(afterMs: 1000)) }
    }

    // MARK: Supervisor requests

    /// Writes the Supervisor's request on the linked connection; without one (or past the
    /// bound, or with params that are not JSON) it is answered at once.
    private mutating func gatewayCall(_ call: GatewayCall, _ actions: inout [Action]) {
        guard case let .linked(attempt) = state else {
            actions.append(.toSupervisor(.gatewayReply(.unavailable(call.callId, "gateway not connected"))))
            return
        }
        guard pendingCalls.count < Self.maxPendingCalls else {
            actions.append(.toSupervisor(.gatewayReply(.unavailable(call.callId, "too many gateway requests in flight"))))
            return
        }
        guard let params = try? JSONValue.parse(Array(call.paramsJSON.utf8)) else {
            actions.append(.toSupervisor(.gatewayReply(GatewayReply(callId: call.callId, ok: false, payloadJSON: nil,
                                                                    error: WireError(code: "INVALID_REQUEST", message: "params are not JSON")))))
            return
        }
        let frameId = newId()
        pendingCalls[frameId] = call.callId
        actions.append(.send(GatewayFrames.request(id: frameId, method: call.method, params: params), attempt: attempt))
    }

    /// A `res` frame as the Supervisor reads it: ok and the payload, or the error's code and message.
    static func reply(_ callId: String, to frame: JSONValue) -> GatewayReply {
        if frame["ok"]?.boolValue == true {
            let payload = frame["payload"].map(GatewayFrames.encode)
            return GatewayReply(callId: callId, ok: true,
                                payloadJSON: payload.flatMap { $0.utf8.count <= GatewayReply.maxPayloadBytes ? $0 : nil }, error: nil)
        }
        let error = frame["error"]
        return GatewayReply(callId: callId, ok: false, payloadJSON: nil,
                            error: WireError(code: String((error?["code"]?.stringValue ?? "UNAVAILABLE").prefix(64)),
                                             message: String((error?["message"]?.stringValue ?? "").prefix(1024))))
    }

    // MARK: Outbound and teardown

    /// Writes `frame` on the linked connection. Every answer the machine writes belongs to an
    /// invoke of that connection, so there is never one to keep for a later connection.
    private func send(_ frame: JSONValue, _ actions: inout [Action]) {
        guard case let .linked(attempt) = state else { return }
        actions.append(.send(frame, attempt: attempt))
    }

    /// Sends a close frame with `code`, closes the socket, and schedules the next attempt.
    private mutating func dropConnection(code: UInt16, reason: String, retryIn: Int? = nil, _ actions: inout [Action]) {
        let open = state.openAttempt
        // A transport still opening has nothing to say goodbye on: close it at once.
        if case let .connecting(attempt) = state { actions.append(.abandon(attempt: attempt)) }
        leaveConnection(&actions)
        if let open { actions.append(.close(attempt: open, code: code, reason: reason)) }
        if let retryIn { nextRetryAfterMs = retryIn }
        scheduleReconnect(&actions)
    }

    private mutating func leaveConnection(_ actions: inout [Action]) {
        // Upstream's `cancelAll`: what this connection asked for is aborted with it.
        if !activeInvokes.isEmpty {
            activeInvokes.removeAll()
            actions.append(.toSupervisor(.invokeCancel(InvokeCancel(invokeId: nil))))
        }
        // Requests die with their connection (the gateway answers on the one they came on).
        for callId in pendingCalls.values.sorted() {
            actions.append(.toSupervisor(.gatewayReply(.unavailable(callId, "gateway connection closed"))))
        }
        pendingCalls.removeAll()
        disarm(&actions)
        // The watchdog runs exactly while linked.
        if case .linked = state { actions.append(.stopWatchdog) }
        if state == .stopped { return }
        state = .waiting
    }

    private mutating func scheduleReconnect(_ actions: inout [Action]) {
        if case .connecting = state { state = .waiting }
        guard state == .waiting, !reconnectPending else { return }
        // Upstream's candidate fallback: an attempt that ended before `connect` was written
        // moves on to the next endpoint at once; after the last one the round starts again at
        // the first, after the usual backoff (the first may only have been down for a moment).
        if !winnerSelected, !connectSent, let count = configuration.map({ 1 + $0.fallbacks.count }), count > 1 {
            if candidate + 1 < count {
                candidate += 1
                nextRetryAfterMs = nil
                reconnectPending = true
                logger.info("gateway endpoint unreachable before connect; trying the next one", metadata: ["url": "\(currentEndpoint?.url ?? "-")"])
                actions.append(.scheduleReconnect(afterMs: 0))
                return
            }
            candidate = 0
        }
        let delay = backoff.next(retryAfterMs: nextRetryAfterMs)
        nextRetryAfterMs = nil
        reconnectPending = true
        actions.append(.scheduleReconnect(afterMs: delay))
    }
}
