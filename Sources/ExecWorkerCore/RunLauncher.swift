import CSystemShims
import Glibc
import NodeSupport
import OpenClawIPC

/// Starts one authorised command: re-checks what approval bound, then spawns it in its own
/// process group with empty stdin, two output pipes and a pidfd. It makes no policy
/// decision: the order says exactly what runs.
enum RunLauncher {
    /// A started command: every fd here belongs to the caller from now on.
    struct Started {
        var pid: pid_t
        var pidfd: Int32
        var stdout: Int32
        var stderr: Int32
    }

    enum Launch {
        case started(Started)
        /// Not started: the outcome to report at once.
        case finished(RunOutcome)
    }

    static func launch(_ order: RunOrder, began: UInt64) -> Launch {
        func unstarted(_ error: String) -> Launch {
            .finished(RunOutcome(id: order.id, exitCode: nil, signal: nil, timedOut: false, stdout: "", stderr: "",
                                 truncated: false, error: error, durationMs: Int(Clock.monotonicMs() - began)))
        }
        if let refusal = recheck(order) {
            return .finished(RunOutcome(id: order.id, exitCode: nil, signal: nil, timedOut: false, stdout: "", stderr: "",
                                        truncated: false, error: nil, refusal: refusal, durationMs: 0))
        }
        if let cwd = order.cwd {
            var info = stat()
            if stat(cwd, &info) != 0 {
                let error = SystemError("stat")
                return unstarted("node exec working directory does not exist on the node host: \(cwd) (os reported: \(error.code): \(SystemError.text(error.errno)))")
            }
        }
        guard let executable = resolve(order.argv[0], path: order.env["PATH"]) else {
            return unstarted("spawn \(order.argv[0]) ENOENT")
        }
        var outPipe: [CInt] = [-1, -1]
        var errPipe: [CInt] = [-1, -1]
        guard csys_pipe_cloexec(&outPipe) == 0 else {
            return unstarted("spawn \(order.argv[0]) \(SystemError("pipe2").code)")
        }
        guard csys_pipe_cloexec(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            return unstarted("spawn \(order.argv[0]) \(SystemError("pipe2").code)")
        }
        let spec = SpawnSpec(path: executable, argv: order.argv, env: order.env, cwd: order.cwd,
                             fdMap: [(outPipe[1], 1), (errPipe[1], 2)], newProcessGroup: true)
        let pid: pid_t
        do {
            pid = try Spawner.spawn(spec)
        } catch {
            for fd in outPipe + errPipe { close(fd) }
            return unstarted("spawn \(order.argv[0]) \(error.code)")
        }
        close(outPipe[1])
        close(errPipe[1])
        let pidfd = csys_pidfd_open(pid)
        guard pidfd >= 0 else {
            // Without a pidfd (Linux < 5.3) the exit could not be observed: do not run blind.
            let reason = SystemError("pidfd_open")
            kill(-pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            close(outPipe[0])
            close(errPipe[0])
            return unstarted("spawn \(order.argv[0]) \(reason.code) (Linux 5.3 or later is needed)")
        }
        return .started(Started(pid: pid, pidfd: pidfd, stdout: outPipe[0], stderr: errPipe[0]))
    }

    /// Re-validates what approval bound (cwd identity, script hash) just before spawn.
    static func recheck(_ order: RunOrder) -> RunOutcome.Refusal? {
        if let expected = order.expectCwd {
            var info = stat()
            guard let cwd = order.cwd, lstat(cwd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR,
                  UInt64(info.st_dev) == expected.device, UInt64(info.st_ino) == expected.inode else {
                return .cwdChanged
            }
        }
        if let operand = order.expectOperand {
            // Read as the Supervisor read it: no FIFO, no symlink, bounded.
            guard case .success(operand.sha256) = FileDigest.sha256Hex(regularFile: operand.path) else {
                return .operandChanged
            }
        }
        return nil
    }

    /// `name` if it contains a slash, else where the Supervisor's policy found it: the same
    /// search (`ExecutableSearch`) over the child's PATH.
    static func resolve(_ name: String, path: String?) -> String? {
        name.contains("/") ? name : ExecutableSearch.inPath(name, path: path ?? ExecutableSearch.defaultPath)
    }
}
