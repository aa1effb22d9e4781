import Confinement
import Dispatch
import Logging
import NIOCore
import OpenClawIPC

/// Phases of the NetWorker link, as its monitor tracks them.
public enum NetPhase: String, Sendable, CaseIterable {
    /// Spawned; the first message must be `ready`.
    case awaitingReady
    /// Configured; connecting or handshaking with the gateway (no hello yet).
    case linking
    /// The gateway accepted `connect` (hello-ok); invokes may arrive.
    case linked
    /// The Supervisor is shutting down; late messages are dropped, not obeyed.
    case stopping
}

/// What the link's monitor tells the Supervisor (readiness, the probe, a terminal refusal).
enum LinkEvent {
    /// hello-ok.
    case connected
    /// The gateway refused `connect`; `verdict` is the link authority's (nil in probe mode,
    /// where nothing is stored or retried).
    case rejected(ConnectRejection, verdict: RejectionVerdict?)
    /// An attempt failed before any verdict (unreachable, TLS, closed), as one sentence.
    case unreachable(String)
}

/// The NetWorker's monitor. The NetWorker is the untrusted side: it may only ask for what
/// this menu lists — a signature over a connect payload the Supervisor builds (once per
/// connect attempt), report the handshake's outcome, and pass on invokes once linked (at
/// most `IPCLimits.maxInFlight` unanswered).
final class NetMonitor: WorkerMonitor<NetToSupervisor, SupervisorToNet, NetPhase> {
    let link: LinkAuthority
    let router: CommandRouter
    /// `doctor`'s authentication check: report the gateway's verdict, store and retry nothing.
    let probe: Bool
    var onEvent: (LinkEvent) -> Void = { _ in }

    /// Invokes being served, by gateway id. An id names one invoke: a redelivery replaces (and
    /// cancels) its original, and only the current one's answer is published.
    private var active: [String: ActiveInvoke] = [:]

    private struct ActiveInvoke {
        let cancellation: InvokeCancellation
        var deadline: Scheduled<Void>?
    }

    /// `node.host.stats` while linked: right after hello, then every `hostStats.intervalMs`.
    struct HostStatsSchedule {
        var intervalMs = HostStats.intervalMs
        /// The volume whose disk is reported (the node's home).
        var home = "/"
    }
    let hostStats: HostStatsSchedule
    private var statsTask: RepeatedTask?

    /// `node.skills.update` while linked: after hello, then whenever the folder changes.
    struct SkillsSchedule {
        var directory: String?
        var pollMs = 5_000
    }
    let skills: SkillsSchedule
    private var skillsTask: RepeatedTask?
    /// The folder as last published on this link (nil: not yet).
    private var skillsPublished: [String]?
    private var skillsLooking = false
    private var lastSkillsProblem: String?

    /// The Supervisor's requests to the gateway, waiting for the NetWorker's `gatewayReply`.
    private lazy var calls = PendingCalls<String, GatewayReply>(loop: context.loop)
    /// `node.pluginTools.update` params (the MCP catalogue), published after each hello and
    /// when they change; nil: nothing is published (a surface without `mcp.tools.call.v1`).
    var pluginToolsParams: (() -> String)?
    private lazy var pluginTools = OptionalPublication(
        method: "node.pluginTools.update", label: "plugin tool",
        send: { [unowned self] params, completion in callGateway("node.pluginTools.update", paramsJSON: params, completion: completion) },
        schedule: { [unowned self] ms, body in _ = context.loop.scheduleTask(in: .milliseconds(Int64(ms)), body) },
        log: { [unowned self] line in context.logger.warning("\(line)") })
    /// Longest wait for a gateway response (upstream's client request timeout).
    static let callTimeout = TimeAmount.seconds(30)
    /// The next question about a pending command surface.
    private var pairingRetry: Scheduled<Void>?

    /// The invoke's own deadline when the gateway names none (as the gateway's default).
    static let defaultInvokeTimeoutMs = 30_000

    /// The rows a connect attempt may use once each; re-armed when a new attempt starts.
    private static let perAttempt: [NetToSupervisor.Kind] = [.signRequest, .helloOk, .connectRejected]

