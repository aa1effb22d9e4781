import CSystemShims
import Glibc

/// A failed system call: the C function and its `errno`.
public struct SystemError: Error, Equatable, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    /// The conventional symbolic name (`ENOENT`), as Node.js prints it.
    public var code: String { Self.symbolicName(errno) }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (\(code))"
    }

    public static func symbolicName(_ errno: Int32) -> String {
        switch errno {
        case ENOENT: return "ENOENT"
        case EACCES: return "EACCES"
        case EPERM: return "EPERM"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case ENOEXEC: return "ENOEXEC"
        case E2BIG: return "E2BIG"
        case ENOMEM: return "ENOMEM"
        case EAGAIN: return "EAGAIN"
        case ELOOP: return "ELOOP"
        case ENAMETOOLONG: return "ENAMETOOLONG"
        case ETXTBSY: return "ETXTBSY"
        case EMFILE: return "EMFILE"
        case EINVAL: return "EINVAL"
        default: return "E\(errno)"
        }
    }
}

/// What to start, with exactly which file descriptors and environment.
///
/// Nothing is inherited implicitly: the child gets `/dev/null` (or `stdin`) on fd 0, the
/// descriptors in `fdMap`, and every other descriptor above the highest mapped one is closed
/// before exec (`posix_spawn_file_actions_addclosefrom_np`), whatever its close-on-exec flag.
public struct SpawnSpec {
    public var path: String
    public var argv: [String]
    public var env: [String: String]
    public var cwd: String?
    /// `(source, target)`: `dup2(source, target)` in the child. Targets should be ≥ 1.
    public var fdMap: [(source: CInt, target: CInt)]
    /// Start the child in a new process group (its pid becomes the group id).
    public var newProcessGroup: Bool

    public init(path: String, argv: [String], env: [String: String], cwd: String? = nil,
                fdMap: [(source: CInt, target: CInt)] = [], newProcessGroup: Bool = false) {
        self.path = path
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.fdMap = fdMap
        self.newProcessGroup = newProcessGroup
    }
}

extension SpawnSpec {
    var isMalformed: Bool {
        let words = [path] + argv + [cwd ?? ""] + env.keys + env.values
        return words.contains { $0.utf8.contains(0) } || env.keys.contains { $0.isEmpty || $0.contains("=") }
    }
}

/// Typed wrapper over `posix_spawn(3)`.
public enum Spawner {
    /// Starts `spec` and returns the child's pid. Signal dispositions and the signal mask are
    /// reset to defaults in the child.
    ///
    /// A NUL byte in the path, an argument, the cwd or the environment, and an environment
    /// name that is empty or holds `=`, are refused with `EINVAL`: as C strings they would end
    /// a word early or move text from a name into a value, and the child would run something
    /// other than what its caller checked.
    public static func spawn(_ spec: SpawnSpec) throws(SystemError) -> pid_t {
        guard !spec.isMalformed else { throw SystemError("posix_spawn", errno: EINVAL) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var highest: CInt = 2
        for (source, target) in spec.fdMap {
            if source == target {
                // dup2 to itself is a no-op that keeps FD_CLOEXEC; go through a spare fd.
                posix_spawn_file_actions_adddup2(&actions, source, 1000 + target)
                posix_spawn_file_actions_adddup2(&actions, 1000 + target, target)
                posix_spawn_file_actions_addclose(&actions, 1000 + target)
            } else {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            }
            highest = max(highest, target)
        }
        csys_spawn_addclosefrom(&actions, highest + 1)
        if let cwd = spec.cwd {
            csys_spawn_addchdir(&actions, cwd)
        }

        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if spec.newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)

        let argv = CStringArray(spec.argv)
        let envp = CStringArray(spec.env.map { "\($0.key)=\($0.value)" }.sorted())
        defer {
            argv.free()
            envp.free()
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, spec.path, &actions, &attributes, argv.pointers, envp.pointers)
        if result != 0 { throw SystemError("posix_spawn", errno: result) }
        return pid
    }
}

