import Glibc
import NodeSupport

/// The state dir's single-instance lock: an exclusive `flock` on `<state dir>/node.lock`, held
/// by the Supervisor for its whole life (the descriptor is close-on-exec, so no worker or
/// command inherits it). The file holds the holder's pid, so a refusal can name it. The lock
/// goes with the process, however it ends; the file stays.
public final class NodeLock {
    public static func path(stateDir: String) -> String { "\(stateDir)/node.lock" }

    /// Why the lock was not taken.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Another process holds it (its pid, when the file names one).
        case held(path: String, pid: Int32?)
        case unusable(path: String, reason: String)

        public var description: String {
            switch self {
            case let .held(path, pid):
                let holder = pid.map { "pid \($0)" } ?? "another process"
                return "another openclaw-node (\(holder)) is running on this state dir (\(path) is locked); stop it first, or give this one its own OPENCLAW_STATE_DIR"
            case let .unusable(path, reason):
                return "cannot lock \(path): \(reason)"
            }
        }
    }

    private let descriptor: Int32
    public let path: String

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close(descriptor) }

    /// Takes the lock for this process and writes our pid into the file.
    public static func acquire(stateDir: String) throws(Failure) -> NodeLock {
        let path = path(stateDir: stateDir)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .unusable(path: path, reason: SystemError.text(errno)) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let failure = errno
            let holder = readPid(fd)
            close(fd)
            if failure == EWOULDBLOCK { throw .held(path: path, pid: holder) }
            throw .unusable(path: path, reason: SystemError.text(failure))
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return NodeLock(descriptor: fd, path: path)
    }

    /// The pid of the process holding the lock on `stateDir`, or nil when nobody holds it (or
    /// the file cannot be read: then nothing can be said about a holder).
    public static func holder(stateDir: String) -> Int32? {
        let fd = open(path(stateDir: stateDir), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // A shared lock is granted only when no one holds the exclusive one.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return errno == EWOULDBLOCK ? readPid(fd) ?? 0 : nil
    }

    private static func readPid(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer.prefix(count), as: UTF8.self).trimmingWhitespace())
    }
}
