import CSystemShims
import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// The ExecWorker's one thread: a single epoll set holds the Supervisor link (fd 3), and
/// every running command's two output pipes and its pidfd.
///
/// A run order is read, the command spawned and watched, its output kept (head, up to the
/// byte cap per stream and combined), its exit collected through the pidfd the moment it
/// exists, whatever it left in its process group killed, and the outcome written back, all
/// without a second thread. (An event loop for the link plus a pump thread for the pipes
/// cost two thread wake-ups per run, each one an inter-processor interrupt on a VM.)
/// Timeouts and the drain of output held open by an escaped descendant are deadlines on the
/// same `epoll_wait`.
final class ExecLoop {
    /// One command in flight.
    private final class Run {
        let order: RunOrder
        let started: RunLauncher.Started
        let began: UInt64
        var output: [[UInt8]] = [[], []]
        var open: [Int32]
        var truncated = false
        var exited = false
        var exitCode: Int32?
        var signal: Int32?
        var timedOut = false
        var timeoutAt: UInt64?
        var drainAt: UInt64?

        init(order: RunOrder, started: RunLauncher.Started, began: UInt64) {
            self.order = order
            self.started = started
            self.began = began
            open = [started.stdout, started.stderr]
            if let timeout = order.timeoutMs, timeout > 0 { timeoutAt = began + UInt64(timeout) }
        }

        /// Keeps the head: each stream and both together are capped at `maxOutputBytes`.
        func append(_ bytes: UnsafeRawBufferPointer, stream: Int) {
            let cap = order.maxOutputBytes
            let room = min(cap - output[stream].count, cap - output[0].count - output[1].count)
            let take = max(0, min(room, bytes.count))
            if take < bytes.count { truncated = true }
            if take > 0 { output[stream].append(contentsOf: bytes.prefix(take)) }
        }

        var outcome: RunOutcome {
            RunOutcome(id: order.id, exitCode: exitCode, signal: signal, timedOut: timedOut,
                       stdout: String(decoding: output[0], as: UTF8.self), stderr: String(decoding: output[1], as: UTF8.self),
                       truncated: truncated, error: nil, durationMs: Int(Clock.monotonicMs() - began))
        }
    }

    static let drainAfterExitMs: UInt64 = 2000
    /// Token of the Supervisor link; a run's tokens are `serial << 2 | 0 stdout, 1 stderr, 2 pidfd`.
    private static let linkToken: UInt64 = 0

    private let link: Int32
    private let epoll: Int32
    private let logger: Logger
    private var splitter = FrameSplitter()
    private var outbox: [UInt8] = []
    private var watchingOutput = false
    private var runs: [UInt64: Run] = [:]
    private var serials: [String: UInt64] = [:]
    private var nextSerial: UInt64 = 1
    private var readBuffer = [UInt8](repeating: 0, count: 65536)

    init(link: Int32, logger: Logger) throws(SystemError) {
        self.link = link
        self.logger = logger
        epoll = csys_epoll_create()
        guard epoll >= 0 else { throw SystemError("epoll_create1") }
        _ = fcntl(link, F_SETFL, fcntl(link, F_GETFL) | O_NONBLOCK)
        guard csys_epoll_add(epoll, link, Self.linkToken) == 0 else { throw SystemError("epoll_ctl") }
    }

    func run() -> Never {
        var tokens = [UInt64](repeating: 0, count: 64)
        while true {
            let count = tokens.withUnsafeMutableBufferPointer { csys_epoll_wait(epoll, $0.baseAddress, 64, nextTimeout()) }
            if count < 0, errno != EINTR { usleep(1000) }
            for index in 0..<Int(max(count, 0)) {
                let token = tokens[index]
                if token == Self.linkToken {
                    serviceLink()
                    continue
                }
                guard let run = runs[token >> 2] else { continue }
                switch token & 3 {
                case 0, 1: readPipe(run, stream: Int(token & 3))
                default: reap(run)
                }
                finishIfDone(serial: token >> 2)
            }
            expireDeadlines()
        }
    }

    // MARK: The Supervisor link

    /// Queues one message and writes what the socket takes now.
    func send(_ message: ExecToSupervisor) {
        guard let frame = try? IPCCodec.encodeFrame(message) else { return }
        outbox.append(contentsOf: frame.readableBytesView)
        if outbox.count > IPCConnection<SupervisorToExec, ExecToSupervisor>.maxQueuedBytes {
            logger.error("supervisor link violation", metadata: ["reason": "\(IPCViolation.peerNotReading(bufferedBytes: outbox.count))"])
            stop(0)
        }
        flushOutbox()
    }

