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
    /// Stopped by a signal, as upstream's node host exits: 128 + the signal (SIGHUP 129,
    /// SIGINT 130, SIGTERM 143). The unit counts 130 and 143 as success.
    case hangup = 129
    case interrupted = 130
    case terminated = 143

    static func stopped(by signal: Int32) -> SupervisorExit {
        switch signal {
        case SIGINT: return .interrupted
        case SIGHUP: return .hangup
        default: return .terminated
        }
    }
}

/// How the workers are started and how long they get to stop.
public struct WorkerSettings: Sendable {
    public var netWorker: WorkerLaunch
    public var execWorker: WorkerLaunch
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
    /// Commands run at once, and how many more may wait.
    public var maxConcurrentRuns: Int
    public var maxQueuedRuns: Int
    /// `node.host.stats` every this many ms while linked (upstream: 60 000).
    public var hostStatsIntervalMs: Int = HostStats.intervalMs
    /// The volume `node.host.stats` reports (the node's home).
    public var home: String = "/"
    /// `connect --service`: stop (exit 0) after the first hello, once the device token is stored.
    public var stopAfterFirstHello = false
    /// Where node-hosted skills are read (nil: `nodeHost.skills.enabled: false`), and how often
    /// the folder is looked at for changes while linked.
    public var skillsDirectory: String?
    public var skillsPollMs = 5_000
    /// The files role (one process per `fs.listDir`, `terminal.upload`, clean-up) and the
    /// confinement its processes start with (the mode is added per request).
    public var filesWorker: WorkerLaunch = .ownBinary(as: .files)
    public var filesConfinement = ConfinementOptions()
    /// The McpWorker (nil: the config names no MCP server).
    public var mcp: McpWorkerSettings?
    /// Whether `node.pluginTools.update` is published (the surface advertises `mcp.tools.call.v1`).
    public var publishesPluginTools = true

    public init(netWorker: WorkerLaunch = .ownBinary(as: .net), execWorker: WorkerLaunch = .ownBinary(as: .exec),
                shutdownGrace: TimeAmount = .milliseconds(2500),
                netConfinement: ConfinementOptions = .init(), execConfinement: ConfinementOptions = .init(),
                controlSocketPath: String? = nil, browser: BrowserWorkerSettings? = nil, stateDir: String? = nil,
                probe: ProbeSettings? = nil, maxConcurrentRuns: Int = 8, maxQueuedRuns: Int = 64,
                hostStatsIntervalMs: Int = HostStats.intervalMs, home: String = "/", stopAfterFirstHello: Bool = false,
                skillsDirectory: String? = nil, skillsPollMs: Int = 5_000,
                filesWorker: WorkerLaunch = .ownBinary(as: .files), filesConfinement: ConfinementOptions = .init(),
                mcp: McpWorkerSettings? = nil, publishesPluginTools: Bool = true) {
        self.mcp = mcp
        self.publishesPluginTools = publishesPluginTools
        self.filesWorker = filesWorker
        self.filesConfinement = filesConfinement
        self.stopAfterFirstHello = stopAfterFirstHello
        self.skillsDirectory = skillsDirectory
        self.skillsPollMs = skillsPollMs
        self.hostStatsIntervalMs = hostStatsIntervalMs
        self.home = home
        self.netWorker = netWorker
        self.execWorker = execWorker
        self.shutdownGrace = shutdownGrace
        self.netConfinement = netConfinement
        self.execConfinement = execConfinement
        self.controlSocketPath = controlSocketPath
        self.browser = browser
        self.stateDir = stateDir
        self.probe = probe
        self.maxConcurrentRuns = maxConcurrentRuns
        self.maxQueuedRuns = maxQueuedRuns
    }
}

/// `run --check-auth` (used by `doctor`): one connection with the node's real credentials
/// through the confined NetWorker, its outcome as JSON, then a clean stop.
public struct ProbeSettings: Sendable {
    public var timeout: TimeAmount
    public init(timeout: TimeAmount = .seconds(25)) { self.timeout = timeout }
}