    init(launch: WorkerLaunch, confinement: ConfinementOptions, environment: [String: String], context: MonitorContext,
         link: LinkAuthority, probe: Bool, hostStats: HostStatsSchedule = .init(), skills: SkillsSchedule = .init()) {
        self.link = link
        self.hostStats = hostStats
        self.skills = skills
        router = link.router
        self.probe = probe
        super.init(role: .net, launch: launch, confinement: confinement, environment: environment,
                   initialPhase: .awaitingReady, context: context)
        menu = Menu(subject: "the link", rows: [
            // Once per worker, first thing after start.
            .init(.ready, in: [.awaitingReady], limit: .once) { [unowned self] in
                if case let .ready(hello) = $0 { ready(hello) }
            },
            // A connect signature over a payload the Supervisor builds; only before hello.
            .init(.signRequest, in: [.linking], limit: .once) { [unowned self] in
                if case let .signRequest(request) = $0 { slot.send(.signReply(link.sign(request))) }
            },
            // The handshake succeeded: ends `linking`.
            .init(.helloOk, in: [.linking], limit: .once) { [unowned self] in
                if case let .helloOk(hello) = $0 { helloOk(hello) }
            },
            // The gateway refused `connect` (pairing, auth): only during the handshake.
            .init(.connectRejected, in: [.linking], limit: .once) { [unowned self] in
                if case let .connectRejected(rejection) = $0 { rejected(rejection) }
            },
            // Link progress for status and logs; a new attempt re-arms the rows above.
            .init(.linkState, in: [.linking, .linked, .stopping]) { [unowned self] in
                if case let .linkState(state) = $0 { linkState(state) }
            },
            // Work from the gateway: only on an accepted link, and bounded.
            .init(.invoke, in: [.linked], limit: .inFlight(IPCLimits.maxInFlight)) { [unowned self] in
                if case let .invoke(request) = $0 { invoke(request) }
            },
            // A Prometheus scrape on the NetWorker's loopback listener: counters only.
            .init(.metricsRequest, in: [.linking, .linked]) { [unowned self] in
                if case let .metricsRequest(request) = $0 {
                    slot.send(.metricsReply(MetricsReply(requestId: String(request.requestId.prefix(64)),
                                                         text: context.metrics.exposition())))
                }
            },
            // Gateway frames the link could not serve, counted: batched, one a second.
            .init(.framesDropped, in: [.linking, .linked]) { [unowned self] in
                if case let .framesDropped(report) = $0 { context.metrics.framesDropped(max(0, min(report.count, 1_000_000))) }
            },
            // The gateway cancelled an invoke, or the connection its invokes came on is gone. It can
            // only stop work: an unknown id does nothing.
            .init(.invokeCancel, in: [.linking, .linked]) { [unowned self] in
                guard case let .invokeCancel(cancel) = $0 else { return }
                if let id = cancel.invokeId { self.cancel(id) } else { cancelAll() }
            },
            // The gateway's answer to a request of ours; one that nobody waits for is dropped.
            .init(.gatewayReply, in: [.linking, .linked, .stopping]) { [unowned self] in
                if case let .gatewayReply(reply) = $0 { calls.complete(reply.callId, with: .success(reply)) }
            },
            // A pairing event the gateway sent this node: it can only make the node ask again.
            .init(.pairingEvent, in: [.linked]) { [unowned self] in
                if case let .pairingEvent(event) = $0, !probe { link.pairingEvent(event) }
            },
        ])
        link.perform = { [unowned self] effect in performPairing(effect) }
    }

    override var spawnedPhase: NetPhase { .awaitingReady }

    func start() { slot.spawn() }

    // MARK: Menu handlers

    private func ready(_ hello: WorkerHello) {
        guard accept(hello) else { return }
        phaseChanged(to: .linking)
        slot.send(.configure(link.configuration()))
    }

    private func helloOk(_ hello: HelloSummary) {
        phaseChanged(to: .linked)
        if !probe {
            link.accepted(hello)
            startHostStats()
            startSkills()
            pluginTools.connected()
            publishPluginTools()
        }
        onEvent(.connected)
    }

    /// Upstream's cadence: one sample at once, then one per interval, while this link lasts.
    private func startHostStats() {
        statsTask?.cancel()
        // A restricted surface (`--commands`) publishes no host stats, as upstream.
        guard router.allowlist == nil else { return }
        let interval = TimeAmount.milliseconds(Int64(max(1, hostStats.intervalMs)))
        statsTask = context.loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { [weak self] _ in
            self?.sampleHostStats()
        }
    }

