import Glibc
import NodeSupport

/// A private copy of an SQLite database (the main file and its `-wal`) in a fresh 0700
/// directory, read instead of the live file, as upstream's "artifact-preserving" readers do.
///
/// Why a copy: a read-only connection to a WAL database in a writable directory creates `-wal`
/// and `-shm` files next to it and takes locks on it. The copy leaves the official node's
/// files exactly as they were (no sidecar, no lock, not a byte changed). `-shm` is never
/// copied: SQLite rebuilds it from the copied WAL.
struct DatabaseSnapshot {
    struct Failure: Error, Equatable, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The private directory holding the copy.
    let directory: String
    /// The copy of the main database file.
    let path: String

    /// Copies `source` (and `source-wal` when present) into a new directory under `parent`.
    /// The copy is retried when either file changed while it was copied (a writer was active).
    static func take(of source: String, in parent: String, attempts: Int = 3) throws -> DatabaseSnapshot {
        var template = Array("\(parent)/.openclaw-import.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Failure("cannot create a staging directory in \(parent): \(SystemError("mkdtemp"))")
        }
        let directory = String(cString: made)
        let snapshot = DatabaseSnapshot(directory: directory, path: "\(directory)/openclaw.sqlite")
        do {
            for _ in 0..<max(attempts, 1) {
                let before = [FileStamp(source), FileStamp(source + "-wal")]
                unlink(snapshot.path)
                unlink(snapshot.path + "-wal")
                unlink(snapshot.path + "-shm")
                try copyFile(source, to: snapshot.path)
                if before[1] != nil {
                    try copyFile(source + "-wal", to: snapshot.path + "-wal")
                }
                if [FileStamp(source), FileStamp(source + "-wal")] == before { return snapshot }
            }
            throw Failure("\(source) kept changing while it was copied; stop the official node host first")
        } catch {
            snapshot.remove()
            throw error
        }
    }

    /// Removes the copy and its directory (SQLite may have added `-shm` or `-journal` there).
    func remove() { removeTree(directory) }

    /// Identity, size and modification time of a file (nil: missing), to see a concurrent write.
    struct FileStamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var seconds: Int64
        var nanoseconds: Int64

        init?(_ path: String) {
            var info = stat()
            guard lstat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            seconds = Int64(info.st_mtim.tv_sec)
            nanoseconds = Int64(info.st_mtim.tv_nsec)
        }
    }

    /// Streams `source` (a regular file, not a symlink) into a new 0600 `destination`.
    static func copyFile(_ source: String, to destination: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard input >= 0 else { throw Failure("cannot open \(source): \(SystemError("open"))") }
        defer { close(input) }
        var info = stat()
        guard fstat(input, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Failure("\(source) is not a regular file")
        }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw Failure("cannot create \(destination): \(SystemError("open"))") }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure("cannot read \(source): \(SystemError("read"))")
            }
            if count == 0 { return }
            if let code = buffer.withUnsafeBytes({ writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }) {
                throw Failure("cannot write \(destination): \(SystemError("write", errno: code))")
            }
        }
    }
}
