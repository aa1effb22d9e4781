import CSystemShims
import Crypto
import Glibc
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// Runs authorised commands: spawns each in its own process group with empty stdin, hands
/// its output pipes and pidfd to the `OutputPump` (head of the output kept up to the byte cap,
/// the group killed when the main process exits), kills the group on timeout, and reports one
/// outcome per run.
///
/// Confined to one event loop (the pump reports back onto it). It makes no policy decision:
/// the order says exactly what runs.
public final class RunExecutor {
    private let loop: EventLoop
    private let logger: Logger
    private var runs: [String: ActiveRun] = [:]
    private var pump: OutputPump?

    /// Reports a started run (`pid` is also the process group id).
    public var onStarted: (RunStarted) -> Void = { _ in }
    /// Reports a finished run.
    public var onFinished: (RunOutcome) -> Void = { _ in }

    public init(loop: EventLoop, logger: Logger) throws(SystemError) {
        self.loop = loop
        self.logger = logger
        pump = try OutputPump { [weak self, loop] finished in
            loop.execute { self?.finished(finished) }
        }
    }

    public var activeCount: Int { runs.count }

    public func start(_ order: RunOrder) {
        loop.preconditionInEventLoop()
        let began = NIODeadline.now()
        guard runs[order.id] == nil else {
            logger.error("duplicate run id", metadata: ["run": "\(order.id)"])
            return
        }
        if let refusal = recheck(order) {
            onFinished(RunOutcome(id: order.id, exitCode: nil, signal: nil, timedOut: false, stdout: "", stderr: "",
                                  truncated: false, error: nil, refusal: refusal, durationMs: 0))
            return
        }
        if let cwd = order.cwd {
            var info = stat()
            if stat(cwd, &info) != 0 {
                let error = SystemError("stat")
                finishUnstarted(order, began, "node exec working directory does not exist on the node host: \(cwd) (os reported: \(error.code): \(String(cString: strerror(error.errno))))")
                return
            }
        }
        guard let executable = Self.resolve(order.argv[0], path: order.env["PATH"]) else {
            finishUnstarted(order, began, "spawn \(order.argv[0]) ENOENT")
            return
        }
        var outPipe: [CInt] = [-1, -1]
        var errPipe: [CInt] = [-1, -1]
        guard csys_pipe_cloexec(&outPipe) == 0 else {
            finishUnstarted(order, began, "spawn \(order.argv[0]) \(SystemError("pipe2").code)")
            return
        }
        guard csys_pipe_cloexec(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            finishUnstarted(order, began, "spawn \(order.argv[0]) \(SystemError("pipe2").code)")
            return
        }
        let spec = SpawnSpec(path: executable, argv: order.argv, env: order.env, cwd: order.cwd,
                             fdMap: [(outPipe[1], 1), (errPipe[1], 2)], newProcessGroup: true)
        let pid: pid_t
        do {
            pid = try Spawner.spawn(spec)
        } catch {
            for fd in outPipe + errPipe { close(fd) }
            finishUnstarted(order, began, "spawn \(order.argv[0]) \(error.code)")
            return
        }
        close(outPipe[1])
        close(errPipe[1])
        let pidfd = csys_pidfd_open(pid)
        guard pidfd >= 0, let pump else {
            // Without a pidfd (Linux < 5.3) the exit could not be observed: do not run blind.
            let reason = SystemError("pidfd_open")
            kill(-pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            close(outPipe[0])
            close(errPipe[0])
            finishUnstarted(order, began, "spawn \(order.argv[0]) \(reason.code) (Linux 5.3 or later is needed)")
            return
        }

        let run = ActiveRun(order: order, pid: pid, began: began)
        runs[order.id] = run
        onStarted(RunStarted(id: order.id, pid: pid))
        pump.watch(.init(id: order.id, pid: pid, pidfd: pidfd, stdout: outPipe[0], stderr: errPipe[0], cap: order.maxOutputBytes))
        if let timeout = order.timeoutMs, timeout > 0 {
            run.timer = loop.scheduleTask(in: .milliseconds(Int64(timeout))) { [weak self, weak run] in
                guard let self, let run, self.runs[run.order.id] === run else { return }
                run.timedOut = true
                kill(-run.pid, SIGKILL)
                self.logger.info("run timed out; killed its process group", metadata: ["run": "\(run.order.id)"])
            }
        }
    }

    /// Kills a run's process group (the outcome follows as usual).
    public func cancel(_ id: String) {
        guard let run = runs[id] else { return }
        kill(-run.pid, SIGKILL)
    }

    /// Kills every running command's process group.
    public func killAll() {
        for run in runs.values { kill(-run.pid, SIGKILL) }
    }

    /// Re-validates what approval bound (cwd identity, script hash) just before spawn.
    func recheck(_ order: RunOrder) -> RunOutcome.Refusal? {
        if let expected = order.expectCwd {
            var info = stat()
            guard let cwd = order.cwd, lstat(cwd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR,
                  UInt64(info.st_dev) == expected.device, UInt64(info.st_ino) == expected.inode else {
                return .cwdChanged
            }
        }
        if let operand = order.expectOperand {
            guard let bytes = try? readWholeFile(operand.path),
                  Self.hex(Array(SHA256.hash(data: bytes))) == operand.sha256 else {
                return .operandChanged
            }
        }
        return nil
    }

    private func finishUnstarted(_ order: RunOrder, _ began: NIODeadline, _ error: String) {
        onFinished(RunOutcome(id: order.id, exitCode: nil, signal: nil, timedOut: false, stdout: "", stderr: "",
                              truncated: false, error: error, durationMs: Self.millis(since: began)))
    }

    /// A run the pump finished: its outcome goes to the Supervisor.
    private func finished(_ finished: OutputPump.Finished) {
        loop.preconditionInEventLoop()
        guard let run = runs.removeValue(forKey: finished.id) else { return }
        run.timer?.cancel()
        onFinished(RunOutcome(
            id: finished.id, exitCode: finished.exitCode, signal: finished.signal, timedOut: run.timedOut,
            stdout: String(decoding: finished.stdout, as: UTF8.self), stderr: String(decoding: finished.stderr, as: UTF8.self),
            truncated: finished.truncated, error: nil, durationMs: Self.millis(since: run.began)
        ))
    }

    /// `name` if it contains a slash, else where the Supervisor's policy found it: the same
    /// search (`ExecutableSearch`) over the child's PATH.
    static func resolve(_ name: String, path: String?) -> String? {
        name.contains("/") ? name : ExecutableSearch.inPath(name, path: path ?? ExecutableSearch.defaultPath)
    }

    static func millis(since start: NIODeadline) -> Int {
        Int((NIODeadline.now() - start).nanoseconds / 1_000_000)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}


/// One command in flight (its output and exit are the pump's).
final class ActiveRun {
    let order: RunOrder
    let pid: pid_t
    let began: NIODeadline
    var timedOut = false
    var timer: Scheduled<Void>?

    init(order: RunOrder, pid: pid_t, began: NIODeadline) {
        self.order = order
        self.pid = pid
        self.began = began
    }
}
