import CSystemShims
import Glibc

/// Runs a program to completion and collects what it printed (`posix_spawn` + pipes +
/// `waitpid`). For short-lived helpers (`systemctl`, worker report modes), not for commands
/// from the gateway.
public enum ProgramRun {
    public struct Output: Sendable {
        /// Exit status, or 128 + signal when killed.
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// `input` is written to the program's stdin, which is then closed (nil: no stdin at all).
    /// It must fit a pipe (at most 64 KiB), since it is written before the output is read.
    public static func run(_ argv: [String], environment: [String: String] = ProcessEnvironment.current(),
                           path: String? = nil, input: [UInt8]? = nil) -> Output? {
        precondition((input?.count ?? 0) <= 65_536, "ProgramRun input must fit a pipe")
        guard let executable = path ?? (argv[0].contains("/") ? argv[0]
            : ExecutableSearch.inPath(argv[0], path: environment["PATH"] ?? ExecutableSearch.defaultPath)) else { return nil }
        var out: [CInt] = [-1, -1]
        var err: [CInt] = [-1, -1]
        guard csys_pipe_cloexec(&out) == 0 else { return nil }
        guard csys_pipe_cloexec(&err) == 0 else { close(out[0]); close(out[1]); return nil }
        var stdin: [CInt] = [-1, -1]
        if input != nil, csys_pipe_cloexec(&stdin) != 0 { for fd in out + err { close(fd) }; return nil }
        var fdMap = [(out[1], CInt(1)), (err[1], CInt(2))]
        if input != nil { fdMap.append((stdin[0], 0)) }
        let pid: pid_t
        do {
            pid = try Spawner.spawn(SpawnSpec(path: executable, argv: argv, env: environment, fdMap: fdMap))
        } catch {
            for fd in out + err + stdin where fd >= 0 { close(fd) }
            return nil
        }
        close(out[1])
        close(err[1])
        if let input {
            close(stdin[0])
            writeAll(stdin[1], input)
            close(stdin[1])
        }
        // Two pipes read in turn with poll, so a chatty stderr cannot block stdout.
        var buffers: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: out[0], events: Int16(POLLIN), revents: 0), pollfd(fd: err[0], events: Int16(POLLIN), revents: 0)]
        var open = 2
        var chunk = [UInt8](repeating: 0, count: 16384)
        while open > 0 {
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in fds.indices where fds[index].fd >= 0 && fds[index].revents != 0 {
                let count = read(fds[index].fd, &chunk, chunk.count)
                if count > 0 {
                    buffers[index] += chunk[0..<count]
                } else if count == 0 || errno != EINTR {
                    close(fds[index].fd)
                    fds[index].fd = -1
                    open -= 1
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(status: code, stdout: String(decoding: buffers[0], as: UTF8.self),
                      stderr: String(decoding: buffers[1], as: UTF8.self))
    }
}
