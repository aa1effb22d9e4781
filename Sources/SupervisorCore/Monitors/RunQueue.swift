import NIOCore
import OpenClawIPC

/// The ExecMonitor's bookkeeping: authorised runs waiting for, and in, the ExecWorker.
///
/// At most `maxConcurrent` runs are in the worker at once; up to `maxQueued` more wait here;
/// beyond that `submit` refuses. Every accepted run is completed exactly once: with the
/// worker's outcome, or with an error when the worker dies or the node shuts down.
final class RunQueue {
    typealias Completion = (Result<RunOutcome, WireError>) -> Void

    let maxConcurrent: Int
    let maxQueued: Int
    private let running: PendingCalls<String, RunOutcome>
    private var waiting: [(order: RunOrder, completion: Completion)] = []
    private var workerIsReady = false
    private var closed = false
    /// Hands a run to the ExecWorker.
    var send: (RunOrder) -> Void = { _ in }

    init(maxConcurrent: Int, maxQueued: Int, loop: EventLoop) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.maxQueued = max(0, maxQueued)
        running = PendingCalls(loop: loop)
    }

    var runningCount: Int { running.count }
    var queuedCount: Int { waiting.count }

    /// Why `submit` would refuse a run now; nil when it would accept one.
    func refusal() -> WireError? {
        if closed {
            return WireError(code: "UNAVAILABLE", message: "node is shutting down")
        }
        if running.count + waiting.count >= maxConcurrent + maxQueued {
            return WireError(
                code: "UNAVAILABLE",
                message: "node is busy: all \(maxConcurrent) run slots are in use and \(maxQueued) runs are queued; retry later"
            )
        }
        return nil
    }

    /// Accepts a run, or says why not.
    func submit(_ order: RunOrder, completion: @escaping Completion) -> WireError? {
        if let refusal = refusal() { return refusal }
        waiting.append((order, completion))
        pump()
        return nil
    }

    func workerReady() {
        workerIsReady = true
        pump()
    }

    private func pump() {
        while workerIsReady, !closed, running.count < maxConcurrent, !waiting.isEmpty {
            let next = waiting.removeFirst()
            guard running.add(next.order.id, completion: next.completion) else {
                // Run ids are unique (runId/uuid); a second order under one id is never sent.
                next.completion(.failure(WireError(code: "INVALID_REQUEST", message: "run id \(next.order.id) is already running")))
                continue
            }
            send(next.order)
        }
    }

    /// A queued run is dropped (answered with an error); a running one is told to the worker
    /// (`kill`), whose outcome then completes it. Unknown or finished ids: nothing.
    func cancel(_ runId: String, kill: (String) -> Void) {
        if let index = waiting.firstIndex(where: { $0.order.id == runId }) {
            let run = waiting.remove(at: index)
            run.completion(.failure(WireError(code: "ABORTED", message: "cancelled")))
        } else if running.contains(runId) {
            kill(runId)
        }
    }

    /// The worker's outcome of a run; false when no such run is in flight (a violation).
    func finished(_ outcome: RunOutcome) -> Bool {
        guard running.complete(outcome.id, with: .success(outcome)) else { return false }
        pump()
        return true
    }

    /// The worker died: each of its runs gets an error; returns their ids. Queued runs wait
    /// for the next worker.
    @discardableResult
    func workerDied(reason: String) -> [String] {
        workerIsReady = false
        let lost = running.ids
        running.failAll(WireError(code: "UNAVAILABLE",
                                  message: "node exec worker stopped during the run (\(reason)); the command was killed"))
        return lost
    }

    /// Stops accepting runs; queued runs are answered with an error.
    func shutdown() {
        closed = true
        let queued = waiting
        waiting.removeAll()
        for run in queued {
            run.completion(.failure(WireError(code: "UNAVAILABLE", message: "node is shutting down")))
        }
    }
}
