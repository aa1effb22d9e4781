import Dispatch
import Glibc
import Confinement
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// How the Supervisor ended, as a process exit status.
public enum SupervisorExit: Int32, Sendable {
    case ok = 0
    /// Terminal gateway auth error: let the service manager restart us with fresh credentials.
    case terminalAuth = 1
    case software = 70
    /// A worker could not confine itself (EX_OSERR); see the log line naming the step.
    case confinement = 71
}

/// Where the workers are and how long they get to stop.
public struct WorkerSettings: Sendable {
    public var netWorkerPath: String
    public var execWorkerPath: String
    /// How long workers get to exit after `shutdown` before they are killed.
    public var shutdownGrace: TimeAmount
    public var netConfinement: ConfinementOptions
    public var execConfinement: ConfinementOptions
    /// Where `status` asks the running node for its live state (nil: no socket).
    public var controlSocketPath: String?
    /// The BrowserWorker and its configuration (nil: `browser.proxy` is not served).
    public var browser: BrowserWorkerSettings?
    /// Where the node records why it last stopped on its own (nil: nowhere).
    public var stateDir: String?
    /// `doctor`'s authentication check: connect once, report the gateway's verdict, stop.
    public var probe: ProbeSettings?

    public init(netWorkerPath: String, execWorkerPath: String, shutdownGrace: TimeAmount = .milliseconds(2500),
                netConfinement: ConfinementOptions = .init(), execConfinement: ConfinementOptions = .init(),
                controlSocketPath: String? = nil, browser: BrowserWorkerSettings? = nil, stateDir: String? = nil,
                probe: ProbeSettings? = nil) {
        self.browser = browser
        self.stateDir = stateDir
        self.probe = probe
        self.netWorkerPath = netWorkerPath
        self.execWorkerPath = execWorkerPath
        self.shutdownGrace = shutdownGrace
        self.netConfinement = netConfinement
        self.execConfinement = execConfinement
        self.controlSocketPath = controlSocketPath
    }
}

/// `run --check-auth` (used by `doctor`): one connection with the node's real credentials
/// through the confined NetWorker, its outcome as JSON, then a clean stop.
public struct ProbeSettings: Sendable {
    public var timeout: TimeAmount
    public init(timeout: TimeAmount = .seconds(25)) { self.timeout = timeout }
}

/// The privileged process: keeps the two workers running and is the only place where a
/// decision to run a command is made.
///
/// Everything here runs on one event loop, so there are no locks: IPC callbacks, timers and
/// signals are all serialised. Worker input is checked against `IPCPolicy` first.
public final class Supervisor {
    public let loop: EventLoop
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    let settings: WorkerSettings
    let link: LinkAuthority

    let net: WorkerSlot<NetToSupervisor, SupervisorToNet>
    let exec: WorkerSlot<ExecToSupervisor, SupervisorToExec>
    private(set) var netPhase: NetPhase = .awaitingReady
    private(set) var execPhase: ExecPhase = .awaitingReady
    let runs: ExecDispatcher
    /// Started on the first `browser.proxy` call.
    var browser: WorkerSlot<BrowserToSupervisor, SupervisorToBrowser>?
    var browserPhase: BrowserPhase = .notStarted
    var browserCalls = BrowserCalls()

    private(set) var stopping = false
    private let exitPromise: EventLoopPromise<SupervisorExit>
    private var exitCode: SupervisorExit = .ok
    private var signalSources: [DispatchSourceSignal] = []
    private let controlSocket = ControlSocket()
    private let readiness = ServiceReadiness()
    /// The gateway's verdict in probe mode (`settings.probe`).
    public private(set) var probeOutcome: JSONValue?

