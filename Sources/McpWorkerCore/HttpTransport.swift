import Dispatch
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NodeSupport
import OpenClawIPC

/// A Streamable HTTP MCP server (the spec's transport, as upstream's SDK client speaks it):
/// each message is a POST of JSON to the endpoint, answered with JSON, a server-sent event
/// stream, or 202; the session id from `initialize` and the negotiated protocol version go
/// on every later request; one GET stream carries what the server sends on its own
/// (`tools/list_changed`). A 404 while a session exists means it expired: the request fails
/// and the session ends (the runner withdraws the tools and reconnects, the call is not
/// replayed). Leaving deletes the session, as the SDK does.
final class StreamableHTTPTransport: McpTransport {
    /// Below the IPC frame (25 MiB), as the stdio line limit.
    static let maxResponseBytes = 24 * 1024 * 1024

    let server: McpServerConfig
    let queue: DispatchQueue
    let logger: Logger
    let group: EventLoopGroup
    var onMessage: (JSONValue) -> Void = { _ in }
    var onClose: (String) -> Void = { _ in }
    var onRequestFailed: (JSONValue, String) -> Void = { _, _ in }
    private var target: EndpointURL?
    private var tls: NIOSSLContext?
    private var sessionId: String?
    private var protocolVersion: String?
    private var closed = false
    private var listening = false
    /// Open exchanges (touched on `queue` only): closed with the session.
    private var channels: [ObjectIdentifier: Channel] = [:]

    init(server: McpServerConfig, queue: DispatchQueue, group: EventLoopGroup, logger: Logger) {
        self.server = server
        self.queue = queue
        self.group = group
        self.logger = logger
    }

