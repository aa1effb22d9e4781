import CSystemShims
import Glibc

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

/// At most `limit` + 1 bytes of a regular file that is not a symlink (nil: it is a symlink, not
/// a regular file, or cannot be read). Opened without blocking, so a FIFO swapped in after a
/// `stat` cannot stall the caller; a result longer than `limit` means the file is too large.
public func readRegularFile(_ path: String, limit: Int) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count <= limit {
        let count = read(fd, &chunk, min(chunk.count, limit + 1 - bytes.count))
        if count < 0, errno == EINTR { continue }
        if count < 0 { return nil }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return bytes
}

/// Writes all of `bytes` to `fd` (a blocking descriptor), again after EINTR and short writes.
/// nil when everything was written; else the errno of the failing write (EIO when a write
/// wrote nothing, EPIPE when the reader has gone).
@discardableResult
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
    var written = 0
    while written < bytes.count {
        let count = write(fd, bytes.baseAddress! + written, bytes.count - written)
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { return count < 0 ? errno : EIO }
        written += count
    }
    return nil
}

/// `writeAll` of a byte array.
@discardableResult
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
    bytes.withUnsafeBytes { writeAll(fd, $0) }
}

/// Up to `limit` bytes of stdin, to its end (a one-shot worker's request).
public func readStandardInput(limit: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count < limit {
        let count = read(0, &chunk, min(chunk.count, limit - bytes.count))
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += chunk[0..<count]
    }
    return bytes
}

/// The entries of a folder (`.` and `..` left out), with their `d_type`.
public func directoryEntries(_ path: String) -> Result<[(name: String, type: UInt8)], SystemError> {
    guard let handle = opendir(path) else { return .failure(SystemError("opendir")) }
    defer { closedir(handle) }
    var entries: [(name: String, type: UInt8)] = []
    while true {
        errno = 0
        guard let entry = readdir(handle) else {
            if errno != 0 { return .failure(SystemError("readdir")) }
            return .success(entries)
        }
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != ".", name != ".." { entries.append((name, entry.pointee.d_type)) }
    }
}

/// The names in a folder (`.` and `..` left out; none when it cannot be read).
public func directoryNames(_ path: String) -> [String] {
    (try? directoryEntries(path).get())?.map(\.name) ?? []
}

/// The absolute path of the running executable (`/proc/self/exe`).
public func currentExecutablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
