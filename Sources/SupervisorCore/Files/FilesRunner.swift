import CSystemShims
import Confinement
import Dispatch
import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// What the files handler needs of the files role: one request, one confined process.
public protocol FilesRunning: AnyObject {
    /// Runs `request` in a new files worker in `mode`, its Landlock rules about `root` (the
    /// uploads' root; a listing's are about `/`); `arguments` are extra words for it
    /// (`--stage-size N`). `completion` runs once, on the event loop.
    func run(_ mode: FilesMode, root: String?, _ request: FilesRequest, arguments: [String], timeout: TimeAmount,
             cancellation: InvokeCancellation?, completion: @escaping (Result<FilesReply, WireError>) -> Void)
}

/// The files role's monitor (issue 20): one `openclaw-node-files` process per request, each
/// started with the Landlock rules of its mode. The worker prints its confinement report
/// first and waits; the Supervisor checks it against `/proc` (as it does a long-lived
/// worker's `ready`) and only then writes the request. The pipes are served off the event
/// loop; the process is reaped by the `Reaper` like every worker, and killed (with its group)
/// at its deadline, on cancellation and at shutdown.
final class FilesRunner: FilesRunning, ReapedWorker {
    private let launch: WorkerLaunch
    private let confinement: ConfinementOptions
    private let environment: [String: String]
    private let context: MonitorContext
    private static let pipes = DispatchQueue(label: "openclaw-node.files", attributes: .concurrent)
    /// The reply's ceiling (a listing's 16 MiB, with room).
    static let maxReplyBytes = 24 * 1024 * 1024

    private final class Job {
        let completion: (Result<FilesReply, WireError>) -> Void
        var reply: Result<FilesReply, WireError>?
        var exited = false
        /// Answered already (at its deadline: a process stuck in the kernel may never exit).
        var answered = false
        var deadline: Scheduled<Void>?
        init(_ completion: @escaping (Result<FilesReply, WireError>) -> Void) { self.completion = completion }

        func answer(_ result: Result<FilesReply, WireError>) {
            guard !answered else { return }
            answered = true
            completion(result)
        }
    }

    private var jobs: [pid_t: Job] = [:]

    init(launch: WorkerLaunch, confinement: ConfinementOptions, environment: [String: String], context: MonitorContext) {
        self.launch = launch
        self.confinement = confinement
        self.environment = environment
        self.context = context
        context.reaper.watch(self)
    }

    var pids: [pid_t] { Array(jobs.keys) }

    func run(_ mode: FilesMode, root: String?, _ request: FilesRequest, arguments: [String], timeout: TimeAmount,
             cancellation: InvokeCancellation?, completion: @escaping (Result<FilesReply, WireError>) -> Void) {
        context.loop.preconditionInEventLoop()
        guard !context.stopping else { return completion(.failure(WireError(code: "UNAVAILABLE", message: "node is shutting down"))) }
        var options = confinement
        options.filesMode = mode
        options.filesRoot = root
        guard let body = try? JSONText.encode(request) else {
            return completion(.failure(WireError(code: "UNAVAILABLE", message: "files request could not be encoded")))
        }
        var input: [CInt] = [-1, -1]
        var output: [CInt] = [-1, -1]
        guard csys_pipe_cloexec(&input) == 0 else { return completion(.failure(Self.unavailable)) }
        guard csys_pipe_cloexec(&output) == 0 else {
            for fd in input { close(fd) }
            return completion(.failure(Self.unavailable))
        }
        let pid: pid_t
        do {
            pid = try Spawner.spawn(SpawnSpec(path: launch.path, argv: [launch.argv0] + options.arguments + arguments, env: environment,
                                              fdMap: [(input[0], 0), (output[1], 1), (2, 2)], newProcessGroup: true))
        } catch {
            for fd in input + output { close(fd) }
            context.logger.error("cannot start the files worker", metadata: ["path": "\(launch.path)", "error": "\(error)"])
            return completion(.failure(Self.unavailable))
        }
        close(input[0])
        close(output[1])
        let job = Job(completion)
        jobs[pid] = job
        job.deadline = context.loop.scheduleTask(in: timeout) { [weak job] in
            kill(-pid, SIGKILL)
            job?.answer(.failure(WireError(code: "UNAVAILABLE", message: "files worker timed out after \(timeout.nanoseconds / 1_000_000) ms")))
        }
        cancellation?.onCancel { [weak self] in
            guard self?.jobs[pid] != nil else { return }
            kill(-pid, SIGKILL)
        }
        let (writeEnd, readEnd) = (input[1], output[0])
        let optedOut = confinement.optedOut
        let loop = context.loop
        let logger = context.logger
        Self.pipes.async { [weak self] in
            let reply = Self.exchange(pid: pid, request: Array(body.utf8), writeEnd: writeEnd, readEnd: readEnd, optedOut: optedOut,
                                      logger: logger)
            loop.execute { self?.replied(pid: pid, reply) }
        }
    }

