import Glibc
import Logging
import OpenClawIPC

/// Authorised runs on their way to and through the ExecWorker.
///
/// At most `maxConcurrent` runs are in the worker at once; up to `maxQueued` more wait here;
/// beyond that `submit` refuses. Every accepted run is completed exactly once: with the
/// worker's outcome, or with an error when the worker dies or the node shuts down.
final class ExecDispatcher {
    typealias Completion = (Result<RunOutcome, WireError>) -> Void

    private struct InFlight {
        let order: RunOrder
        let completion: Completion
    }

    let maxConcurrent: Int
    let maxQueued: Int
    private let logger: Logger
    private var inFlight: [String: InFlight] = [:]
    private var queue: [(order: RunOrder, completion: Completion)] = []
    private var workerIsReady = false
    private var closed = false

    /// Hands a run to the ExecWorker.
    var send: (RunOrder) -> Void = { _ in }

    init(maxConcurrent: Int, maxQueued: Int, logger: Logger) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.maxQueued = max(0, maxQueued)
        self.logger = logger
    }

    var runningCount: Int { inFlight.count }
    var queuedCount: Int { queue.count }

    /// Accepts a run, or says why not.
    func submit(_ order: RunOrder, completion: @escaping Completion) -> WireError? {
        if closed {
            return WireError(code: "UNAVAILABLE", message: "node is shutting down")
        }
        if inFlight.count + queue.count >= maxConcurrent + maxQueued {
            return WireError(
                code: "UNAVAILABLE",
                message: "node is busy: all \(maxConcurrent) run slots are in use and \(maxQueued) runs are queued; retry later"
            )
        }
        queue.append((order, completion))
        pump()
        return nil
    }

    func workerReady() {
        workerIsReady = true
        pump()
    }

    private func pump() {
        while workerIsReady, !closed, inFlight.count < maxConcurrent, !queue.isEmpty {
            let next = queue.removeFirst()
            inFlight[next.order.id] = InFlight(order: next.order, completion: next.completion)
            send(next.order)
        }
    }

    /// Returns a violation reason if the worker names a run that is not in flight.
    func finished(_ outcome: RunOutcome) -> String? {
        guard let run = inFlight.removeValue(forKey: outcome.id) else {
            return "run.finished for unknown run \"\(outcome.id.prefix(64))\""
        }
        run.completion(.success(outcome))
        pump()
        return nil
    }

    /// The worker died: each of its runs gets an error. (Its commands, re-parented to the
    /// Supervisor, are killed when the worker is reaped: `Supervisor.sweepOrphanedCommands`.)
    func workerDied(reason: String) {
        workerIsReady = false
        let lost = inFlight
        inFlight.removeAll()
        for (_, run) in lost {
            logger.error("run lost with the exec worker", metadata: ["run": "\(run.order.id)", "reason": "\(reason)"])
            run.completion(.failure(WireError(
                code: "UNAVAILABLE",
                message: "node exec worker stopped during the run (\(reason)); the command was killed"
            )))
        }
    }

    /// Stops accepting runs; queued runs are answered with an error.
    func shutdown() {
        closed = true
        let waiting = queue
        queue.removeAll()
        for run in waiting {
            run.completion(.failure(WireError(code: "UNAVAILABLE", message: "node is shutting down")))
        }
    }

    /// Kills every run still in flight (final backstop at exit) and answers it.
    func killAll() {
        workerDied(reason: "node shutting down")
    }
}
