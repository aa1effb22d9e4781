import CConfinement
import Glibc

/// Landlock (`landlock_create_ruleset(2)`, `landlock_add_rule(2)`, `landlock_restrict_self(2)`):
/// an unprivileged process restricts which files it may access, which TCP ports it may
/// bind or connect, and whom it may signal — for itself and everything it starts.
public enum Landlock {
    /// Filesystem access rights (`LANDLOCK_ACCESS_FS_*`), with the ABI that introduced each.
    public struct FileAccess: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }

        public static let execute = FileAccess(rawValue: 1 << 0)
        public static let writeFile = FileAccess(rawValue: 1 << 1)
        public static let readFile = FileAccess(rawValue: 1 << 2)
        public static let readDir = FileAccess(rawValue: 1 << 3)
        public static let removeDir = FileAccess(rawValue: 1 << 4)
        public static let removeFile = FileAccess(rawValue: 1 << 5)
        public static let makeChar = FileAccess(rawValue: 1 << 6)
        public static let makeDir = FileAccess(rawValue: 1 << 7)
        public static let makeReg = FileAccess(rawValue: 1 << 8)
        public static let makeSock = FileAccess(rawValue: 1 << 9)
        public static let makeFifo = FileAccess(rawValue: 1 << 10)
        public static let makeBlock = FileAccess(rawValue: 1 << 11)
        public static let makeSym = FileAccess(rawValue: 1 << 12)
        /// ABI 2.
        public static let refer = FileAccess(rawValue: 1 << 13)
        /// ABI 3.
        public static let truncate = FileAccess(rawValue: 1 << 14)
        /// ABI 5.
        public static let ioctlDev = FileAccess(rawValue: 1 << 15)

        /// Rights that make sense on a file (as opposed to a directory).
        public static let fileRights: FileAccess = [.execute, .writeFile, .readFile, .truncate, .ioctlDev]
        public static let readOnly: FileAccess = [.readFile, .readDir]

        /// Every right the kernel's ABI knows, so anything not granted is denied.
        public static func all(abi: Int) -> FileAccess {
            var access = FileAccess(rawValue: (1 << 13) - 1)
            if abi >= 2 { access.insert(.refer) }
            if abi >= 3 { access.insert(.truncate) }
            if abi >= 5 { access.insert(.ioctlDev) }
            return access
        }
    }

    /// TCP rights (`LANDLOCK_ACCESS_NET_*`, ABI 4).
    public struct NetAccess: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let bindTCP = NetAccess(rawValue: 1 << 0)
        public static let connectTCP = NetAccess(rawValue: 1 << 1)
    }

    /// IPC scopes (`LANDLOCK_SCOPE_*`, ABI 6): deny reaching outside the domain.
    public struct Scope: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let abstractUnixSocket = Scope(rawValue: 1 << 0)
        public static let signal = Scope(rawValue: 1 << 1)
    }

    /// The kernel's Landlock ABI version, or nil when Landlock is unavailable or disabled.
    public static func abi() -> Int? {
        let version = csys_landlock_abi()
        return version > 0 ? Int(version) : nil
    }

    /// A ruleset: everything in `handled` is denied unless a rule grants it.
    public final class Ruleset {
        public let abi: Int
        private let fd: Int32

        public init(abi: Int, handledFiles: FileAccess, handledNet: NetAccess, scoped: Scope) throws(ConfinementFailure) {
            self.abi = abi
            let net = abi >= 4 ? handledNet : []
            let scope = abi >= 6 ? scoped : []
            let size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8
            let fd = csys_landlock_create(handledFiles.intersection(.all(abi: abi)).rawValue, net.rawValue, scope.rawValue, size)
            guard fd >= 0 else { throw ConfinementFailure(.landlock, "landlock_create_ruleset", errno: errno) }
            self.fd = fd
        }

        deinit { close(fd) }

        /// Grants `access` beneath `path` (or on it, for a file). Missing paths are skipped:
        /// returns false.
        @discardableResult
        public func allow(_ path: String, _ access: FileAccess) throws(ConfinementFailure) -> Bool {
            let target = csys_open_path(path)
            guard target >= 0 else { return false }
            defer { close(target) }
            var info = stat()
            guard fstat(target, &info) == 0 else { return false }
            var granted = access.intersection(.all(abi: abi))
            if (info.st_mode & S_IFMT) != S_IFDIR { granted = granted.intersection(.fileRights) }
            guard csys_landlock_allow_path(fd, target, granted.rawValue) == 0 else {
                throw ConfinementFailure(.landlock, "landlock_add_rule(\(path))", errno: errno)
            }
            return true
        }

        /// Grants `access` for TCP `port` (ABI 4+; a no-op before).
        public func allow(port: UInt16, _ access: NetAccess) throws(ConfinementFailure) {
            guard abi >= 4 else { return }
            guard csys_landlock_allow_port(fd, UInt64(port), access.rawValue) == 0 else {
                throw ConfinementFailure(.landlock, "landlock_add_rule(port \(port))", errno: errno)
            }
        }

        /// Enforces the ruleset on the calling thread and everything it creates or executes.
        public func restrictSelf() throws(ConfinementFailure) {
            guard csys_landlock_restrict_self(fd) == 0 else {
                throw ConfinementFailure(.landlock, "landlock_restrict_self", errno: errno)
            }
        }
    }
}