    private func flushOutbox() {
        while !outbox.isEmpty {
            let written = outbox.withUnsafeBytes { Glibc.send(link, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written > 0 {
                outbox.removeFirst(written)
                continue
            }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EAGAIN { break }
            stop(0)  // the Supervisor is gone
        }
        let wantOutput = !outbox.isEmpty
        if wantOutput != watchingOutput {
            watchingOutput = wantOutput
            _ = csys_epoll_set_output(epoll, link, Self.linkToken, wantOutput ? 1 : 0)
        }
    }

    private func serviceLink() {
        if !outbox.isEmpty { flushOutbox() }
        while true {
            let count = readBuffer.withUnsafeMutableBytes { recv(link, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                readBuffer.withUnsafeBytes { splitter.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                deliverFrames()
                continue
            }
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN { return }
            // The Supervisor closed the link (or it failed): nothing may run without it.
            if count == 0 {
                do {
                    try splitter.finish()
                } catch {
                    logger.error("supervisor link violation", metadata: ["reason": "\(error)"])
                }
            }
            stop(0)
        }
    }

    private func deliverFrames() {
        do {
            while let body = try splitter.next() {
                handle(try IPCCodec.decode(body, as: SupervisorToExec.self))
            }
        } catch {
            logger.error("supervisor link violation", metadata: ["reason": "\(error)"])
            stop(0)
        }
    }

    private func handle(_ message: SupervisorToExec) {
        switch message {
        case let .run(order):
            start(order)
        case let .cancel(cancel):
            if let serial = serials[cancel.id], let run = runs[serial], !run.exited { kill(-run.started.pid, SIGKILL) }
        case .shutdown:
            logger.info("shutting down", metadata: ["running": .typed(runs.count)])
            stop(0)
        }
    }

    /// Kills every running command's process group, then exits.
    func stop(_ code: Int32) -> Never {
        for run in runs.values where !run.exited { kill(-run.started.pid, SIGKILL) }
        exit(code)
    }

    // MARK: Runs

    private func start(_ order: RunOrder) {
        guard !order.argv.isEmpty else {
            logger.error("run order without argv; ignoring", metadata: ["run": "\(order.id)"])
            return
        }
        guard serials[order.id] == nil else {
            logger.error("duplicate run id", metadata: ["run": "\(order.id)"])
            return
        }
        let began = Clock.monotonicMs()
        let started: RunLauncher.Started
        // The parent-death signal (SIGTERM) waits until the new group is registered with
        // the guard that kills it (the child starts with an empty signal mask).
        let launch = GroupGuard.whileBlocked { () -> RunLauncher.Launch in
            let launch = RunLauncher.launch(order, began: began)
            if case let .started(value) = launch, !GroupGuard.add(value.pid) {
                logger.warning("group guard full: this run's group is not killed if the worker is told to die", metadata: ["run": "\(order.id)"])
            }
            return launch
        }
        switch launch {
        case let .finished(outcome):
            send(.runFinished(outcome))
            return
        case let .started(value):
            started = value
        }
        let serial = nextSerial
        nextSerial += 1
        let run = Run(order: order, started: started, began: began)
        runs[serial] = run
        serials[order.id] = serial
        for (stream, fd) in [started.stdout, started.stderr].enumerated() {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if csys_epoll_add(epoll, fd, serial << 2 | UInt64(stream)) != 0 { closePipe(run, fd) }
        }
        if csys_epoll_add(epoll, started.pidfd, serial << 2 | 2) != 0 {
            // Not watchable: end it now rather than wait blind (reap waits for the exit).
            kill(-started.pid, SIGKILL)
            reap(run)
        }
        finishIfDone(serial: serial)
    }

    /// Reads what the pipe holds, at most 16 × 64 KiB per wake-up: a command that writes as
    /// fast as it is read must not keep the loop from the link, the deadlines and other runs
    /// (epoll reports the pipe again).
    private func readPipe(_ run: Run, stream: Int) {
        let fd = stream == 0 ? run.started.stdout : run.started.stderr
        guard run.open.contains(fd) else { return }
        var reads = 0
        while reads < 16 {
            let count = readBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                readBuffer.withUnsafeBytes { run.append(UnsafeRawBufferPointer(rebasing: $0[0..<count]), stream: stream) }
                reads += 1
                continue
            }
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN { return }
            closePipe(run, fd)  // end of output, or a read error
            return
        }
    }

    private func closePipe(_ run: Run, _ fd: Int32) {
        guard let index = run.open.firstIndex(of: fd) else { return }
        run.open.remove(at: index)
        _ = csys_epoll_remove(epoll, fd)
        close(fd)
    }

    private func reap(_ run: Run) {
        guard !run.exited else { return }
        // The run is over: nothing it started may outlive it. Killed while the unreaped
        // leader still holds the group id, so the id cannot have been reused.
        kill(-run.started.pid, SIGKILL)
        GroupGuard.remove(run.started.pid)
        var exited: Int32 = 0
        var code: Int32 = 0
        if csys_pidfd_wait(run.started.pidfd, &exited, &code) == 0 {
            if exited != 0 { run.exitCode = code } else { run.signal = code }
        } else {
            run.signal = SIGKILL
        }
        run.exited = true
        _ = csys_epoll_remove(epoll, run.started.pidfd)
        close(run.started.pidfd)
        run.drainAt = Clock.monotonicMs() + Self.drainAfterExitMs
    }

    /// Reports a run once it has exited and both pipes have ended.
    private func finishIfDone(serial: UInt64) {
        guard let run = runs[serial], run.exited, run.open.isEmpty else { return }
        runs[serial] = nil
        serials[run.order.id] = nil
        send(.runFinished(run.outcome))
    }

    private func expireDeadlines() {
        let now = Clock.monotonicMs()
        for (serial, run) in runs {
            if let timeoutAt = run.timeoutAt, timeoutAt <= now, !run.exited {
                run.timeoutAt = nil
                run.timedOut = true
                kill(-run.started.pid, SIGKILL)
                logger.info("run timed out; killed its process group", metadata: ["run": "\(run.order.id)"])
            }
            // Output still held open by an escaped descendant is not waited for forever.
            if let drainAt = run.drainAt, drainAt <= now {
                for fd in run.open { closePipe(run, fd) }
                finishIfDone(serial: serial)
            }
        }
    }

    private func nextTimeout() -> Int32 {
        var next = UInt64.max
        for run in runs.values {
            if let at = run.timeoutAt, !run.exited { next = min(next, at) }
            if let at = run.drainAt { next = min(next, at) }
        }
        guard next != .max else { return -1 }
        let now = Clock.monotonicMs()
        return next <= now ? 0 : Int32(min(next - now, 60_000))
    }
}
