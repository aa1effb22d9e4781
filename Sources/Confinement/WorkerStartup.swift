import Glibc
import Logging
import NodeSupport
import OpenClawIPC

/// The first thing each worker's `main` does, before it creates a thread or reads a byte
/// from anywhere: confine itself as the Supervisor asked (its command line), then either
/// continue, or tell the Supervisor which step failed and exit 71.
///
/// Also serves `--confinement-report` (for `openclaw-node doctor`: confine, print the report
/// as JSON, exit) and, in debug builds only, `--probe` (death tests: confine, then try one
/// forbidden thing and print whether the kernel refused it).
public enum WorkerStartup {
    /// What the worker was started with, once confined.
    public struct Started: Sendable {
        public var report: ConfinementReport
        public var options: ConfinementOptions
        /// The Supervisor's pid, read before the uid change.
        public var parent: pid_t
        /// Command-line words that are not confinement options (worker-specific modes).
        public var rest: [String]

        /// Exits 64 with an explanation unless fd 3 is the Supervisor's socket (a worker run by
        /// hand, outside its report and check modes, has nothing to serve).
        public func requireSupervisorLink(_ role: WorkerRole) {
            var link = stat()
            guard fstat(workerIPCDescriptor, &link) == 0, (link.st_mode & S_IFMT) == S_IFSOCK else {
                fputs("\(usage(role))\n\(role.processName): no IPC socket on fd \(workerIPCDescriptor); run `openclaw-node run` instead\n", stderr)
                exit(64)
            }
        }

        /// The common tail of every worker's start-up once it serves the Supervisor: fd 3 must be
        /// its socket, log lines are tagged with the role, and the worker dies with the
        /// Supervisor (set after the uid change, which clears the parent-death signal).
        ///
        /// Workers that start process groups (exec: commands; browser: Chromium) get SIGTERM
        /// as their parent-death signal, handled by `GroupGuard`: their groups are killed
        /// before they exit, so nothing they started outlives a Supervisor killed with
        /// SIGKILL outside a systemd cgroup. The NetWorker starts nothing and gets SIGKILL.
        public func attachToSupervisor(_ role: WorkerRole) -> Logger {
            requireSupervisorLink(role)
            LineLogHandler.bootstrap(process: role.rawValue)
            let logger = Logger(label: role.processName)
            var deathSignal = SIGKILL
            if role == .exec || role == .browser || role == .mcp {
                GroupGuard.install(signal: SIGTERM)
                deathSignal = SIGTERM
            }
            guard dieWithParent(expectedParent: parent, signal: deathSignal) else { exit(0) }
            return logger
        }

        /// The value after `flag` in `rest`, if any.
        public func value(of flag: String) -> String? {
            rest.firstIndex(of: flag).flatMap { $0 + 1 < rest.count ? rest[$0 + 1] : nil }
        }
    }

    public static func confine<M: IPCMessage>(_ role: WorkerRole, ready: (WorkerHello) -> M) -> Started {
        confine(role) { report in
            // The Supervisor logs which step failed and stops instead of re-spawning a worker
            // that cannot be confined.
            if let frame = try? IPCCodec.encodeFrame(ready(WorkerHello(pid: getpid(), role: role, confinement: report))) {
                let bytes = Array(frame.readableBytesView)
                _ = bytes.withUnsafeBytes { write(workerIPCDescriptor, $0.baseAddress, $0.count) }
            }
        }
    }

    /// Confines the process as `role`; a failed step is handed to `reportFailure` (the worker's
    /// way to tell the Supervisor) before the exit.
    public static func confine(_ role: WorkerRole, reportFailure: (ConfinementReport) -> Void) -> Started {
        let parent = getppid()
        // Executed as /proc/self/exe, the kernel named the process "exe": give it its role's
        // name (truncated to 15 bytes by the kernel) for top, ps -o comm and audit logs.
        setProcessName(role.processName)
        let (options, rest) = ConfinementOptions.parse(Array(CommandLine.arguments.dropFirst()))
        let report = WorkerConfinement.apply(role, options)
        if rest.first == "--confinement-report" {
            print((try? JSONText.encode(report)) ?? "{}")
            exit(report.failure == nil ? 0 : 71)
        }
        #if DEBUG
        if rest.first == "--probe" {
            print(Probe.run(Array(rest.dropFirst())))
            exit(0)
        }
        #endif
        if rest.contains("--help") || rest.contains("-h") {
            print(usage(role))
            exit(0)
        }
        if let failure = report.failure {
            fputs("\(role.processName): confinement step \(failure.step.rawValue) failed: \(failure.detail ?? "")\n", stderr)
            reportFailure(report)
            exit(71)
        }
        return Started(report: report, options: options, parent: parent, rest: rest)
    }
}

/// What a worker is, for someone who starts it by hand.
func usage(_ role: WorkerRole) -> String {
    """
    \(role.processName): a worker process of openclaw-node (\(role.purpose)). The Supervisor \
    (`openclaw-node run`) starts it with its IPC socket on fd \(workerIPCDescriptor) and the confinement \
    options below; it is not meant to be run by hand.
      --confinement-report   confine as asked, print what was applied as JSON, exit
      --user U, --unconfined STEP, --connect-port P, --metrics-port P, --write-path D, --exec-path D,
      --files-mode list|stage|sweep, --files-root D
    """
}

#if DEBUG
/// Death-test probes (debug builds only): one forbidden action inside the confined worker.
enum Probe {
    static func run(_ words: [String]) -> String {
        let name = words.first ?? ""
        let argument = words.count > 1 ? words[1] : ""
        func outcome(_ result: Int32) -> String {
            result < 0 ? "refused \(SystemError.text(errno))" : "allowed"
        }
        switch name {
        case "execve":
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
            _ = execv("/bin/true", &argv)
            return "probe execve: " + outcome(-1)
        case "fork":
            let pid = fork()
            if pid == 0 { _exit(0) }
            if pid > 0 { waitpid(pid, nil, 0) }
            return "probe fork: " + outcome(pid)
        case "write":
            let fd = open(argument, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            defer { if fd >= 0 { close(fd) } }
            return "probe write: " + outcome(fd)
        case "read":
            let fd = open(argument, O_RDONLY | O_CLOEXEC)
            defer { if fd >= 0 { close(fd) } }
            return "probe read: " + outcome(fd)
        case "mkdir":
            return "probe mkdir: " + outcome(mkdir(argument, 0o700))
        case "unlink":
            return "probe unlink: " + outcome(unlink(argument))
        case "connect":
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(argument) ?? 0).bigEndian
            address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            return "probe connect: " + outcome(result)
        default:
            return "probe \(name): unknown"
        }
    }
}
#endif