/// A NULL-terminated `char *[]` that owns its strings.
struct CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointers = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() {
            pointers[index] = strdup(string)
        }
        pointers[strings.count] = nil
    }

    func free() {
        for index in 0..<count { Glibc.free(pointers[index]) }
        pointers.deallocate()
    }
}

/// Creates a connected `AF_UNIX` stream socket pair, both ends close-on-exec.
public func makeSocketPair() throws(SystemError) -> (CInt, CInt) {
    var fds: [CInt] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
        throw SystemError("socketpair")
    }
    return (fds[0], fds[1])
}

/// The absolute path of the running executable (`/proc/self/exe`).
public func currentExecutablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Arranges for this process to get `SIGKILL` when its parent dies, and returns false if
/// the parent is already gone (the race `PR_SET_PDEATHSIG` alone cannot close).
public func dieWithParent(expectedParent: pid_t, signal: Int32 = SIGKILL) -> Bool {
    _ = csys_prctl(csys_PR_SET_PDEATHSIG, UInt(signal), 0, 0, 0)
    return getppid() == expectedParent
}

/// The process groups a worker started (commands, Chromium). When `signal` arrives (the
/// parent-death signal, so even a SIGKILLed Supervisor, or a stop), they are killed and the
/// worker exits at once, from an async-signal-safe handler.
public enum GroupGuard {
    nonisolated(unsafe) private static var signal: Int32 = 0

    public static func install(signal: Int32) {
        Self.signal = signal
        _ = csys_group_guard_install(signal)
    }

    /// Runs `body` (a spawn and its `add`) with the guard's signal blocked in this thread, so
    /// the signal cannot arrive between the two. The child starts with an empty mask.
    public static func whileBlocked<T>(_ body: () -> T) -> T {
        guard signal != 0 else { return body() }
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, signal)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        return body()
    }

    /// False when all 1 024 slots are taken (the group is then not killed this way).
    @discardableResult
    public static func add(_ group: pid_t) -> Bool {
        csys_group_guard_add(group) == 0
    }

    public static func remove(_ group: pid_t) {
        csys_group_guard_remove(group)
    }
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`).
public func becomeChildSubreaper() {
    _ = csys_prctl(csys_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

/// The process environment as a dictionary (first occurrence of a name wins, like getenv).
public enum ProcessEnvironment {
    public static func current() -> [String: String] {
        var result: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                let key = String(text[..<equals])
                if result[key] == nil { result[key] = String(text[text.index(after: equals)...]) }
            }
            cursor += 1
        }
        return result
    }
}

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

    public static func run(_ argv: [String], environment: [String: String] = ProcessEnvironment.current(),
                           path: String? = nil) -> Output? {
        guard let executable = path ?? (argv[0].contains("/") ? argv[0]
            : ExecutableSearch.inPath(argv[0], path: environment["PATH"] ?? ExecutableSearch.defaultPath)) else { return nil }
        var out: [CInt] = [-1, -1]
        var err: [CInt] = [-1, -1]
        guard csys_pipe_cloexec(&out) == 0 else { return nil }
        guard csys_pipe_cloexec(&err) == 0 else { close(out[0]); close(out[1]); return nil }
        let pid: pid_t
        do {
            pid = try Spawner.spawn(SpawnSpec(path: executable, argv: argv, env: environment, fdMap: [(out[1], 1), (err[1], 2)]))
        } catch {
            for fd in out + err { close(fd) }
            return nil
        }
        close(out[1])
        close(err[1])
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

/// Removes `path` and everything beneath it without following symlinks (`nftw(3)`,
/// depth first). For throwaway directories this program made itself.
public func removeTree(_ path: String) {
    _ = csys_remove_tree(path)
}

/// The whole content of a file (also `/proc` files, whose size `stat` does not know).
public func readWholeFile(_ path: String) throws(SystemError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 {
            if errno == EINTR { continue }
            throw SystemError("read")
        }
        if count == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<count])
    }
}
