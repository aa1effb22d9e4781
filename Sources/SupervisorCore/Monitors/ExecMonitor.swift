import Confinement
import Logging
import NIOCore
import OpenClawIPC

/// Phases of the ExecWorker, as its monitor tracks them.
public enum ExecPhase: String, Sendable, CaseIterable {
    case awaitingReady
    case ready
    case stopping
}

/// The ExecWorker's monitor: `run(_:)` is the only way a command starts; the run queue
/// bounds and answers every run.
final class ExecMonitor: WorkerMonitor<ExecToSupervisor, SupervisorToExec, ExecPhase>, ExecRunner {
    let runs: RunQueue

    init(launch: WorkerLaunch, confinement: ConfinementOptions, environment: [String: String], context: MonitorContext,
         maxConcurrent: Int, maxQueued: Int) {
        runs = RunQueue(maxConcurrent: maxConcurrent, maxQueued: maxQueued, loop: context.loop)
        super.init(role: .exec, launch: launch, confinement: confinement, environment: environment,
                   initialPhase: .awaitingReady, context: context)
        runs.send = { [unowned self] order in slot.send(.run(order)) }
        menu = Menu(subject: "the exec worker", rows: [
            // Once per worker, first thing after start.
            .init(.ready, in: [.awaitingReady], limit: .once) { [unowned self] in
                if case let .ready(hello) = $0 { ready(hello) }
            },
            // Each names a run in flight (checked by the run queue).
            .init(.runFinished, in: [.ready, .stopping]) { [unowned self] in
                if case let .runFinished(outcome) = $0, !runs.finished(outcome) {
                    slot.refuse("run.finished for unknown run \"\(outcome.id.prefix(64))\"")
                }
            },
        ])
    }

    override var spawnedPhase: ExecPhase { .awaitingReady }
    override var dropsMessagesWhileStopping: Bool { false }

    // MARK: The typed call

    /// Queues an authorised run; nil when accepted (the completion then runs exactly once).
    func run(_ order: RunOrder, completion: @escaping (Result<RunOutcome, WireError>) -> Void) -> WireError? {
        context.loop.preconditionInEventLoop()
        return runs.submit(order, completion: completion)
    }

    func cancel(_ runId: String) {
        context.loop.preconditionInEventLoop()
        runs.cancel(runId) { slot.send(.cancel(RunCancel(id: $0))) }
    }

    /// Why `run` would refuse an order now; nil when it would accept one.
    func refusal() -> WireError? {
        context.loop.preconditionInEventLoop()
        return runs.refusal()
    }

    // MARK: Menu handlers

    private func ready(_ hello: WorkerHello) {
        guard accept(hello) else { return }
        phaseChanged(to: .ready)
        runs.workerReady()
    }

    // MARK: Worker death and shutdown

    /// Each run of a dead worker gets an error. (Its commands, re-parented to the Supervisor,
    /// are killed when the worker is reaped: `workerExited`.)
    override func workerDown(reason: String) {
        phaseChanged(to: context.stopping ? .stopping : .awaitingReady)
        for id in runs.workerDied(reason: reason) {
            context.logger.error("run lost with the exec worker", metadata: ["run": "\(id)", "reason": "\(reason)"])
        }
    }

    override func workerExited() {
        context.reaper.sweepOrphans(log: "killed a command left by the exec worker") { _ in true }
    }

    /// Stops accepting runs (queued ones are answered with an error) and stops the worker,
    /// which kills the commands still running.
    func shutdown() {
        runs.shutdown()
        stop(goodbye: .shutdown(Empty()), stoppingPhase: .stopping)
    }

    /// The final backstop at exit: every run still in flight is answered.
    func answerAll() {
        workerDown(reason: "node shutting down")
    }
}
