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
        "\(call): \(Self.text(errno)) (\(code))"
    }

    /// The C library's text for `errno` (`No such file or directory`).
    public static func text(_ errno: Int32) -> String { String(cString: strerror(errno)) }

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
