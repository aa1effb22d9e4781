import CSystemShims
import Dispatch
import Glibc
import NodeSupport
import Synchronization

/// One thread that watches every running command: its two output pipes and its pidfd, in
/// one epoll set. It keeps the head of the output (per-stream and combined cap), reaps the
/// command through its pidfd when it exits, kills what the command left in its process
/// group, and reports the run once both pipes have ended (or 2 s after the exit, when an
/// escaped descendant still holds them).
///
/// Cheaper than two NIO pipe channels per run plus SIGCHLD through Dispatch, and the exit
/// status is collected the moment it exists.
final class OutputPump: @unchecked Sendable {
    struct Finished {
        var id: String
        var exitCode: Int32?
        var signal: Int32?
        var stdout: [UInt8]
        var stderr: [UInt8]
        var truncated: Bool
    }

    /// What one run hands to the pump (all fds owned by the pump from then on).
    struct Watch {
        var id: String
        var pid: pid_t
        var pidfd: Int32
        var stdout: Int32
        var stderr: Int32
        var cap: Int
    }

    private final class Entry {
        let watch: Watch
        var output: [[UInt8]] = [[], []]
        var open: [Int32]
        var truncated = false
        var exited = false
        var exitCode: Int32?
        var signal: Int32?
        var drainDeadline: UInt64?

        init(_ watch: Watch) {
            self.watch = watch
            open = [watch.stdout, watch.stderr]
        }

        /// Keeps the head: each stream and both together are capped at `cap`.
        func append(_ bytes: UnsafeRawBufferPointer, stream: Int) {
            let cap = watch.cap
            let room = min(cap - output[stream].count, cap - output[0].count - output[1].count)
            let take = max(0, min(room, bytes.count))
            if take < bytes.count { truncated = true }
            if take > 0 { output[stream].append(contentsOf: bytes.prefix(take)) }
        }
    }

    static let drainAfterExitMs: UInt64 = 2000

    private let epoll: Int32
    private let wake: Int32
    private let pending = Mutex<[Watch]>([])
    private var entries: [UInt64: Entry] = [:]
    private var nextSerial: UInt64 = 1
    /// Called on the pump thread for each finished run.
    private let onFinished: @Sendable (Finished) -> Void

    init(onFinished: @escaping @Sendable (Finished) -> Void) throws(SystemError) {
        epoll = csys_epoll_create()
        guard epoll >= 0 else { throw SystemError("epoll_create1") }
        wake = csys_eventfd()
        guard wake >= 0 else { throw SystemError("eventfd") }
        guard csys_epoll_add(epoll, wake, 0) == 0 else { throw SystemError("epoll_ctl") }
        self.onFinished = onFinished
        let thread = DispatchQueue(label: "output-pump")
        thread.async { [self] in loop() }
    }

    /// Hands a spawned run to the pump (any thread).
    func watch(_ watch: Watch) {
        pending.withLock { $0.append(watch) }
        csys_eventfd_signal(wake)
    }

    // Tokens: serial << 2 | 0 stdout, 1 stderr, 2 pidfd; token 0 is the wake-up eventfd.
    private func loop() {
        var tokens = [UInt64](repeating: 0, count: 64)
        while true {
            let count = tokens.withUnsafeMutableBufferPointer { csys_epoll_wait(epoll, $0.baseAddress, 64, nextTimeout()) }
            if count < 0, errno != EINTR { usleep(1000) }
            for index in 0..<Int(max(count, 0)) {
                let token = tokens[index]
                if token == 0 {
                    csys_eventfd_drain(wake)
                    for watch in pending.withLock({ list -> [Watch] in defer { list = [] }; return list }) { register(watch) }
                    continue
                }
                guard let entry = entries[token >> 2] else { continue }
                switch token & 3 {
                case 0, 1: readPipe(entry, stream: Int(token & 3))
                default: reap(entry)
                }
                finishIfDone(serial: token >> 2)
            }
            expireDrains()
        }
    }

    private func register(_ watch: Watch) {
        let serial = nextSerial
        nextSerial += 1
        let entry = Entry(watch)
        entries[serial] = entry
        for (stream, fd) in [watch.stdout, watch.stderr].enumerated() {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if csys_epoll_add(epoll, fd, serial << 2 | UInt64(stream)) != 0 { closePipe(entry, fd) }
        }
        if csys_epoll_add(epoll, watch.pidfd, serial << 2 | 2) != 0 { reap(entry) }
        finishIfDone(serial: serial)
    }

    private func readPipe(_ entry: Entry, stream: Int) {
        let fd = stream == 0 ? entry.watch.stdout : entry.watch.stderr
        guard entry.open.contains(fd) else { return }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer.withUnsafeBytes { entry.append(UnsafeRawBufferPointer(rebasing: $0[0..<count]), stream: stream) }
                continue
            }
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN { return }
            closePipe(entry, fd)  // end of output, or a read error
            return
        }
    }

    private func closePipe(_ entry: Entry, _ fd: Int32) {
        guard let index = entry.open.firstIndex(of: fd) else { return }
        entry.open.remove(at: index)
        _ = csys_epoll_remove(epoll, fd)
        close(fd)
    }

    private func reap(_ entry: Entry) {
        guard !entry.exited else { return }
        var exited: Int32 = 0
        var code: Int32 = 0
        if csys_pidfd_wait(entry.watch.pidfd, &exited, &code) == 0 {
            if exited != 0 { entry.exitCode = code } else { entry.signal = code }
        } else {
            entry.signal = SIGKILL
        }
        entry.exited = true
        _ = csys_epoll_remove(epoll, entry.watch.pidfd)
        close(entry.watch.pidfd)
        // The run is over: nothing it started may outlive it.
        kill(-entry.watch.pid, SIGKILL)
        entry.drainDeadline = Clock.monotonicMs() + Self.drainAfterExitMs
    }

    private func finishIfDone(serial: UInt64) {
        guard let entry = entries[serial], entry.exited, entry.open.isEmpty else { return }
        entries[serial] = nil
        onFinished(Finished(id: entry.watch.id, exitCode: entry.exitCode, signal: entry.signal, stdout: entry.output[0],
                            stderr: entry.output[1], truncated: entry.truncated))
    }

    /// Output still held open by an escaped descendant is not waited for forever.
    private func expireDrains() {
        let now = Clock.monotonicMs()
        for (serial, entry) in entries where (entry.drainDeadline ?? .max) <= now {
            for fd in entry.open { closePipe(entry, fd) }
            finishIfDone(serial: serial)
        }
    }

    private func nextTimeout() -> Int32 {
        guard let next = entries.values.compactMap(\.drainDeadline).min() else { return -1 }
        let now = Clock.monotonicMs()
        return next <= now ? 0 : Int32(min(next - now, 60_000))
    }
}
