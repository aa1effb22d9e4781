import Crypto
import Glibc

/// Lowercase hex of bytes (digests, device ids).
public enum Hex {
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 of a script an approval binds, read so that no path can hang or fool the reader.
///
/// Guarantees of `sha256Hex(regularFile:)`:
/// - The final component is opened with `O_NOFOLLOW` (a symlink is refused, never followed),
///   `O_NONBLOCK` (a FIFO or device put in the file's place cannot block the open) and
///   `O_NOCTTY`; what was opened must be a regular file (`fstat`), or nothing is read.
/// - At most `maxBytes` are read, and reading stops once `timeLimitMs` has passed.
/// Used by the Supervisor (plans) and the ExecWorker (the re-check just before spawn), so both
/// read the file the same way.
public enum FileDigest {
    public static let maxBytes = 64 << 20
    public static let timeLimitMs: UInt64 = 5_000

    public enum Failure: Error, Equatable {
        case missing
        case notRegularFile
        case unreadable
        case tooLarge
        case tooSlow
    }

    public static func sha256Hex(bytes: [UInt8]) -> String {
        Hex.encode(Array(SHA256.hash(data: bytes)))
    }

    public static func sha256Hex(regularFile path: String, maxBytes: Int = maxBytes,
                                 timeLimitMs: UInt64 = timeLimitMs) -> Result<String, Failure> {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(errno == ENOENT || errno == ENOTDIR ? .missing : .unreadable) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(.unreadable) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(.notRegularFile) }
        guard Int(info.st_size) <= maxBytes else { return .failure(.tooLarge) }
        let started = Clock.monotonicMs()
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(.unreadable)
            }
            if count == 0 { break }
            total += count
            guard total <= maxBytes else { return .failure(.tooLarge) }
            guard Clock.monotonicMs() - started <= timeLimitMs else { return .failure(.tooSlow) }
            hasher.update(data: buffer[0..<count])
        }
        return .success(Hex.encode(Array(hasher.finalize())))
    }
}
