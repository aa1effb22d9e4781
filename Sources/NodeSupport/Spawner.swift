import CSystemShims
import Glibc

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