/// The privileged process. It holds the role table — one monitor per worker role, each
/// owning its worker, its phase and its menu — and keeps the event loop, the signals, the
/// service manager's view (readiness, the last failure) and the order of shutdown.
///
/// Everything runs on one event loop, so there are no locks: IPC callbacks, timers and
/// signals are all serialised.
public final class Supervisor {
    public let loop: EventLoop
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    let settings: WorkerSettings
    /// Counters and gauges every role reports to; `LinkAuthority` declares the commands.
    public let metrics = NodeMetrics()
    /// The last `system.run` denials, for `status --json`.
    public let denials = DenialLog()
    let context: MonitorContext
    let reaper: Reaper
    /// What every worker starts with (read once).
    let workerEnvironment: [String: String]

    /// The role table's monitors. `exec` and `browser` are what the command handlers call
    /// (`exec.run`, `browser.call`); `net` exists once `run(link:)` starts the node.
    public var exec: ExecRunner { execMonitor }
    public var browser: BrowserRunner? { browserMonitor }
    public var files: FilesRunning { filesRunner }
    public var mcp: McpRunner? { mcpMonitor }
    let filesRunner: FilesRunner
    let mcpMonitor: McpMonitor?
    let execMonitor: ExecMonitor
    let browserMonitor: BrowserMonitor?
    private(set) var netMonitor: NetMonitor?

    private var stopping: Bool { context.stopping }
    private let exitPromise: EventLoopPromise<SupervisorExit>
    private var exitCode: SupervisorExit = .ok
    private var signalSources: [DispatchSourceSignal] = []
    private let controlSocket = ControlSocket()
    private let readiness = ServiceReadiness()
    /// The gateway's verdict in probe mode (`settings.probe`).
    public private(set) var probeOutcome: JSONValue?

