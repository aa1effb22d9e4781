import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC

/// A route failure: its status and the `{"error": …}` body (plus `code`/`reason`/`details`).
/// Also every failure talking to Chromium (connect, HTTP, WebSocket, CDP error, timeout).
public struct BrowserError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The route status this failure maps to.
    public var status: Int
    /// Extra body keys (`code` of `/act` errors, `reason` and `details`).
    public var extra: [String: JSONValue]

    public init(_ message: String, status: Int = 500, extra: [String: JSONValue] = [:]) {
        self.message = message
        self.status = status
        self.extra = extra
    }

    public var description: String { message }

    public var body: JSONValue {
        .object(extra.merging(["error": .string(message)]) { _, new in new })
    }
}

/// A blocking TCP socket with deadlines, for Chromium's DevTools endpoint.
final class BlockingSocket {
    let fd: Int32

    /// Connects to `host:port` (numeric IPv4 or `localhost`) within `timeoutMs`.
    init(host: String, port: Int, timeoutMs: Int) throws(BrowserError) {
        let numeric = host == "localhost" ? "127.0.0.1" : host
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port)).bigEndian
        guard inet_pton(AF_INET, numeric, &address.sin_addr) == 1 else {
            throw BrowserError("CDP host must be a numeric IPv4 address or localhost: \(host)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw BrowserError("socket: \(SystemError.text(errno))") }
        self.fd = fd
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            guard errno == EINPROGRESS else {
                let text = SystemError.text(errno)
                close(fd)
                throw BrowserError("connect \(host):\(port): \(text)")
            }
            guard Self.wait(fd, events: Int16(POLLOUT), timeoutMs: timeoutMs) else {
                close(fd)
                throw BrowserError("connect \(host):\(port): timed out")
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                close(fd)
                throw BrowserError("connect \(host):\(port): \(SystemError.text(error))")
            }
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    static func wait(_ fd: Int32, events: Int16, timeoutMs: Int) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let result = poll(&entry, 1, Int32(clamping: max(timeoutMs, 0)))
            if result < 0, errno == EINTR { continue }
            return result > 0
        }
    }

    func send(_ bytes: [UInt8], timeoutMs: Int = 10_000) throws(BrowserError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 { offset += count; continue }
            if count < 0, errno == EAGAIN || errno == EINTR {
                guard Self.wait(fd, events: Int16(POLLOUT), timeoutMs: timeoutMs) else { throw BrowserError("CDP write timed out") }
                continue
            }
            throw BrowserError("CDP write failed: \(SystemError.text(errno))")
        }
    }

    /// Reads what is available (blocking up to `timeoutMs`; -1 waits forever). Empty = closed.
    func receive(max: Int = 65536, timeoutMs: Int) throws(BrowserError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count >= 0 { return Array(buffer[0..<count]) }
            if errno == EAGAIN || errno == EINTR {
                if timeoutMs < 0 {
                    _ = Self.wait(fd, events: Int16(POLLIN), timeoutMs: 60_000)
                    continue
                }
                guard Self.wait(fd, events: Int16(POLLIN), timeoutMs: timeoutMs) else { throw BrowserError("CDP read timed out") }
                continue
            }
            throw BrowserError("CDP read failed: \(SystemError.text(errno))")
        }
    }

    func shutdownBoth() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
}

/// Chromium's DevTools HTTP endpoints (`/json/version`, `/json/list`): tiny HTTP/1.1 GETs.
enum LoopbackHTTP {
    struct Response {
        var status: Int
        var body: [UInt8]
    }

    static func get(host: String, port: Int, path: String, timeoutMs: Int) throws(BrowserError) -> Response {
        let deadline = Deadline(ms: timeoutMs)
        let socket = try BlockingSocket(host: host, port: port, timeoutMs: timeoutMs)
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
        try socket.send(Array(request.utf8), timeoutMs: deadline.remaining)
        var bytes: [UInt8] = []
        while true {
            let chunk = try socket.receive(timeoutMs: deadline.remaining)
            if chunk.isEmpty { break }
            bytes += chunk
            if bytes.count > 8 << 20 { throw BrowserError("CDP HTTP answer too large") }
            if let response = parse(bytes, complete: false) { return response }
        }
        guard let response = parse(bytes, complete: true) else { throw BrowserError("CDP HTTP answer malformed") }
        return response
    }

    /// Parses a response once its body is complete (Content-Length or connection close).
    static func parse(_ bytes: [UInt8], complete: Bool) -> Response? {
        guard let end = headerEnd(bytes) else { return nil }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        let body = Array(bytes[(end + 4)...])
        var length: Int?
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                length = Int(parts[1].trimmed())
            }
        }
        if let length {
            guard body.count >= length else { return nil }
            return Response(status: status, body: Array(body.prefix(length)))
        }
        return complete ? Response(status: status, body: body) : nil
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10
            && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }
}

/// A point in time `ms` milliseconds from now.
struct Deadline {
    let end: UInt64

    init(ms: Int) { end = Clock.monotonicMs() + UInt64(max(ms, 0)) }

    var remaining: Int {
        let now = Clock.monotonicMs()
        return Int(end > now ? end - now : 0)
    }
    var expired: Bool { remaining == 0 }
}

extension StringProtocol {
    /// Without leading and trailing whitespace (route bodies are parsed leniently, `browser.md` §2).
    func trimmed() -> String {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        return String(String(drop(while: isSpace).reversed()).drop(while: isSpace).reversed())
    }
}
