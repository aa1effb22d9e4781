import CSystemShims
import Crypto
import Glibc
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// Runs authorised commands: spawns each in its own process group with empty stdin, captures
/// stdout and stderr up to the byte cap (head kept, the rest drained and dropped), kills the
/// whole group on timeout or when the main process exits, and reports one outcome per run.
///
/// Confined to one event loop. It makes no policy decision: the order says exactly what runs.
public final class RunExecutor {
    private let loop: EventLoop
    private let logger: Logger
    private var runs: [String: ActiveRun] = [:]
    private var byPid: [pid_t: String] = [:]

    /// Reports a started run (`pid` is also the process group id).
    public var onStarted: (RunStarted) -> Void = { _ in }
    /// Reports a finished run.
    public var onFinished: (RunOutcome) -> Void = { _ in }

    public init(loop: EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
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

        let run = ActiveRun(order: order, pid: pid, began: began)
        runs[order.id] = run
        byPid[pid] = order.id
        onStarted(RunStarted(id: order.id, pid: pid))
        attach(fd: outPipe[0], stream: .stdout, run: run)
        attach(fd: errPipe[0], stream: .stderr, run: run)
        if let timeout = order.timeoutMs, timeout > 0 {
            run.timer = loop.scheduleTask(in: .milliseconds(Int64(timeout))) { [weak self, weak run] in
                guard let self, let run, !run.exited else { return }
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

    private func attach(fd: CInt, stream: ActiveRun.Stream, run: ActiveRun) {
        let handler = OutputCollector(run: run, stream: stream) { [weak self, weak run] in
            guard let self, let run else { return }
            run.openStreams -= 1
            self.finishIfComplete(run)
        }
        NIOPipeBootstrap(group: loop)
            .channelInitializer { channel in channel.pipeline.addHandler(handler) }
            .takingOwnershipOfDescriptor(input: fd)
            .hop(to: loop)
            .whenComplete { [weak self, weak run] result in
                guard let self, let run else { return }
                switch result {
                case let .success(channel):
                    run.channels.append(channel)
                case .failure:
                    close(fd)
                    run.openStreams -= 1
                    self.finishIfComplete(run)
                }
            }
    }

    /// Collects exit statuses of finished children (SIGCHLD or periodic sweep).
    public func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            guard let id = byPid.removeValue(forKey: pid), let run = runs[id] else { continue }
            run.exited = true
            let signal = status & 0x7f
            if signal == 0 {
                run.exitCode = (status >> 8) & 0xff
            } else {
                run.signal = signal
            }
            run.timer?.cancel()
            // The run is over: nothing it started may outlive it.
            kill(-run.pid, SIGKILL)
            // Output still held open by an escaped descendant is not waited for forever.
            run.drainDeadline = loop.scheduleTask(in: .seconds(2)) { [weak run] in
                run?.channels.forEach { $0.close(promise: nil) }
            }
            finishIfComplete(run)
        }
    }

    private func finishIfComplete(_ run: ActiveRun) {
        guard run.exited, run.openStreams <= 0, runs[run.order.id] === run else { return }
        runs[run.order.id] = nil
        run.drainDeadline?.cancel()
        let outcome = RunOutcome(
            id: run.order.id, exitCode: run.exitCode, signal: run.signal, timedOut: run.timedOut,
            stdout: String(decoding: run.stdout, as: UTF8.self), stderr: String(decoding: run.stderr, as: UTF8.self),
            truncated: run.truncated, error: nil, durationMs: Self.millis(since: run.began)
        )
        onFinished(outcome)
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


/// One command in flight.
final class ActiveRun {
    enum Stream { case stdout, stderr }

    let order: RunOrder
    let pid: pid_t
    let began: NIODeadline
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var truncated = false
    var timedOut = false
    var exited = false
    var exitCode: Int32?
    var signal: Int32?
    var openStreams = 2
    var timer: Scheduled<Void>?
    var drainDeadline: Scheduled<Void>?
    var channels: [Channel] = []

    init(order: RunOrder, pid: pid_t, began: NIODeadline) {
        self.order = order
        self.pid = pid
        self.began = began
    }

    /// Keeps the head: each stream and both together are capped at `maxOutputBytes`.
    func append(_ buffer: ByteBuffer, to stream: Stream) {
        let cap = order.maxOutputBytes
        let room = min(cap - (stream == .stdout ? stdout.count : stderr.count), cap - stdout.count - stderr.count)
        let take = max(0, min(room, buffer.readableBytes))
        if take < buffer.readableBytes { truncated = true }
        guard take > 0 else { return }
        let bytes = buffer.readableBytesView.prefix(take)
        switch stream {
        case .stdout: stdout.append(contentsOf: bytes)
        case .stderr: stderr.append(contentsOf: bytes)
        }
    }
}

/// Reads one output pipe to its end.
final class OutputCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private weak var run: ActiveRun?
    private let stream: ActiveRun.Stream
    private let onEnd: () -> Void
    private var ended = false

    init(run: ActiveRun, stream: ActiveRun.Stream, onEnd: @escaping () -> Void) {
        self.run = run
        self.stream = stream
        self.onEnd = onEnd
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run?.append(unwrapInboundIn(data), to: stream)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Only the end of the child's output ends the stream: a read-only pipe channel also
        // reports its (absent) output side as closed, which must not close the reader.
        if case ChannelEvent.inputClosed? = event as? ChannelEvent { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        onEnd()
    }
}
