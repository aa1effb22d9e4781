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

    /// Whether a service manager listens.
    public static var isEnabled: Bool { socketPath != nil }

    /// Sends `KEY=value` lines (`READY=1`, `STATUS=…`, `STOPPING=1`). Newlines inside a value
    /// are replaced, so a status text cannot add a field.
    @discardableResult
    public static func send(_ fields: [(String, String)]) -> Bool {
        guard let path = socketPath else { return false }
        let text = fields.map { "\($0.0)=\($0.1.replacingNewlines())" }.joined(separator: "\n")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var name = Array(path.utf8)
        if name.first == UInt8(ascii: "@") { name[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard name.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in name.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count + (name.first == 0 ? 0 : 1))
        let sent = text.withCString { pointer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, pointer, strlen(pointer), Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent >= 0
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\n" || $0 == "\r" ? " " : $0 }))
    }
}