    /// Samples off the event loop: `statvfs` on a home that is a hung network mount must not
    /// stall the Supervisor. At most one sample is in flight; a tick that finds one still
    /// running is skipped (a hung mount holds one thread, never more).
    private var sampling = false
    private static let sampler = DispatchQueue(label: "openclaw-node.host-stats")

    private func sampleHostStats() {
        guard phase == .linked, !sampling else { return }
        sampling = true
        let home = hostStats.home
        let loop = context.loop
        Self.sampler.async { [weak self] in
            let event = HostStats.nodeEvent(HostStats.sample(home: home))
            loop.execute {
                guard let self else { return }
                self.sampling = false
                if self.phase == .linked { self.slot.send(.nodeEvent(event)) }
            }
        }
    }

    // MARK: Requests to the gateway

    /// The catalogue changed (or a hello came): publish it, once per distinct set.
    func publishPluginTools() {
        guard phase == .linked, !probe, let params = pluginToolsParams?() else { return }
        pluginTools.publish(params)
    }

    /// Asks the gateway `method` on the linked connection; `completion` gets its response,
    /// or a failure when the link goes down or no answer comes in time.
    func callGateway(_ method: String, paramsJSON: String, completion: @escaping (Result<GatewayReply, WireError>) -> Void) {
        let callId = RandomID.uuid()
        calls.add(callId, deadline: Self.callTimeout, completion: completion)
        slot.send(.gatewayCall(GatewayCall(callId: callId, method: method, paramsJSON: paramsJSON)))
    }

    private func performPairing(_ effect: PairingProgress.Effect) {
        switch effect {
        case .askSurface:
            guard phase == .linked else { return link.surfaceAnswered(.retry("gateway not connected")) }
            callGateway(SurfaceAnswer.method, paramsJSON: SurfaceAnswer.paramsJSON) { [weak self] reply in
                self?.link.surfaceAnswered(SurfaceAnswer(reply))
            }
        case let .scheduleRetry(afterMs):
            pairingRetry?.cancel()
            pairingRetry = context.loop.scheduleTask(in: .milliseconds(Int64(afterMs))) { [weak self] in
                self?.pairingRetry = nil
                self?.link.pairingRetryDue()
            }
        case .cancelRetry:
            pairingRetry?.cancel()
            pairingRetry = nil
        case .log:
            break  // applied by the link authority
        }
    }

    /// The connection is gone: its requests fail first, then the pairing stops asking.
    private func linkGone() {
        calls.failAll(WireError(code: "UNAVAILABLE", message: "gateway connection closed"))
        link.pairingDisconnected()
    }

    private func stopHostStats() {
        statsTask?.cancel()
        statsTask = nil
        skillsTask?.cancel()
        skillsTask = nil
    }

    /// Publishes the skills at once, then again each time the folder's signature changes. A
    /// restricted surface (`--commands`) publishes none, as upstream.
    private func startSkills() {
        skillsTask?.cancel()
        skillsPublished = nil
        guard let directory = skills.directory, router.allowlist == nil else { return }
        let interval = TimeAmount.milliseconds(Int64(max(100, skills.pollMs)))
        skillsTask = context.loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { [weak self] _ in
            self?.lookAtSkills(directory)
        }
    }

    /// Off the event loop, like the host stats: the folder is read only when it changed.
    private func lookAtSkills(_ directory: String) {
        guard phase == .linked, !skillsLooking else { return }
        skillsLooking = true
        let published = skillsPublished
        let loop = context.loop
        let logger = context.logger
        Self.sampler.async { [weak self] in
            let signature = NodeSkills.signature(directory)
            let scanned = signature == published ? nil : NodeSkills.scan(directory) { logger.warning("\($0)") }
            loop.execute {
                guard let self else { return }
                self.skillsLooking = false
                guard let scanned, self.phase == .linked else { return }
                self.skillsPublished = signature
                self.callGateway(NodeSkills.method, paramsJSON: NodeSkills.paramsJSON(scanned)) { [weak self] reply in
                    guard let self else { return }
                    switch reply {
                    case let .success(answer) where answer.ok:
                        self.lastSkillsProblem = nil
                        self.context.logger.info("node host skills published", metadata: ["count": .typed(scanned.count)])
                    case let .success(answer):
                        self.skillsNotPublished(answer.error.map { "\($0.code): \($0.message)" } ?? "refused")
                    case let .failure(error):
                        self.skillsNotPublished("\(error.code): \(error.message)")
                    }
                }
            }
        }
    }