    public init(settings: WorkerSettings, logger: Logger) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        self.logger = logger
        self.settings = settings
        let reaper = Reaper(logger: logger)
        self.reaper = reaper
        let context = MonitorContext(loop: loop, logger: logger, metrics: metrics, reaper: reaper,
                                     shutdownGrace: settings.shutdownGrace)
        self.context = context
        let environment = Self.workerEnvironment()
        workerEnvironment = environment
        execMonitor = ExecMonitor(launch: settings.execWorker, confinement: settings.execConfinement, environment: environment,
                                  context: context, maxConcurrent: settings.maxConcurrentRuns, maxQueued: settings.maxQueuedRuns)
        browserMonitor = settings.browser.map { BrowserMonitor(settings: $0, environment: environment, context: context) }
        filesRunner = FilesRunner(launch: settings.filesWorker, confinement: settings.filesConfinement, environment: environment,
                                  context: context)
        mcpMonitor = settings.mcp.map { McpMonitor(settings: $0, environment: environment, context: context) }
        exitPromise = loop.makePromise()
        context.stopNode = { [unowned self] reason, code, failure in
            if let failure { fail(failure) }
            shutdown(reason: reason, code: code)
        }
    }

    /// The minimal environment a worker starts with (configuration arrives over IPC).
    static func workerEnvironment() -> [String: String] {
        var environment = ["PATH": ExecutableSearch.defaultPath]
        for key in ["LANG", "LC_ALL", "TZ", "JOURNAL_STREAM", LineLogHandler.formatVariable] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return environment
    }

    /// Starts the workers with `link` as the gateway authority and blocks until the
    /// Supervisor exits; returns the exit status.
    public func run(link: LinkAuthority) -> Int32 {
        let net = NetMonitor(launch: settings.netWorker, confinement: settings.netConfinement,
                             environment: workerEnvironment, context: context, link: link, probe: settings.probe != nil,
                             hostStats: .init(intervalMs: settings.hostStatsIntervalMs, home: settings.home),
                             skills: .init(directory: settings.skillsDirectory, pollMs: settings.skillsPollMs))
        net.onEvent = { [unowned self] event in linkEvent(event) }
        netMonitor = net
        if settings.publishesPluginTools {
            net.pluginToolsParams = { [weak self] in McpCatalog.paramsJSON(self?.mcpMonitor?.descriptors ?? []) }
            mcpMonitor?.onCatalogChanged = { [weak net] in net?.publishPluginTools() }
        }
        loop.execute { self.start(net) }
        let code = (try? exitPromise.futureResult.wait()) ?? .software
        for source in signalSources { source.cancel() }
        try? group.syncShutdownGracefully()
        return code.rawValue
    }

    private func start(_ net: NetMonitor) {
        installSignalHandlers()
        reaper.becomeSubreaper()
        net.start()
        if let probe = settings.probe {
            loop.scheduleTask(in: probe.timeout) { [weak self] in
                self?.finishProbe(["ok": .bool(false), "result": .string("timeout"),
                                   "message": .string(net.link.status.lastError ?? "no answer from the gateway")])
            }
        } else {
            execMonitor.slot.spawn()
            mcpMonitor?.start()
        }
        if let path = settings.controlSocketPath {
            controlSocket.start(path: path, group: group, logger: logger) { [unowned self] in liveStatus() }
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
                self?.loop.execute { self?.shutdown(reason: "signal \(number)", code: .stopped(by: number)) }
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
        reaper.reap()
        if stopping, reaper.allGone { finishShutdown() }
    }

    // MARK: The link's verdicts

    /// Readiness, the probe's outcome, or a terminal refusal, from what the link reported.
    private func linkEvent(_ event: LinkEvent) {
        let link = netMonitor!.link
        switch event {
        case .connected:
            if settings.probe != nil { return finishProbe(["ok": .bool(true), "result": .string("connected")]) }
            if let dir = settings.stateDir { LastFailure.clear(stateDir: dir) }
            readiness.update("connected to \(link.settings.url)", ready: true)
            if settings.stopAfterFirstHello { shutdown(reason: "connected once", code: .ok) }
        case let .rejected(rejection, verdict):
            switch verdict {
            case nil:
                finishProbe(Self.probeOutcome(rejection))
            case .keepRetrying?:
                if let request = link.status.pendingRequestId, link.status.phase == .pairingPending {
                    readiness.update("waiting for pairing approval: \(PairingApproval.command(request))", ready: true)
                } else {
                    readiness.update("gateway refused connect: \(link.status.lastError ?? "-"); retrying", ready: true)
                }
            case let .exit(reason)?:
                let code = rejection.detail
                logger.error("node host gateway reconnect paused after close (1008): \(rejection.message) detail=\(code); exiting for supervisor restart",
                             metadata: ["reason": "\(reason)", "code": "\(code)"])
                context.stopNode("terminal gateway error", .terminalAuth,
                                 LastFailure(exitCode: SupervisorExit.terminalAuth.rawValue, code: code, reason: reason))
            }
        case let .unreachable(detail):
            if settings.probe != nil {
                return finishProbe(["ok": .bool(false), "result": .string("unreachable"), "message": .string(detail)])
            }
            readiness.update("not connected: \(detail); retrying", ready: true)
        }
    }

    // MARK: Shutdown

    /// Stops accepting work, stops every worker (the ExecWorker kills running commands),
    /// and exits with `code` once they are gone or their grace period has passed.
    public func shutdown(reason: String, code: SupervisorExit) {
        loop.preconditionInEventLoop()
        guard !stopping else { return }
        context.beginStopping()
        exitCode = code
        logger.info("shutting down", metadata: ["reason": "\(reason)"])
        readiness.stopping("stopping: \(reason)")
        execMonitor.shutdown()
        netMonitor?.shutdown()
        browserMonitor?.shutdown()
        mcpMonitor?.shutdown()
        filesRunner.shutdown()
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
        execMonitor.answerAll()
        // Anything re-parented to us (we are a subreaper) goes too.
        reaper.killAll()
        browserMonitor?.finalSweep()
        reaper.reap()
        if let path = settings.controlSocketPath { controlSocket.stop(path: path) }
        logger.info("stopped", metadata: ["exit": .typed(exitCode.rawValue)])
        exitPromise.succeed(exitCode)
    }
}

extension Supervisor {
    /// The live state `openclaw-node status` shows (read on the event loop).
    func liveStatus() -> NodeLiveStatus {
        let status = netMonitor?.link.status ?? LinkStatus()
        return NodeLiveStatus(
            pid: getpid(), version: NodeVersion.current, phase: status.phase.rawValue,
            connected: status.phase == .connected, paired: status.paired, pendingRequestId: status.pendingRequestId,
            pairing: status.pairing, gateway: status.gateway, lastDenials: denials.recent,
            lastError: status.lastError, connects: status.connects,
            runsInFlight: execMonitor.runs.runningCount, runsQueued: execMonitor.runs.queuedCount,
            workerRestarts: [WorkerRole.net.rawValue: netMonitor?.slot.restarts ?? 0, WorkerRole.exec.rawValue: execMonitor.slot.restarts,
                             WorkerRole.browser.rawValue: browserMonitor?.slot.restarts ?? 0],
            advertised: netMonitor?.router.surface
        )
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
