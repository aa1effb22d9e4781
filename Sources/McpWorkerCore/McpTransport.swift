import CSystemShims
import Dispatch
import Glibc
import Logging
import NodeSupport
import OpenClawIPC

/// How an MCP session reaches its server: JSON-RPC messages out, messages and the end in.
/// Callbacks arrive on the session's queue.
protocol McpTransport: AnyObject {
    var onMessage: (JSONValue) -> Void { get set }
    var onClose: (String) -> Void { get set }
    /// One request failed in the transport itself (an HTTP exchange), not at the server: its
    /// JSON-RPC id and the text to report.
    var onRequestFailed: (JSONValue, String) -> Void { get set }
    func start() throws(McpTransportError)
    func send(_ message: JSONValue)
    func close()
}

struct McpTransportError: Error, Equatable {
    var message: String
}

/// A stdio MCP server (the spec's stdio transport): the program in its own process group,
/// newline-delimited JSON-RPC on its stdin and stdout, its stderr lines logged at debug as
/// upstream does (`bundle-mcp:<server>: <line>`). A line longer than `maxLine` ends the
/// session (a server cannot make the worker buffer without bound).
final class StdioTransport: McpTransport {
    /// Below the IPC frame (25 MiB): a result the worker could not pass on ends the session.
    static let maxLine = 24 * 1024 * 1024
    /// Input the server has not read yet; past it the server is not reading and the session ends.
    static let maxQueuedInput = 4 * 1024 * 1024
    let server: McpServerConfig
    /// The server's whole environment (the Supervisor built it: upstream's defaults plus `env`).
    var environment: [String: String] { server.env }
    let queue: DispatchQueue
    let logger: Logger
    var onMessage: (JSONValue) -> Void = { _ in }
    var onClose: (String) -> Void = { _ in }
    var onRequestFailed: (JSONValue, String) -> Void = { _, _ in }  // a pipe has no per-request failure
    private var pid: pid_t?
    private var input: CInt = -1
    /// Bytes handed to the writer and not yet written (touched on `queue` only).
    private var queuedInput = 0
    private let writer: DispatchQueue
    private var closed = false

    init(server: McpServerConfig, queue: DispatchQueue, logger: Logger) {
        self.server = server
        self.queue = queue
        self.logger = logger
        writer = DispatchQueue(label: "mcp-stdin-\(server.name)")
    }

    func start() throws(McpTransportError) {
        guard let command = server.command else { throw McpTransportError(message: "no command") }
        let path: String
        if command.contains("/") {
            path = command
        } else if let found = ExecutableSearch.inPath(command, path: environment["PATH"] ?? ExecutableSearch.defaultPath) {
            path = found
        } else {
            throw McpTransportError(message: "spawn \(command) ENOENT")
        }
        var stdin: [CInt] = [-1, -1], stdout: [CInt] = [-1, -1], stderr: [CInt] = [-1, -1]
        guard csys_pipe_cloexec(&stdin) == 0, csys_pipe_cloexec(&stdout) == 0, csys_pipe_cloexec(&stderr) == 0 else {
            for fd in stdin + stdout + stderr where fd >= 0 { Glibc.close(fd) }
            throw McpTransportError(message: "cannot create pipes: \(SystemError.text(errno))")
        }
        // Its group dies with the worker (the parent-death guard), as a command's does.
        let spawned: Result<pid_t, SystemError> = GroupGuard.whileBlocked {
            do {
                let child = try Spawner.spawn(SpawnSpec(path: path, argv: [command] + server.args, env: environment, cwd: server.cwd,
                                                        fdMap: [(stdin[0], 0), (stdout[1], 1), (stderr[1], 2)], newProcessGroup: true))
                GroupGuard.add(child)
                return .success(child)
            } catch let error as SystemError {
                return .failure(error)
            } catch {
                return .failure(SystemError("posix_spawn", errno: EINVAL))
            }
        }
        switch spawned {
        case let .success(child): pid = child
        case let .failure(error):
            for fd in stdin + stdout + stderr { Glibc.close(fd) }
            throw McpTransportError(message: "spawn \(command) \(error.code)")
        }
        Glibc.close(stdin[0])
        Glibc.close(stdout[1])
        Glibc.close(stderr[1])
        input = stdin[1]
        let (out, err) = (stdout[0], stderr[0])
        let name = server.name
        let logger = self.logger
        BackgroundThread.detach { [weak self] in
            var reader = LineSplitter(limit: Self.maxLine)
            let reason = reader.read(fd: out) { line in
                guard let message = try? JSONText.decode(JSONValue.self, from: line) else {
                    logger.debug("bundle-mcp:\(name): not JSON-RPC: \(line.prefix(200))")
                    return
                }
                self?.queue.async { [weak self] in self?.onMessage(message) }
            }
            Glibc.close(out)
            self?.queue.async { [weak self] in self?.ended(reason) }
        }
        BackgroundThread.detach {
            // Long stderr lines are cut, never a reason to stop reading (a server whose stderr
            // pipe closed would die of EPIPE).
            var reader = LineSplitter(limit: 8 * 1024, dropsLongLines: true)
            _ = reader.read(fd: err) { line in
                if line.contains(where: { !$0.isWhitespace }) { logger.debug("bundle-mcp:\(name): \(line)") }
            }
            Glibc.close(err)
        }
    }

    func send(_ message: JSONValue) {
        guard !closed, input >= 0, let text = try? JSONText.encode(message) else { return }
        let bytes = Array((text + "\n").utf8)
        queuedInput += bytes.count
        guard queuedInput <= Self.maxQueuedInput else { return ended("the server does not read its input") }
        let fd = input
        let queue = self.queue
        writer.async { [weak self] in
            writeAll(fd, bytes)
            queue.async { self?.queuedInput -= bytes.count }
        }
    }

    /// Ends the session: the server's whole process group is killed and reaped.
    func close() {
        guard !closed else { return }
        closed = true
        let fd = input
        input = -1
        writer.async { if fd >= 0 { Glibc.close(fd) } }
        guard let pid else { return }
        self.pid = nil
        kill(-pid, SIGKILL)
        GroupGuard.remove(pid)
        BackgroundThread.detach {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        }
    }

    private func ended(_ reason: String) {
        guard !closed else { return }
        close()
        onClose(reason)
    }
}

/// Newline-separated lines from a file descriptor, each at most `limit` bytes.
struct LineSplitter {
    let limit: Int
    let dropsLongLines: Bool
    private var buffer: [UInt8] = []
    private var skipping = false

    init(limit: Int, dropsLongLines: Bool = false) {
        self.limit = limit
        self.dropsLongLines = dropsLongLines
    }

    /// Reads to the end, calling `line` for each; returns why it stopped.
    mutating func read(fd: CInt, line: (String) -> Void) -> String {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return "process exited" }
            var start = 0
            for index in 0..<count where chunk[index] == 10 {
                if !skipping {
                    buffer += chunk[start..<index]
                    line(String(decoding: buffer, as: UTF8.self))
                }
                buffer.removeAll(keepingCapacity: true)
                skipping = false
                start = index + 1
            }
            if !skipping { buffer += chunk[start..<count] }
            if buffer.count > limit {
                guard dropsLongLines else { return "message exceeded \(limit) bytes" }
                line(String(decoding: buffer.prefix(limit), as: UTF8.self))
                buffer.removeAll(keepingCapacity: true)
                skipping = true
            }
        }
    }
}

enum BackgroundThread {
    /// Runs `body` on a new detached thread (a blocking reader).
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        if created == 0 { pthread_detach(thread) } else { Unmanaged<Box>.fromOpaque(box).release() }
    }
}


