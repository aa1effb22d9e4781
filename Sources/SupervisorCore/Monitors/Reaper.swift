import Glibc
import Logging
import NodeSupport

/// A process the reaper reports to when one of our children ends.
protocol ReapedWorker: AnyObject {
    /// Its live processes (a slot has at most one; the files runner one per request).
    var pids: [pid_t] { get }
    func reaped(pid: pid_t, status: String)
}

extension WorkerSlot {
    var pids: [pid_t] { pid.map { [$0] } ?? [] }
}

extension WorkerSlot: ReapedWorker {}

/// The Supervisor's children: it reaps them (SIGCHLD, and a one-second fallback), tells the
/// worker slots which of theirs ended, and — being a child subreaper — kills what a dead
/// worker left re-parented to us (commands, Chromium), each with its process group.
final class Reaper {
    private let logger: Logger
    private var workers: [ReapedWorker] = []

    init(logger: Logger) { self.logger = logger }

    /// Orphans of dead workers are re-parented to us instead of to init.
    func becomeSubreaper() { becomeChildSubreaper() }

    func watch(_ worker: ReapedWorker) { workers.append(worker) }

    /// Reaps every child that has ended and tells its slot.
    func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            let description = Self.describe(status: status)
            for worker in workers { worker.reaped(pid: pid, status: description) }
        }
    }

    /// Waits for one child (a worker just sent SIGKILL) so what it left is ours to sweep.
    func wait(for pid: pid_t) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit \((status >> 8) & 0xff)" }
        return "signal \(signal)"
    }

    /// Kills each of our children that is not a live worker and that `matches` (with its
    /// process group): what a dead worker left re-parented to us.
    func sweepOrphans(log message: Logger.Message, matches: (pid_t) -> Bool) {
        let live = Set(workers.flatMap(\.pids))
        for pid in Self.childPids() where !live.contains(pid) && matches(pid) {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            logger.warning(message, metadata: ["pid": .typed(pid)])
        }
        reap()
    }

    /// The final backstop at exit: every child left goes.
    func killAll() {
        for pid in Self.childPids() { kill(pid, SIGKILL) }
    }

    /// Whether every watched worker's process is gone.
    var allGone: Bool { workers.allSatisfy(\.pids.isEmpty) }

    /// Our direct children (listed per thread: they were spawned from different threads).
    static func childPids() -> [pid_t] {
        var pids: [pid_t] = []
        for name in directoryNames("/proc/self/task") {
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