    /// Logged once per distinct problem; the next change of the folder (or the next hello) tries again.
    private func skillsNotPublished(_ problem: String) {
        guard problem != lastSkillsProblem else { return }
        lastSkillsProblem = problem
        context.logger.info("node host skills not published", metadata: ["reason": "\(problem)"])
    }

    private func rejected(_ rejection: ConnectRejection) {
        onEvent(.rejected(rejection, verdict: probe ? nil : link.rejected(rejection)))
    }

    private func linkState(_ state: LinkState) {
        if state.phase == .connecting { menu.rearm(Self.perAttempt) }
        if state.phase != .connected, phase == .linked {
            phaseChanged(to: .linking)
            stopHostStats()
            linkGone()
        }
        link.report(state)
        if state.phase == .disconnected, let detail = state.detail { onEvent(.unreachable(detail)) }
    }

    /// Routes an invoke to its handler and sends what it produced back on the same worker. A
    /// cancelled or replaced invoke publishes nothing; neither does one of a dead worker's link
    /// (the gateway saw that connection close).
    private func invoke(_ request: InvokeRequest) {
        // The label is the command only when the node serves it: a gateway inventing command
        // names must not grow the registry without bound.
        let label = router.serves(request.command) ? request.command : "other"
        // Redelivered: the original is aborted first (upstream), and the id counts once.
        cancel(request.id)
        if !probe { link.pairingInvokeArrived() }
        let cancellation = InvokeCancellation()
        let generation = slot.generation
        let publish = { [weak self] (output: InvokeOutput) -> Void in
            guard let self, let invoke = active[request.id], invoke.cancellation === cancellation else { return }
            active[request.id] = nil
            invoke.deadline?.cancel()
            context.metrics.invoke(label, ok: output.result.ok)
            guard slot.generation == generation else { return }
            menu.release(.invoke)
            slot.send(contentsOf: output.events.map(SupervisorToNet.nodeEvent) + [.invokeResult(output.result)])
        }
        // The invoke's own deadline (0: none): past it the work is cancelled and the gateway
        // gets a structured error instead of its own timeout (upstream's node session, #1357).
        let timeoutMs = request.timeoutMs ?? Self.defaultInvokeTimeoutMs
        let deadline = timeoutMs > 0 ? context.loop.scheduleTask(in: .milliseconds(Int64(min(timeoutMs, IPCLimits.maxTimerMs)))) {
            publish(InvokeOutput(result: .failure(request, code: "UNAVAILABLE", message: "node invoke timed out")))
            cancellation.cancel()
        } : nil
        active[request.id] = ActiveInvoke(cancellation: cancellation, deadline: deadline)
        router.route(request, cancellation: cancellation, completion: publish)
    }

    /// Stops `id`'s work; nothing it produces is published. Unknown or finished: nothing.
    private func cancel(_ id: String) {
        guard let invoke = active.removeValue(forKey: id) else { return }
        menu.release(.invoke)
        invoke.deadline?.cancel()
        invoke.cancellation.cancel()
    }

    /// Every invoke of the lost connection (or of a dead NetWorker) is cancelled.
    private func cancelAll() {
        let cancelled = active
        active.removeAll()
        for _ in cancelled { menu.release(.invoke) }
        if !cancelled.isEmpty {
            context.logger.info("gateway connection lost; cancelled its invokes", metadata: ["count": .typed(cancelled.count)])
        }
        for (_, invoke) in cancelled {
            invoke.deadline?.cancel()
            invoke.cancellation.cancel()
        }
    }

    // MARK: Worker death and shutdown

    override func workerDown(reason: String) {
        if !context.stopping { phaseChanged(to: .awaitingReady) }
        // A NetWorker crash is a connection loss.
        stopHostStats()
        cancelAll()
        linkGone()
        link.linkLost(reason: reason)
    }

    func shutdown() {
        stopHostStats()
        performPairing(.cancelRetry)
        stop(goodbye: .shutdown(Empty()), stoppingPhase: .stopping)
    }
}