    public init(settings: WorkerSettings, link: LinkAuthority, logger: Logger, maxConcurrentRuns: Int = 8, maxQueuedRuns: Int = 64) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        self.logger = logger
        self.settings = settings
        self.link = link
        let workerEnvironment = Self.workerEnvironment()
        net = WorkerSlot(kind: .net, executable: settings.netWorkerPath, arguments: settings.netConfinement.arguments,
                         environment: workerEnvironment, loop: loop, logger: logger)
        exec = WorkerSlot(kind: .exec, executable: settings.execWorkerPath, arguments: settings.execConfinement.arguments,
                          environment: workerEnvironment, loop: loop, logger: logger)
        exitPromise = loop.makePromise()
        runs = ExecDispatcher(maxConcurrent: maxConcurrentRuns, maxQueued: maxQueuedRuns, logger: logger)
    }

    /// The minimal environment a worker starts with (configuration arrives over IPC).
    static func workerEnvironment() -> [String: String] {
        var environment = ["PATH": ExecutableSearch.defaultPath]
        for key in ["LANG", "LC_ALL", "TZ", "JOURNAL_STREAM", LineLogHandler.formatVariable] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return environment
    }

    /// Starts the workers and blocks until the Supervisor exits; returns the exit status.
    public func run() -> Int32 {
        loop.execute { self.start() }
        let code = (try? exitPromise.futureResult.wait()) ?? .software
        for source in signalSources { source.cancel() }
        try? group.syncShutdownGracefully()
        return code.rawValue
    }

    private func start() {
        installSignalHandlers()
        becomeChildSubreaper()
        wireNet()
        wireExec()
        runs.send = { [weak self] order in self?.exec.send(.run(order)) }
        net.spawn()
        if let probe = settings.probe {
            loop.scheduleTask(in: probe.timeout) { [weak self] in
                self?.finishProbe(["ok": .bool(false), "result": .string("timeout"),
                                   "message": .string(self?.link.status.lastError ?? "no answer from the gateway")])
            }
        } else {
            exec.spawn()
        }
        if let path = settings.controlSocketPath {
            controlSocket.start(path: path, group: group, logger: logger) { [unowned self] in self.liveStatus() }
        }

        // Fallback reaper in case a SIGCHLD is coalesced or missed.
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            self?.reapChildren()
        }
    }

    // MARK: Signals and children

    private func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                self?.loop.execute { self?.shutdown(reason: "signal \(number)", code: .ok) }
            }
            source.resume()
            signalSources.append(source)
        }
        let child = DispatchSource.makeSignalSource(signal: SIGCHLD, queue: .global())
        child.setEventHandler { [weak self] in
            self?.loop.execute { self?.reapChildren() }
        }
        child.resume()
        signalSources.append(child)
    }

    func reapChildren() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            let description = Self.describe(status: status)
            net.reaped(pid: pid, status: description)
            exec.reaped(pid: pid, status: description)
            browser?.reaped(pid: pid, status: description)
        }
        if stopping, net.isGone, exec.isGone, browser?.isGone ?? true {
            finishShutdown()
        }
    }

    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit \((status >> 8) & 0xff)" }
        return "signal \(signal)"
    }

    // MARK: NetWorker

    private func wireNet() {
        net.onSpawned = { [weak self] in self?.netPhase = .awaitingReady }
        net.onMessage = { [weak self] message in self?.handleNet(message) }
        net.onDown = { [weak self] reason in
            guard let self else { return }
            if !stopping { link.metrics.workerRestarted("net") }
            if !stopping { netPhase = .awaitingReady }
            link.linkLost(reason: reason)
        }
    }

    func handleNet(_ message: NetToSupervisor) {
        if stopping { return }
        guard IPCPolicy.permits(message.kind, in: netPhase) else {
            net.refuse("\"\(message.kind.rawValue)\" is not allowed while the link is \(netPhase.rawValue)")
            return
        }
        switch message {
        case let .ready(hello):
            guard confined(hello, kind: "net", pid: net.pid, options: settings.netConfinement) else { return }
            netPhase = .linking
            net.send(.configure(link.configuration()))
        case let .signRequest(request):
            net.send(.signReply(link.sign(request)))
        case let .helloOk(hello):
            netPhase = .linked
            if settings.probe != nil { return finishProbe(["ok": .bool(true), "result": .string("connected")]) }
            link.accepted(hello)
            if let dir = settings.stateDir { LastFailure.clear(stateDir: dir) }
            readiness.update("connected to \(link.settings.url)", ready: true)
        case let .connectRejected(rejection):
            if settings.probe != nil { return finishProbe(Self.probeOutcome(rejection)) }
            switch link.rejected(rejection) {
            case .keepRetrying:
                if let request = link.status.pendingRequestId, link.status.phase == .pairingPending {
                    readiness.update("waiting for pairing approval: \(PairingApproval.command(request))", ready: true)
                } else {
                    readiness.update("gateway refused connect: \(link.status.lastError ?? "-"); retrying", ready: true)
                }
            case let .exit(reason):
                let code = rejection.detail
                logger.error("node host gateway reconnect paused after close (1008): \(rejection.message) detail=\(code); exiting for supervisor restart",
                             metadata: ["reason": "\(reason)", "code": "\(code)"])
                fail(LastFailure(exitCode: SupervisorExit.terminalAuth.rawValue, code: code, reason: reason))
                shutdown(reason: "terminal gateway error", code: .terminalAuth)
            }
        case let .linkState(state):
            if state.phase != .connected, netPhase == .linked { netPhase = .linking }
            link.report(state)
            if state.phase == .disconnected, let detail = state.detail {
                if settings.probe != nil {
                    return finishProbe(["ok": .bool(false), "result": .string("unreachable"), "message": .string(detail)])
                }
                readiness.update("not connected: \(detail); retrying", ready: true)
            }
        case let .invoke(request):
            link.invoke(request) { [weak self] outcome in
                self?.deliver(outcome)
            }
        case let .framesDropped(report):
            link.metrics.framesDropped(max(0, min(report.count, 1_000_000)))
        case let .metricsRequest(request):
            net.send(.metricsReply(MetricsReply(requestId: String(request.requestId.prefix(64)), text: link.metrics.exposition())))
        }
    }

    /// Sends what an invoke produced (events first, then the result) to the NetWorker, in one write.
    func deliver(_ output: InvokeOutput) {
        net.send(contentsOf: output.events.map(SupervisorToNet.nodeEvent) + [.invokeResult(output.result)])
    }

    // MARK: ExecWorker

    private func wireExec() {
        exec.onSpawned = { [weak self] in self?.execPhase = .awaitingReady }
        exec.onExited = { [weak self] in self?.sweepOrphanedCommands() }
        exec.onMessage = { [weak self] message in self?.handleExec(message) }
        exec.onDown = { [weak self] reason in
            guard let self else { return }
            if !stopping { link.metrics.workerRestarted("exec") }
            execPhase = stopping ? .stopping : .awaitingReady
            runs.workerDied(reason: reason)
        }
    }

    func handleExec(_ message: ExecToSupervisor) {
        guard IPCPolicy.permits(message.kind, in: execPhase) else {
            exec.refuse("\"\(message.kind.rawValue)\" is not allowed while the exec worker is \(execPhase.rawValue)")
            return
        }
        switch message {
        case let .ready(hello):
            guard confined(hello, kind: "exec", pid: exec.pid, options: settings.execConfinement) else { return }
            execPhase = .ready
            runs.workerReady()
        case let .runFinished(outcome):
            if let reason = runs.finished(outcome) { exec.refuse(reason) }
        }
    }

    /// Checks a worker's confinement (its report against /proc). A worker that is not
    /// confined as required is never used: the Supervisor exits 71 naming the step.
    func confined(_ hello: WorkerHello, kind: String, pid: pid_t?, options: ConfinementOptions) -> Bool {
        let kernel = pid.flatMap(ConfinementCheck.KernelView.read(pid:))
        if let problem = ConfinementCheck.problem(kind: kind, report: hello.confinement, kernel: kernel, optedOut: options.optedOut) {
            let step = hello.confinement?.failure?.step.rawValue ?? "<step>"
            logger.critical("\(problem); refusing to run without it (to accept that risk: --unconfined \(kind):\(step), see docs/security.md)")
            fail(LastFailure(exitCode: SupervisorExit.confinement.rawValue, reason: "\(problem) (to accept that risk: --unconfined \(kind):\(step))"))
            shutdown(reason: "\(kind) worker not confined", code: .confinement)
            return false
        }
        var metadata: Logger.Metadata = ["pid": .typed(pid ?? -1)]
        for entry in hello.confinement?.entries ?? [] { metadata[entry.step.rawValue] = "\(entry.state.rawValue)" }
        if let uid = kernel?.uid { metadata["uid"] = .typed(uid) }
        logger.info("\(kind) worker ready", metadata: metadata)
        return true
    }

    // MARK: Shutdown

    /// Stops accepting work, stops both workers (the ExecWorker kills running commands),
    /// and exits with `code` once they are gone or their grace period has passed.
    public func shutdown(reason: String, code: SupervisorExit) {
        loop.preconditionInEventLoop()
        guard !stopping else { return }
        stopping = true
        exitCode = code
        logger.info("shutting down", metadata: ["reason": "\(reason)"])
        readiness.stopping("stopping: \(reason)")
        netPhase = .stopping
        execPhase = .stopping
        runs.shutdown()
        net.stop(goodbye: .shutdown(Empty()), grace: settings.shutdownGrace)
        exec.stop(goodbye: .shutdown(Empty()), grace: settings.shutdownGrace)
        stopBrowser()
        // Hard deadline: whatever is left is killed and we exit anyway.
        loop.scheduleTask(in: settings.shutdownGrace + .milliseconds(500)) { [weak self] in
            self?.finishShutdown()
        }
        reapChildren()
    }

    private var finished = false

    private func finishShutdown() {
        guard !finished else { return }
        finished = true
        runs.killAll()
        // Anything re-parented to us (we are a subreaper) goes too.
        killRemainingDescendants()
        // A browser worker killed here leaves its Chromium to us only once it is gone: wait for
        // it (it was just sent SIGKILL), then sweep what it left.
        if let pid = browser?.pid {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        sweepOrphanedBrowsers()
        reapChildren()
        if let path = settings.controlSocketPath { controlSocket.stop(path: path) }
        logger.info("stopped", metadata: ["exit": .typed(exitCode.rawValue)])
        exitPromise.succeed(exitCode)
    }

    /// Kills what a dead ExecWorker left running. Its commands were re-parented to us (a
    /// subreaper) by the time it is reaped; each leads its own process group.
    func sweepOrphanedCommands() {
        sweepOrphans(log: "killed a command left by the exec worker") { _ in true }
    }

    /// Kills each of our children that is not a live worker and that `matches` (with its
    /// process group): what a dead worker left re-parented to us.
    func sweepOrphans(log message: Logger.Message, matches: (pid_t) -> Bool) {
        let workers = Set([net.pid, exec.pid, browser?.pid].compactMap { $0 })
        for pid in Self.childPids() where !workers.contains(pid) && matches(pid) {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            logger.warning(message, metadata: ["pid": .typed(pid)])
        }
        reapChildren()
    }

    private func killRemainingDescendants() {
        for pid in Self.childPids() { kill(pid, SIGKILL) }
    }

    /// Our direct children (listed per thread: they were spawned from different threads).
    static func childPids() -> [pid_t] {
        guard let directory = opendir("/proc/self/task") else { return [] }
        defer { closedir(directory) }
        var pids: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let task = Int32(name),
                  let children = try? String(contentsOfProcFile: "/proc/self/task/\(task)/children") else { continue }
            pids += children.split(separator: " ").compactMap { pid_t(String($0).trimmingWhitespace()) }
        }
        return pids
    }
}

