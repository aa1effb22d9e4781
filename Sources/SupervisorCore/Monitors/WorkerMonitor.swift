import Confinement
import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// What every monitor shares with the Supervisor: the event loop, the log, the metrics, the
/// reaper, and the one way a monitor ends the node (a worker that cannot be confined).
/// Everything runs on `loop`, so nothing here is locked.
final class MonitorContext {
    let loop: EventLoop
    let logger: Logger
    let metrics: NodeMetrics
    let reaper: Reaper
    let shutdownGrace: TimeAmount
    /// Set once the node is shutting down: late worker messages are dropped, not obeyed.
    private(set) var stopping = false
    /// Asks the Supervisor to stop the node with `code` after recording `failure`.
    var stopNode: (_ reason: String, _ code: SupervisorExit, _ failure: LastFailure?) -> Void = { _, _, _ in }

    init(loop: EventLoop, logger: Logger, metrics: NodeMetrics, reaper: Reaper, shutdownGrace: TimeAmount) {
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        self.reaper = reaper
        self.shutdownGrace = shutdownGrace
    }

    func beginStopping() { stopping = true }
}

/// The Supervisor's side of one worker role: its process slot, its phase, its menu (what the
/// worker may send, when, how often, and which handler serves it). Subclasses are the roles'
/// monitors; they add the typed calls other code makes on the role (`exec.run`,
/// `browser.call`) and the handlers of their menu rows.
class WorkerMonitor<Inbound: IPCMessage, Outbound: IPCMessage, Phase: Hashable & RawRepresentable> where Phase.RawValue == String {
    let role: WorkerRole
    let context: MonitorContext
    let slot: WorkerSlot<Inbound, Outbound>
    let confinement: ConfinementOptions
    private(set) var phase: Phase
    var menu: Menu<Inbound, Phase>

    init(role: WorkerRole, launch: WorkerLaunch, confinement: ConfinementOptions, environment: [String: String],
         initialPhase: Phase, context: MonitorContext) {
        self.role = role
        self.context = context
        self.confinement = confinement
        self.phase = initialPhase
        slot = WorkerSlot(role: role, launch: launch, arguments: confinement.arguments, environment: environment,
                          loop: context.loop, logger: context.logger)
        menu = Menu(subject: role == .net ? "the link" : "the \(role) worker", rows: [])
        slot.onMessage = { [unowned self] message in self.receive(message) }
        slot.onSpawned = { [unowned self] in
            menu.reset()
            phaseChanged(to: spawnedPhase)
        }
        slot.onDown = { [unowned self] reason in
            if !context.stopping { context.metrics.workerRestarted(role.rawValue) }
            menu.reset()
            workerDown(reason: reason)
        }
        slot.onExited = { [unowned self] in workerExited() }
        context.reaper.watch(slot)
    }

    // MARK: For the roles

    /// The phase of a freshly spawned worker (it must say `ready` first).
    var spawnedPhase: Phase { fatalError("subclass") }
    /// The worker's process is gone (died, killed, refused); answer what it had outstanding.
    func workerDown(reason: String) {}
    /// The worker's process was reaped: what it started is re-parented to us by now.
    func workerExited() {}

    func phaseChanged(to phase: Phase) { self.phase = phase }

    // MARK: Admission

    /// Whether the worker's messages are dropped once the node is stopping (the ExecWorker's
    /// are not: a run that ends during shutdown is answered with its real outcome).
    var dropsMessagesWhileStopping: Bool { true }

    /// Every message of the worker goes through its menu first.
    private func receive(_ message: Inbound) {
        guard !context.stopping || !dropsMessagesWhileStopping else { return }
        switch menu.admit(message, in: phase) {
        case let .success(handler): handler(message)
        case let .failure(violation): slot.refuse(violation.description)
        }
    }

    /// Checks a `ready` worker: it plays this role, and its confinement report agrees with
    /// /proc. A worker that is not confined as required is never used: the node stops with
    /// exit 71 naming the step.
    func accept(_ hello: WorkerHello) -> Bool {
        guard hello.role == role else {
            slot.refuse("a \(hello.role.rawValue) worker answered as the \(role.rawValue) worker")
            return false
        }
        let kind = role.rawValue
        let kernel = slot.pid.flatMap(ConfinementCheck.KernelView.read(pid:))
        if let problem = ConfinementCheck.problem(kind: kind, report: hello.confinement, kernel: kernel, optedOut: confinement.optedOut) {
            let step = hello.confinement?.failure?.step.rawValue ?? "<step>"
            context.logger.critical("\(problem); refusing to run without it (to accept that risk: --unconfined \(kind):\(step), see docs/security.md)")
            context.stopNode("\(kind) worker not confined", .confinement,
                             LastFailure(exitCode: SupervisorExit.confinement.rawValue,
                                         reason: "\(problem) (to accept that risk: --unconfined \(kind):\(step))"))
            return false
        }
        var metadata: Logger.Metadata = ["pid": .typed(slot.pid ?? -1)]
        for entry in hello.confinement?.entries ?? [] { metadata[entry.step.rawValue] = "\(entry.state.rawValue)" }
        if let uid = kernel?.uid { metadata["uid"] = .typed(uid) }
        context.logger.info("\(kind) worker ready", metadata: metadata)
        return true
    }

    /// Stops the worker: `goodbye`, then SIGKILL after the grace period.
    func stop(goodbye: Outbound, stoppingPhase: Phase) {
        phaseChanged(to: stoppingPhase)
        slot.stop(goodbye: goodbye, grace: context.shutdownGrace)
    }
}