    static let unavailable = WireError(code: "UNAVAILABLE", message: "files worker unavailable")

    /// The worker's side of one request, blocking (on the pipes' queue): its report, the check
    /// against `/proc` while it waits, the request, its reply.
    static func exchange(pid: pid_t, request: [UInt8], writeEnd: CInt, readEnd: CInt,
                         optedOut: Set<ConfinementStep>, logger: Logger) -> Result<FilesReply, WireError> {
        defer { close(readEnd) }
        var reader = LineReader(fd: readEnd, limit: maxReplyBytes)
        guard let first = reader.line(), let ready = try? JSONText.decode(FilesReply.self, from: first) else {
            close(writeEnd)
            return .failure(unavailable)
        }
        if let problem = ConfinementCheck.problem(kind: "files", report: ready.confinement,
                                                  kernel: ConfinementCheck.KernelView.read(pid: pid), optedOut: optedOut) {
            close(writeEnd)
            kill(-pid, SIGKILL)
            logger.critical("\(problem); its request is refused (to accept that risk: --unconfined files:<step>, see docs/security.md)")
            return .failure(WireError(code: "UNAVAILABLE", message: problem))
        }
        writeAll(writeEnd, request)  // a failure (EPIPE) means it answered without reading it all
        close(writeEnd)
        guard let last = reader.line(), let reply = try? JSONText.decode(FilesReply.self, from: last) else {
            return .failure(unavailable)
        }
        return .success(reply)
    }

    private func replied(pid: pid_t, _ reply: Result<FilesReply, WireError>) {
        guard let job = jobs[pid] else { return }
        job.reply = reply
        finish(pid, job)
    }

    func reaped(pid: pid_t, status: String) {
        guard let job = jobs[pid] else { return }
        job.exited = true
        if status != "exit 0" { context.logger.debug("files worker ended", metadata: ["pid": .typed(pid), "status": "\(status)"]) }
        finish(pid, job)
    }

    /// Answers once both the reply (or its absence) is read and the process is reaped.
    private func finish(_ pid: pid_t, _ job: Job) {
        guard job.exited, let reply = job.reply else { return }
        jobs[pid] = nil
        job.deadline?.cancel()
        job.answer(reply)
    }

    /// Shutdown: whatever is still running is killed; its reaping answers it.
    func shutdown() {
        for pid in jobs.keys { kill(-pid, SIGKILL) }
    }
}

/// Newline-separated documents from a pipe, each at most `limit` bytes.
struct LineReader {
    let fd: CInt
    let limit: Int
    private var buffer: [UInt8] = []
    private var ended = false

    init(fd: CInt, limit: Int) {
        self.fd = fd
        self.limit = limit
    }

    /// The next line without its newline; the rest at the end; nil when nothing is left or a
    /// line is longer than `limit`.
    mutating func line() -> String? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if ended || buffer.count > limit {
                defer { buffer.removeAll() }
                return buffer.isEmpty || buffer.count > limit ? nil : String(decoding: buffer, as: UTF8.self)
            }
            let count = read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { ended = true } else { buffer += chunk[0..<count] }
        }
    }
}
