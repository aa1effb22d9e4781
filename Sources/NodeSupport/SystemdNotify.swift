import Glibc

/// `sd_notify(3)` without libsystemd: one datagram to `$NOTIFY_SOCKET` (a path, or an abstract
/// name when it starts with `@`). A no-op when the variable is unset, i.e. when not started by
/// a `Type=notify` unit. The variable is read once and removed, so no child inherits it.
public enum SystemdNotify {
    nonisolated(unsafe) private static var socketPath: String? = {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !value.isEmpty else { return nil }
        unsetenv("NOTIFY_SOCKET")
        return value
    }()

    /// Reads and hides `$NOTIFY_SOCKET`; call before starting any other process.
    public static func adopt() { _ = socketPath }

    /// Sends `KEY=value` lines (`READY=1`, `STATUS=…`, `STOPPING=1`). Newlines inside a value
    /// are replaced, so a status text cannot add a field.
    @discardableResult
    public static func send(_ fields: [(String, String)]) -> Bool {
        guard let address = socketPath.flatMap(UnixSocketAddress.init(path:)) else { return false }
        let text = fields.map { "\($0.0)=\($0.1.replacingNewlines())" }.joined(separator: "\n")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = text.withCString { pointer in
            address.withSockaddr { sendto(fd, pointer, strlen(pointer), Int32(MSG_NOSIGNAL), $0, $1) }
        }
        return sent >= 0
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\n" || $0 == "\r" ? " " : $0 }))
    }
}
