import Dispatch
import FoundationEssentials
import Glibc
import OpenClawIPC
import Synchronization

/// One WebSocket to Chromium's browser endpoint, carrying CDP commands for the browser and,
/// with flattened sessions (`Target.attachToTarget {flatten:true}`), for every tab.
///
/// Calls block the calling thread until the answer or the deadline; one reader thread
/// matches answers to calls by id and hands events to `onEvent`.
final class CDPConnection: @unchecked Sendable {
    typealias Object = [String: JSONValue]

    private final class Pending {
        let semaphore = DispatchSemaphore(value: 0)
        var result: Result<Object, BrowserError>?
    }

    private let socket: BlockingSocket
    private let writeLock = Mutex(())
    private let state = Mutex<(nextId: Int, pending: [Int: Pending], closed: Bool)>((1, [:], false))
    /// Called on the reader thread with `(method, params, sessionId)`.
    var onEvent: @Sendable (String, Object, String?) -> Void = { _, _, _ in }

    /// Opens `ws://host:port/path` (Chromium's `webSocketDebuggerUrl`).
    init(url: String, timeoutMs: Int) throws(BrowserError) {
        guard let parsed = CDPEndpoint(webSocketURL: url) else { throw BrowserError("bad CDP WebSocket URL: \(url)") }
        socket = try BlockingSocket(host: parsed.host, port: parsed.port, timeoutMs: timeoutMs)
        var keyBytes = [UInt8](repeating: 0, count: 16)
        for index in keyBytes.indices { keyBytes[index] = UInt8.random(in: 0...255) }
        let key = Data(keyBytes).base64EncodedString()
        let request = "GET \(parsed.path) HTTP/1.1\r\nHost: \(parsed.host):\(parsed.port)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try socket.send(Array(request.utf8), timeoutMs: timeoutMs)
        let deadline = Deadline(ms: timeoutMs)
        var bytes: [UInt8] = []
        while LoopbackHTTP.headerEnd(bytes) == nil {
            let chunk = try socket.receive(timeoutMs: deadline.remaining)
            if chunk.isEmpty { throw BrowserError("CDP WebSocket closed during the handshake") }
            bytes += chunk
            if bytes.count > 65536 { throw BrowserError("CDP WebSocket handshake too large") }
        }
        let end = LoopbackHTTP.headerEnd(bytes)!
        let statusLine = String(decoding: bytes[0..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
        guard statusLine.split(separator: " ").dropFirst().first == "101" else {
            throw BrowserError("CDP WebSocket handshake refused: \(statusLine)")
        }
        let leftover = Array(bytes[(end + 4)...])
        DispatchQueue(label: "cdp-reader").async { [self] in readLoop(leftover) }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Sends `method` and waits for its answer; a CDP error becomes a `BrowserError`.
    @discardableResult
    func call(_ method: String, _ params: Object = [:], session: String? = nil, timeoutMs: Int) throws(BrowserError) -> Object {
        let pending = Pending()
        let id: Int? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextId
            state.nextId += 1
            state.pending[id] = pending
            return id
        }
        guard let id else { throw BrowserError("browser connection closed", status: 409) }
        var message: Object = ["id": .number(Double(id)), "method": .string(method), "params": .object(params)]
        if let session { message["sessionId"] = .string(session) }
        let text: [UInt8]
        do {
            text = try JSONText.encodeBytes(JSONValue.object(message))
        } catch {
            _ = state.withLock { $0.pending.removeValue(forKey: id) }
            throw BrowserError("cannot encode CDP call \(method)")
        }
        do {
            try writeLock.withLock { _ throws(BrowserError) in try socket.send(WebSocketFrame.encode(text: text)) }
        } catch {
            _ = state.withLock { $0.pending.removeValue(forKey: id) }
            throw error
        }
        if pending.semaphore.wait(timeout: .now() + .milliseconds(max(timeoutMs, 1))) == .timedOut {
            _ = state.withLock { $0.pending.removeValue(forKey: id) }
            throw BrowserError("\(method) timed out after \(timeoutMs)ms", status: 504)
        }
        switch pending.result! {
        case let .success(result): return result
        case let .failure(error): throw error
        }
    }

    /// Sends `method` without waiting for its answer (safe on the reader thread, where `call`
    /// would wait for itself): answering a JavaScript dialog from its event.
    func post(_ method: String, _ params: Object = [:], session: String? = nil) {
        guard let id: Int = state.withLock({ state in
            guard !state.closed else { return nil }
            defer { state.nextId += 1 }
            return state.nextId
        }) else { return }
        var message: Object = ["id": .number(Double(id)), "method": .string(method), "params": .object(params)]
        if let session { message["sessionId"] = .string(session) }
        guard let text = try? JSONText.encodeBytes(JSONValue.object(message)) else { return }
        try? writeLock.withLock { _ throws(BrowserError) in try socket.send(WebSocketFrame.encode(text: text)) }
    }

    func close() {
        socket.shutdownBoth()
    }

    private func readLoop(_ initial: [UInt8]) {
        var decoder = WebSocketFrame.Decoder()
        decoder.append(initial)
        loop: while true {
            do {
                while let frame = try decoder.next() {
                    switch frame {
                    case let .text(bytes): dispatch(bytes)
                    case let .ping(payload):
                        try writeLock.withLock { _ throws(BrowserError) in try socket.send(WebSocketFrame.encode(opcode: 0xA, payload: payload)) }
                    case .close: break loop
                    }
                }
                let chunk = try socket.receive(max: 1 << 20, timeoutMs: -1)
                if chunk.isEmpty { break }
                decoder.append(chunk)
            } catch {
                break
            }
        }
        let pending = state.withLock { state -> [Pending] in
            state.closed = true
            defer { state.pending = [:] }
            return Array(state.pending.values)
        }
        for entry in pending {
            entry.result = .failure(BrowserError("browser connection closed", status: 409))
            entry.semaphore.signal()
        }
    }

    private func dispatch(_ bytes: [UInt8]) {
        guard case let .object(message)? = try? JSONText.decode(JSONValue.self, fromBytes: bytes) else { return }
        if let id = message["id"]?.intValue {
            guard let pending = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
            if case let .object(error)? = message["error"] {
                let text = error["message"]?.stringValue ?? "CDP error"
                pending.result = .failure(BrowserError(text))
            } else {
                pending.result = .success(message["result"]?.objectValue ?? [:])
            }
            pending.semaphore.signal()
        } else if let method = message["method"]?.stringValue {
            onEvent(method, message["params"]?.objectValue ?? [:], message["sessionId"]?.stringValue)
        }
    }
}

/// `ws://host:port/path` or `http://host:port` split into parts.
struct CDPEndpoint: Equatable {
    var host: String
    var port: Int
    var path: String

    init?(webSocketURL url: String) {
        self.init(url: url, schemes: ["ws://"])
    }

    init?(httpURL url: String) {
        self.init(url: url, schemes: ["http://"])
    }

    private init?(url: String, schemes: [String]) {
        guard let scheme = schemes.first(where: { url.hasPrefix($0) }) else { return nil }
        let rest = url.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" }
        path = rest.count > authority.count ? String(rest.dropFirst(authority.count)) : "/"
        let parts = authority.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        host = String(parts[0])
        self.port = port
    }
}

/// RFC 6455 framing for a client: masked text frames out; text, ping and close in.
enum WebSocketFrame {
    enum Inbound {
        case text([UInt8])
        case ping([UInt8])
        case close
    }

    static func encode(text: [UInt8]) -> [UInt8] { encode(opcode: 0x1, payload: text) }

    static func encode(opcode: UInt8, payload: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [0x80 | opcode]
        let count = payload.count
        if count < 126 {
            frame.append(0x80 | UInt8(count))
        } else if count <= 0xFFFF {
            frame += [0x80 | 126, UInt8(count >> 8), UInt8(count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((UInt64(count) >> UInt64(shift)) & 0xFF)) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame.reserveCapacity(frame.count + count)
        for (index, byte) in payload.enumerated() { frame.append(byte ^ mask[index & 3]) }
        return frame
    }

    /// Incremental decoder; continuation frames are joined into one message.
    struct Decoder {
        private var buffer: [UInt8] = []
        private var start = 0
        private var fragments: [UInt8] = []
        private var fragmentedText = false
        /// Largest message accepted (Chromium's screenshots and PDFs are base64 in one message).
        static let maxMessage = 96 << 20

        mutating func append(_ bytes: [UInt8]) {
            if start > 0, start == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                start = 0
            }
            buffer += bytes
        }

        mutating func next() throws(BrowserError) -> Inbound? {
            while true {
                let available = buffer.count - start
                guard available >= 2 else { return nil }
                let first = buffer[start], second = buffer[start + 1]
                var length = Int(second & 0x7F)
                var offset = 2
                if length == 126 {
                    guard available >= 4 else { return nil }
                    length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
                    offset = 4
                } else if length == 127 {
                    guard available >= 10 else { return nil }
                    var value: UInt64 = 0
                    for index in 2..<10 { value = value << 8 | UInt64(buffer[start + index]) }
                    guard value <= UInt64(Self.maxMessage) else { throw BrowserError("CDP message too large") }
                    length = Int(value)
                    offset = 10
                }
                let masked = second & 0x80 != 0
                let maskOffset = offset
                if masked { offset += 4 }
                guard available >= offset + length else { return nil }
                var payload = Array(buffer[(start + offset)..<(start + offset + length)])
                if masked {
                    for index in payload.indices { payload[index] ^= buffer[start + maskOffset + (index & 3)] }
                }
                start += offset + length
                if start > (1 << 20), start * 2 > buffer.count {
                    buffer.removeFirst(start)
                    start = 0
                }
                let fin = first & 0x80 != 0
                switch first & 0x0F {
                case 0x0:
                    fragments += payload
                    guard fragments.count <= Self.maxMessage else { throw BrowserError("CDP message too large") }
                    if fin, fragmentedText {
                        defer { fragments = []; fragmentedText = false }
                        return .text(fragments)
                    }
                case 0x1:
                    if fin { return .text(payload) }
                    fragments = payload
                    fragmentedText = true
                case 0x8: return .close
                case 0x9: return .ping(payload)
                default: continue
                }
            }
        }
    }
}
