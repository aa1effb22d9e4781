import Dispatch
import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC
import Synchronization

/// One WebSocket to Chromium's browser endpoint, carrying CDP commands for the browser and,
/// with flattened sessions (`Target.attachToTarget {flatten:true}`), for every tab.
///
/// Calls block the calling thread until the answer or the deadline; one reader thread
/// matches answers to calls by id and hands events to `onEvent`.
///
/// Why a client of its own and not NIOWebSocket, which the NetWorker's gateway link uses: the
/// routes are synchronous. Each runs on the worker's serial route queue and waits for its
/// CDP answers up to its deadline (`BrowserWorkerMain`), so "send, then block until the
/// answer or the timeout" is the whole contract; on NIO each call would be a future that the
/// route immediately waits on. The peer asks for little: plain `ws://` to a numeric IPv4
/// address or `localhost` (`CDPEndpoint`, `BlockingSocket`), no TLS, no extensions, one
/// socket per browser; the framing is `CDPWebSocketFrame`, a plain codec fuzzed as the `cdp`
/// target. The gateway link needs what NIO gives (TLS with a pinned fingerprint, and
/// deadlines, reconnects and a watchdog on the timers of one event loop); this module links
/// only NIOCore and NIOPosix, for its IPC link to the Supervisor.
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
            try writeLock.withLock { _ throws(BrowserError) in try socket.send(CDPWebSocketFrame.encode(text: text)) }
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
        try? writeLock.withLock { _ throws(BrowserError) in try socket.send(CDPWebSocketFrame.encode(text: text)) }
    }

    func close() {
        socket.shutdownBoth()
    }

    private func readLoop(_ initial: [UInt8]) {
        var decoder = CDPWebSocketFrame.Decoder()
        decoder.append(initial)
        loop: while true {
            do {
                while let frame = try decoder.next() {
                    switch frame {
                    case let .text(bytes): dispatch(bytes)
                    case let .ping(payload):
                        try writeLock.withLock { _ throws(BrowserError) in try socket.send(CDPWebSocketFrame.encode(opcode: 0xA, payload: payload)) }
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
        self.init(url: url, schemes: ["ws"])
    }

    init?(httpURL url: String) {
        self.init(url: url, schemes: ["http"])
    }

    /// Chromium's endpoints always name their port.
    private init?(url: String, schemes: [String]) {
        guard let parsed = EndpointURL(url, schemes: schemes), let port = parsed.explicitPort else { return nil }
        host = parsed.host
        self.port = port
        path = parsed.path
    }
}
