import Glibc

/// A `sockaddr_un` for a socket path, or for an abstract name when the path starts with `@`
/// (as `$NOTIFY_SOCKET` may). Nil when the path does not fit.
public struct UnixSocketAddress {
    private var address = sockaddr_un()
    private let length: socklen_t

    public init?(path: String) {
        var name = Array(path.utf8)
        let abstract = name.first == UInt8(ascii: "@")
        if abstract { name[0] = 0 }
        guard !name.isEmpty, name.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in name.enumerated() { raw[index] = byte }
        }
        // An abstract name is exactly its bytes; a path ends at its NUL.
        length = socklen_t(MemoryLayout<sa_family_t>.size + name.count + (abstract ? 0 : 1))
    }

    /// Calls `body` with the address as the socket calls take it.
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafePointer(to: address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