    func start() throws(McpTransportError) {
        guard let url = server.url, let parsed = EndpointURL(url, schemes: ["https", "http"]) else {
            throw McpTransportError(message: "its url is not a valid URL")
        }
        target = parsed
        if parsed.scheme == "https" {
            do {
                var configuration = TLSConfiguration.makeClientConfiguration()
                configuration.minimumTLSVersion = .tlsv12
                if server.sslVerify == false { configuration.certificateVerification = .none }
                if let certificate = server.clientCertificatePEM, let key = server.clientKeyPEM {
                    configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) }
                    configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
                }
                tls = try NIOSSLContext(configuration: configuration)
            } catch {
                throw McpTransportError(message: "TLS setup failed: \(error)")
            }
        }
    }

    func send(_ message: JSONValue) {
        guard !closed, let text = try? JSONText.encode(message) else { return }
        let requestId = message["method"] != nil ? message["id"] : nil
        let isInitialize = message["method"]?.stringValue == "initialize"
        exchange(method: .POST, body: Array(text.utf8)) { [weak self] event in
            guard let self, !self.closed else { return false }
            switch event {
            case let .head(status, headers):
                if isInitialize, let session = headers.first(name: "mcp-session-id") { self.sessionId = session }
                if status == 404, self.sessionId != nil, !isInitialize {
                    self.fail(requestId, "Streamable HTTP error: Error POSTing to endpoint: [redacted response body]")
                    self.end("session expired")
                    return false
                }
                if !(200..<300).contains(status) {
                    self.fail(requestId, "Streamable HTTP error: Error POSTing to endpoint: [redacted response body]")
                    return false
                }
                return true
            case let .message(value):
                if isInitialize, let version = value["result"]?["protocolVersion"]?.stringValue { self.protocolVersion = version }
                self.onMessage(value)
                return true
            case let .failed(reason):
                self.fail(requestId, "Streamable HTTP error: \(reason)")
                return false
            case .finished:
                if message["method"]?.stringValue == "notifications/initialized" { self.listen() }
                return false
            }
        }
    }

    /// The GET stream for what the server sends unasked; a server without one answers 405.
    /// A stream that was open and ended (a proxy's idle timeout) is opened again after 1 s.
    private func listen() {
        guard !listening, !closed else { return }
        listening = true
        var opened = false
        exchange(method: .GET, body: nil) { [weak self] event in
            guard let self, !self.closed else { return false }
            switch event {
            case let .head(status, _):
                if status == 404, self.sessionId != nil { self.end("session expired") }
                opened = (200..<300).contains(status)
                return opened
            case let .message(value):
                self.onMessage(value)
                return true
            case .failed, .finished:
                if opened {
                    self.listening = false
                    self.queue.asyncAfter(deadline: .now() + 1) { [weak self] in self?.listen() }
                }
                return false
            }
        }
    }

    /// Ends the session (DELETE when the server gave one); nothing more is delivered.
    func close() {
        guard !closed else { return }
        closed = true
        closeChannels()
        if sessionId != nil { exchange(method: .DELETE, body: nil, force: true) { _ in false } }
    }

    private func end(_ reason: String) {
        guard !closed else { return }
        closed = true
        closeChannels()
        onClose(reason)
    }

    private func closeChannels() {
        for channel in channels.values { channel.close(promise: nil) }
        channels = [:]
    }

    private func fail(_ requestId: JSONValue?, _ message: String) {
        guard let requestId else { return }
        onRequestFailed(requestId, message)
    }

    enum Event {
        case head(Int, HTTPHeaders)
        case message(JSONValue)
        case failed(String)
        case finished
    }

    /// One HTTP exchange; `handle` runs on the transport's queue and says whether to go on.
    private func exchange(method: HTTPMethod, body: [UInt8]?, force: Bool = false, handle: @escaping (Event) -> Bool) {
        guard let target, !closed || force else { return }
        var headers = HTTPHeaders()
        let name = target.host.contains(":") ? "[\(target.host)]" : target.host
        headers.add(name: "Host", value: target.explicitPort.map { "\(name):\($0)" } ?? name)
        for (key, value) in server.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: key, value: value) }
        headers.replaceOrAdd(name: "Accept", value: method == .GET ? "text/event-stream" : "application/json, text/event-stream")
        if let body {
            headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        }
        if let sessionId { headers.replaceOrAdd(name: "mcp-session-id", value: sessionId) }
        if let protocolVersion { headers.replaceOrAdd(name: "mcp-protocol-version", value: protocolVersion) }
        let queue = self.queue
        // Read and written on the transport's queue only.
        final class Going: @unchecked Sendable { var value = true }
        let going = Going()
        let deliver: (Event) -> Void = { event in
            queue.async { if going.value { going.value = handle(event) } }
        }
        let port = target.explicitPort ?? (target.scheme == "https" ? 443 : 80)
        let tls = self.tls
        let host = target.host
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(Int64(server.connectionTimeoutMs)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let sni = host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: sni))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseReader(deliver: deliver))
                }
            }
        // No exchange outlives its longest possible answer (a GET stream lives with the session).
        let lifetime = TimeAmount.milliseconds(Int64(max(server.requestTimeoutMs, 120_000) + server.connectionTimeoutMs))
        bootstrap.connect(host: host, port: port).whenComplete { [weak self] result in
            switch result {
            case let .failure(error):
                deliver(.failed("\(error)"))
                deliver(.finished)
            case let .success(channel):
                let key = ObjectIdentifier(channel)
                queue.async {
                    guard let self, !self.closed || force else { return channel.close(promise: nil) }
                    self.channels[key] = channel
                }
                channel.closeFuture.whenComplete { _ in queue.async { self?.channels[key] = nil } }
                if method != .GET { channel.eventLoop.scheduleTask(in: lifetime) { channel.close(promise: nil) } }
                channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: target.path, headers: headers)),
                              promise: nil)
                if let body {
                    var buffer = channel.allocator.buffer(capacity: body.count)
                    buffer.writeBytes(body)
                    channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
                }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
    }

    /// Reads one response: its head, then JSON-RPC messages from a JSON body or from the
    /// `data:` lines of an event stream, as they arrive.
    private final class ResponseReader: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let deliver: (Event) -> Void
        var stream = false
        var body: [UInt8] = []
        var event: [String] = []
        var line: [UInt8] = []
        var done = false

        init(deliver: @escaping (Event) -> Void) { self.deliver = deliver }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case let .head(head):
                stream = (head.headers.first(name: "Content-Type") ?? "").lowercased().hasPrefix("text/event-stream")
                deliver(.head(Int(head.status.code), head.headers))
            case var .body(buffer):
                let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
                if stream {
                    for byte in bytes { feed(byte) }
                } else {
                    body += bytes
                }
                if body.count + line.count + event.reduce(0, { $0 + $1.utf8.count }) > StreamableHTTPTransport.maxResponseBytes {
                    finish(.failed("response exceeded \(StreamableHTTPTransport.maxResponseBytes) bytes"), context)
                }
            case .end:
                if !stream, !body.isEmpty { messages(from: String(decoding: body, as: UTF8.self)) }
                finish(.finished, context)
            }
        }

        /// SSE: lines; `data:` lines of one event joined; a blank line ends the event.
        private func feed(_ byte: UInt8) {
            guard byte == 10 else { line.append(byte); return }
            var text = String(decoding: line, as: UTF8.self)
            line.removeAll(keepingCapacity: true)
            if text.hasSuffix("\r") { text.removeLast() }
            if text.isEmpty {
                if !event.isEmpty { messages(from: event.joined(separator: "\n")) }
                event.removeAll()
            } else if text.hasPrefix("data:") {
                event.append(String(text.dropFirst(5).drop { $0 == " " }))
            }
        }

        private func messages(from text: String) {
            guard let value = try? JSONText.decode(JSONValue.self, from: text) else { return }
            if case let .array(batch) = value {
                for message in batch { deliver(.message(message)) }
            } else {
                deliver(.message(value))
            }
        }

        private func finish(_ event: Event, _ context: ChannelHandlerContext) {
            guard !done else { return }
            done = true
            deliver(event)
            context.close(promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            finish(.failed("\(error)"), context)
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !done {
                done = true
                deliver(.finished)
            }
        }
    }
}