extension String {
    /// Reads a small `/proc` file (their size is not known in advance, so no `stat`).
    init(contentsOfProcFile path: String) throws {
        self = String(decoding: try readWholeFile(path), as: UTF8.self)
    }
}

extension Supervisor {
    /// The live state `openclaw-node status` shows (read on the event loop).
    func liveStatus() -> NodeLiveStatus {
        let status = link.status
        return NodeLiveStatus(
            pid: getpid(), version: NodeVersion.current, phase: status.phase.rawValue,
            connected: status.phase == .connected, paired: status.paired, pendingRequestId: status.pendingRequestId,
            lastError: status.lastError, connects: status.connects,
            runsInFlight: runs.runningCount, runsQueued: runs.queuedCount,
            workerRestarts: ["net": net.restarts, "exec": exec.restarts, "browser": browser?.restarts ?? 0]
        )
    }
}

extension Supervisor: ExecRunner {
    public func submitRun(_ order: RunOrder, completion: @escaping (Result<RunOutcome, WireError>) -> Void) -> WireError? {
        loop.preconditionInEventLoop()
        return runs.submit(order, completion: completion)
    }
}

// MARK: Failures and the probe

extension Supervisor {
    /// Records why the node stops on its own, for `status` and `install` (and the unit's status line).
    func fail(_ failure: LastFailure) {
        if let dir = settings.stateDir { failure.save(stateDir: dir) }
        readiness.update("failed: \(failure.reason)", ready: false)
    }

    /// Ends probe mode with `outcome` (the first verdict wins).
    func finishProbe(_ outcome: [String: JSONValue]) {
        guard probeOutcome == nil, !stopping else { return }
        probeOutcome = .object(outcome)
        shutdown(reason: "authentication check done", code: .ok)
    }

    /// The probe's report of a refused `connect`: the gateway's code, message and pairing request.
    static func probeOutcome(_ rejection: ConnectRejection) -> [String: JSONValue] {
        var outcome: [String: JSONValue] = [
            "ok": .bool(false), "result": .string(rejection.isPairingRequired ? "pairing-pending" : "refused"),
            "code": .string(rejection.detail), "message": .string(rejection.message),
        ]
        if let request = rejection.requestId { outcome["requestId"] = .string(request) }
        return outcome
    }
}
