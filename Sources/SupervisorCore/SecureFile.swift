import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC

/// Reading and writing state files the way secrets must be handled: no symlinks followed,
/// owner-only permissions, and atomic replacement (temp file in the same directory, fsync,
/// rename), so a crash never leaves a half-written file.
public enum SecureFile {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case symlink(String)
        case notRegular(String)
        case system(String, SystemError)

        public var description: String {
            switch self {
            case let .symlink(path): return "\(path) is a symbolic link; refusing to use it"
            case let .notRegular(path): return "\(path) is not a regular file"
            case let .system(path, error): return "\(path): \(error)"
            }
        }
    }

    /// Reads a file, or returns nil if it does not exist. Symlinks are refused.
    public static func read(_ path: String) throws(Failure) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            let error = errno
            if error == ENOENT { return nil }
            if error == ELOOP { throw .symlink(path) }
            throw .system(path, SystemError("open", errno: error))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .system(path, SystemError("fstat")) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notRegular(path) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(path, SystemError("read"))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    /// Creates `path` as a directory with `mode` if missing (and its parents with 0700);
    /// refuses an existing symlink; tightens the mode of an existing directory (0755 becomes
    /// 0700), except the searchable shape `allowSearch` gives (0711 stays 0711).
    public static func ensureDirectory(_ path: String, mode: mode_t = 0o700) throws(Failure) {
        var info = stat()
        if lstat(path, &info) == 0 {
            if (info.st_mode & S_IFMT) == S_IFLNK { throw .symlink(path) }
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw .notRegular(path) }
            let current = info.st_mode & 0o777
            let wanted = current == mode | 0o011 ? current : mode
            if current != wanted, info.st_uid == geteuid() { chmod(path, wanted) }
            return
        }
        let parent = parentDirectory(of: path)
        if !parent.isEmpty, parent != path, access(parent, F_OK) != 0 {
            try ensureDirectory(parent, mode: 0o700)
        }
        if mkdir(path, mode) != 0, errno != EEXIST {
            throw .system(path, SystemError("mkdir"))
        }
        chmod(path, mode)
    }

    /// Makes a directory of ours searchable (not readable) by other users: 0700 → 0711, so
    /// another user reaches a directory of its own inside (the exec user's home, the browser
    /// user's data). Everything secret inside stays 0600 / 0700. True when it changed.
    ///
    /// `privateSubdirectories` (names inside `path`) are made 0700 whenever `path` is searchable,
    /// changed now or before: a folder another program made there (the official node host's
    /// `state/`, with its database and key) must not become reachable by name.
    @discardableResult
    public static func allowSearch(_ path: String, privateSubdirectories: [String] = ["state"]) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == geteuid() else { return false }
        for name in privateSubdirectories {
            var inner = stat()
            let child = "\(path)/\(name)"
            if lstat(child, &inner) == 0, inner.st_mode & S_IFMT == S_IFDIR, inner.st_uid == geteuid(), inner.st_mode & 0o077 != 0 {
                chmod(child, 0o700)
            }
        }
        guard info.st_mode & 0o011 != 0o011 else { return false }
        return chmod(path, (info.st_mode & 0o7777) | 0o011) == 0
    }

    /// Atomically replaces `path` with `bytes`, mode `mode`. The destination and its
    /// directory must not be symlinks.
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(Failure) {
        let directory = parentDirectory(of: path)
        try ensureDirectory(directory.isEmpty ? "." : directory)
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK { throw .symlink(path) }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let temp = "\(directory)/.\(name).\(getpid()).\(RandomID.uuid()).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .system(temp, SystemError("open")) }
        if let code = writeAll(fd, bytes) {
            close(fd)
            unlink(temp)
            throw .system(temp, SystemError("write", errno: code))
        }
        fchmod(fd, mode)
        fsync(fd)
        close(fd)
        guard rename(temp, path) == 0 else {
            let error = SystemError("rename")
            unlink(temp)
            throw .system(path, error)
        }
    }

    /// Removes `path` if it exists.
    public static func remove(_ path: String) {
        unlink(path)
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}

/// JSON as the upstream TS code writes state files (`JSON.stringify(value, null, 2)` plus a
/// trailing newline), so files stay byte-compatible in shape with the official node host.
enum StateJSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let tree = try JSONDecoder().decode(JSONValue.self, from: Data(try JSONText.encodeBytes(value)))
        var out = ""
        write(tree, indent: "", into: &out)
        out += "\n"
        return Array(out.utf8)
    }

    static func write(_ value: JSONValue, indent: String, into out: inout String) {
        let inner = indent + "  "
        switch value {
        case let .array(items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += inner
                write(item, indent: inner, into: &out)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case let .object(members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            let keys = members.keys.sorted()
            for (index, key) in keys.enumerated() {
                out += inner + ((try? JSONText.encode(key)) ?? "\"\"") + ": "
                write(members[key]!, indent: inner, into: &out)
                out += index == keys.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        default:
            out += (try? JSONText.encode(value)) ?? "null"
        }
    }
}
