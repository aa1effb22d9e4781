import Dispatch
import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// One configured MCP server, kept connected (upstream's node MCP manager): connect,
/// `initialize`, list its tools (paginated, bounded, under one deadline), report them; on
/// `notifications/tools/list_changed` list again (coalesced); when the session ends, withdraw
/// its tools and reconnect after 250 ms, doubling to 60 s (reset by a good connect).
/// Everything runs on `queue`.
final class McpServerRunner {
    static let protocolVersion = "2025-11-25"
    static let supportedVersions: Set<String> = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2024-10-07"]
    static let retryInitialMs = 250
    static let retryMaxMs = 60_000
    static let maxListPages = 128
    static let maxListingBytes = 10 * 1024 * 1024

    let server: McpServerConfig
    let clientVersion: String
    /// The HTTP transports' event loop.
    let group: EventLoopGroup
    let queue: DispatchQueue
    let logger: Logger
    /// Tells the Supervisor the server's state and tools.
    let report: (McpServerTools) -> Void
    /// Answers a call.
    let answer: (McpCallResult) -> Void

    private var transport: McpTransport?
    private var generation = 0
    private var connected = false
    private var everConnected = false
    private var nextRequestId = 1
    private var pending: [Int: Pending] = [:]
    /// Calls in flight: call id → JSON-RPC request id.
    private var calls: [String: Int] = [:]
    private var retryMs = McpServerRunner.retryInitialMs
    private var retryTask: DispatchWorkItem?
    private var refreshing = false
    private var refreshQueued = false
    private var stopped = false

    private struct Pending {
        var timer: DispatchWorkItem?
        var completion: (Result<JSONValue, McpFailure>) -> Void
    }

    /// Why a request did not get a result.
    enum McpFailure: Error, Equatable {
        /// The server answered with a JSON-RPC error.
        case rpc(code: Int, message: String)
        /// The request failed on its way (an HTTP exchange); the text as the transport wrote it.
        case transport(String)
        case timeout
        case closed(String)
    }

    init(server: McpServerConfig, clientVersion: String, queue: DispatchQueue, group: EventLoopGroup,
         logger: Logger, report: @escaping (McpServerTools) -> Void, answer: @escaping (McpCallResult) -> Void) {
        self.group = group
        self.server = server
        self.clientVersion = clientVersion
        self.queue = queue
        self.logger = logger
        self.report = report
        self.answer = answer
    }

    // MARK: Connection

    func connect() {
        guard !stopped else { return }
        generation += 1
        let generation = self.generation
        let transport: McpTransport = server.command != nil
            ? StdioTransport(server: server, queue: queue, logger: logger)
            : StreamableHTTPTransport(server: server, queue: queue, group: group, logger: logger)
        transport.onMessage = { [weak self] message in
            guard let self, self.generation == generation else { return }
            self.received(message)
        }
        transport.onClose = { [weak self] reason in
            guard let self, self.generation == generation else { return }
            self.sessionEnded(reason)
        }
        transport.onRequestFailed = { [weak self] id, text in
            guard let self, self.generation == generation, let number = id.intValue,
                  let entry = self.pending.removeValue(forKey: number) else { return }
            entry.timer?.cancel()
            entry.completion(.failure(.transport(text)))
        }
        self.transport = transport
        do {
            try transport.start()
        } catch {
            return failed(error.message)
        }
        request("initialize", .object([
            "protocolVersion": .string(Self.protocolVersion),
            "capabilities": .object([:]),
            "clientInfo": .object(["name": .string("openclaw-node-host"), "version": .string(clientVersion)]),
        ]), timeoutMs: server.connectionTimeoutMs) { [weak self] result in
            guard let self, self.generation == generation else { return }
            switch result {
            case .failure(.timeout):
                self.failed("MCP server connection timed out after \(self.server.connectionTimeoutMs)ms")
            case let .failure(failure): self.failed(Self.describe(failure))
            case let .success(answer):
                guard let version = answer["protocolVersion"]?.stringValue, Self.supportedVersions.contains(version) else {
                    return self.failed("Server's protocol version is not supported: \(answer["protocolVersion"]?.stringValue ?? "none")")
                }
                self.notify("notifications/initialized", nil)
                self.listTools(generation: generation)
            }
        }
    }

    func stop() {
        stopped = true
        retryTask?.cancel()
        close(reason: "node host is shutting down")
    }

    private func close(reason: String) {
        generation += 1
        transport?.close()
        transport = nil
        connected = false
        let waiting = pending
        pending = [:]
        for (_, entry) in waiting {
            entry.timer?.cancel()
            entry.completion(.failure(.closed(reason)))
        }
    }

    private func sessionEnded(_ reason: String) {
        let wasConnected = connected
        close(reason: reason)
        if wasConnected {
            // upstream logs nothing here; the withdrawal is a debug line.
            withdraw()
            logger.debug("node host MCP server session ended; tools withdrawn",
                         metadata: ["server": "\(server.name)", "reason": "\(SecretRedaction.mcpError(reason))"])
        }
        scheduleRetry(after: reason)
    }

    /// A connect that did not complete: the session is closed, its tools withdrawn, a retry armed.
    private func failed(_ reason: String) {
        close(reason: reason)
        let message = SecretRedaction.mcpError(reason)
        if everConnected {
            logger.warning("node host MCP server \"\(server.name)\" reconnect failed: \(message)")
        } else {
            logger.warning("node host MCP server \"\(server.name)\" failed: \(message)")
        }
        withdraw()
        scheduleRetry(after: reason)
    }

    private func withdraw() { report(McpServerTools(server: server.name, connected: false, tools: [])) }

    private func scheduleRetry(after reason: String) {
        guard !stopped else { return }
        retryTask?.cancel()
        let delay = retryMs
        retryMs = min(retryMs * 2, Self.retryMaxMs)
        let task = DispatchWorkItem { [weak self] in self?.connect() }
        retryTask = task
        queue.asyncAfter(deadline: .now() + .milliseconds(delay), execute: task)
    }

    // MARK: Tools

    private func listTools(generation: Int) {
        var tools: [McpTool] = []
        var seenCursors: Set<String> = []
        var pages = 0
        var bytes = 0
        let deadline = DispatchTime.now() + .milliseconds(server.requestTimeoutMs)
        func page(_ cursor: String?) {
            let remaining = Int((deadline.uptimeNanoseconds > DispatchTime.now().uptimeNanoseconds
                ? deadline.uptimeNanoseconds - DispatchTime.now().uptimeNanoseconds : 0) / 1_000_000)
            guard remaining > 0 else { return listingFailed("MCP tool listing timed out after \(server.requestTimeoutMs)ms", generation) }
            request("tools/list", cursor.map { .object(["cursor": .string($0)]) } ?? .object([:]), timeoutMs: remaining) { [weak self] result in
                guard let self, self.generation == generation else { return }
                switch result {
                case .failure(.timeout): return self.listingFailed("MCP tool listing timed out after \(self.server.requestTimeoutMs)ms", generation)
                case let .failure(failure): return self.listingFailed(Self.describe(failure), generation)
                case let .success(answer):
                    pages += 1
                    bytes += (try? JSONText.encode(answer))?.utf8.count ?? 0
                    for entry in answer["tools"]?.arrayValue ?? [] {
                        guard let name = entry["name"]?.stringValue else { continue }
                        tools.append(McpTool(name: name, description: entry["description"]?.stringValue, inputSchema: entry["inputSchema"],
                                             taskRequired: entry["execution"]?["taskSupport"]?.stringValue == "required"))
                    }
                    if bytes > Self.maxListingBytes { return self.listingFailed("MCP tool listing exceeded \(Self.maxListingBytes) bytes", generation) }
                    if tools.count > McpServerTools.maxTools { return self.listingFailed("MCP tool listing exceeded \(McpServerTools.maxTools) tools", generation) }
                    if let next = answer["nextCursor"]?.stringValue {
                        guard seenCursors.insert(next).inserted else {
                            return self.listingFailed("MCP tool listing returned a repeated pagination cursor", generation)
                        }
                        if pages >= Self.maxListPages { return self.listingFailed("MCP tool listing exceeded \(Self.maxListPages) pages", generation) }
                        return page(next)
                    }
                    self.listed(tools)
                }
            }
        }
        page(nil)
    }

    private func listed(_ tools: [McpTool]) {
        let first = !connected
        connected = true
        everConnected = true
        retryMs = Self.retryInitialMs
        refreshing = false
        report(McpServerTools(server: server.name, connected: true, tools: tools))
        if first { logger.info("node host MCP server connected", metadata: ["server": "\(server.name)", "tools": .typed(tools.count)]) }
        if refreshQueued {
            refreshQueued = false
            refresh()
        }
    }

    private func listingFailed(_ reason: String, _ generation: Int) {
        guard self.generation == generation else { return }
        refreshing = false
        refreshQueued = false
        if connected {
            logger.warning("node host MCP server \"\(server.name)\" tool refresh failed: \(SecretRedaction.mcpError(reason))")
            close(reason: reason)
            withdraw()
            scheduleRetry(after: reason)
        } else {
            failed(reason)
        }
    }

    /// `notifications/tools/list_changed`: one listing at a time, at most one more queued (also
    /// behind the first listing of a session).
    private func refresh() {
        guard connected else {
            if transport != nil { refreshQueued = true }
            return
        }
        guard !refreshing else { refreshQueued = true; return }
        refreshing = true
        listTools(generation: generation)
    }

    // MARK: Calls

    func call(_ call: McpCall) {
        guard connected, transport != nil else {
            return answer(McpCallResult(id: call.id, error: WireError(code: "MCP_SERVER_UNAVAILABLE",
                                                                      message: "MCP server \"\(server.name)\" is unavailable")))
        }
        let requestId = request("tools/call", .object(["name": .string(call.tool), "arguments": call.arguments]),
                                timeoutMs: call.timeoutMs) { [weak self] result in
            guard let self, self.calls.removeValue(forKey: call.id) != nil else { return }
            switch result {
            case let .success(value):
                // upstream's bounds here already: what crosses to the Supervisor fits one frame.
                self.answer(McpCallResult(id: call.id, result: McpResultShaping.payload(value)))
            case .failure(.timeout):
                self.answer(McpCallResult(id: call.id, error: WireError(code: "MCP_TOOL_TIMEOUT",
                                                                        message: "MCP error -32001: Request timed out")))
            case .failure(.closed):
                self.answer(McpCallResult(id: call.id, error: WireError(code: "MCP_SERVER_UNAVAILABLE",
                                                                        message: "MCP server \"\(self.server.name)\" disconnected")))
            case let .failure(failure):
                // Redacted and cut by the Supervisor, which answers the gateway; bounded here for the frame.
                self.answer(McpCallResult(id: call.id, error: WireError(code: "MCP_TOOL_ERROR",
                                                                        message: truncateUTF16(Self.describe(failure), 16 * 1024))))
            }
        }
        calls[call.id] = requestId
    }

    /// The gateway cancelled it: the server is told (`notifications/cancelled`), and nothing is
    /// answered (the Supervisor already dropped it).
    func cancel(_ id: String) {
        guard let requestId = calls.removeValue(forKey: id) else { return }
        if let entry = pending.removeValue(forKey: requestId) { entry.timer?.cancel() }
        notify("notifications/cancelled", .object(["requestId": .number(Double(requestId)), "reason": .string("cancelled by the gateway")]))
    }

    // MARK: JSON-RPC

    @discardableResult
    private func request(_ method: String, _ params: JSONValue?, timeoutMs: Int,
                         completion: @escaping (Result<JSONValue, McpFailure>) -> Void) -> Int {
        let id = nextRequestId
        nextRequestId += 1
        var message: [String: JSONValue] = ["jsonrpc": .string("2.0"), "id": .number(Double(id)), "method": .string(method)]
        if let params { message["params"] = params }
        let timer = DispatchWorkItem { [weak self] in
            guard let self, let entry = self.pending.removeValue(forKey: id) else { return }
            if method == "tools/call" {
                self.notify("notifications/cancelled", .object(["requestId": .number(Double(id)), "reason": .string("timed out")]))
            }
            entry.completion(.failure(.timeout))
        }
        pending[id] = Pending(timer: timer, completion: completion)
        queue.asyncAfter(deadline: .now() + .milliseconds(max(1, timeoutMs)), execute: timer)
        transport?.send(.object(message))
        return id
    }

    private func notify(_ method: String, _ params: JSONValue?) {
        var message: [String: JSONValue] = ["jsonrpc": .string("2.0"), "method": .string(method)]
        if let params { message["params"] = params }
        transport?.send(.object(message))
    }

    private func received(_ message: JSONValue) {
        let method = message["method"]?.stringValue
        if let method {
            if let id = message["id"], id != .null {
                // A request from the server: ping is answered, anything else is not offered.
                if method == "ping" {
                    transport?.send(.object(["jsonrpc": .string("2.0"), "id": id, "result": .object([:])]))
                } else {
                    transport?.send(.object(["jsonrpc": .string("2.0"), "id": id,
                                             "error": .object(["code": .number(-32601), "message": .string("Method not found")])]))
                }
            } else if method == "notifications/tools/list_changed" {
                refresh()
            }
            return
        }
        guard let number = message["id"]?.intValue, let entry = pending.removeValue(forKey: number) else { return }
        entry.timer?.cancel()
        if let error = message["error"] {
            entry.completion(.failure(.rpc(code: error["code"]?.intValue ?? 0, message: error["message"]?.stringValue ?? "unknown error")))
        } else {
            entry.completion(.success(message["result"] ?? .object([:])))
        }
    }

    // MARK: Messages

    static func describe(_ failure: McpFailure) -> String {
        switch failure {
        case let .transport(text): return text
        case let .rpc(code, message): return "MCP error \(code): \(message)"
        case .timeout: return "MCP error -32001: Request timed out"
        case let .closed(reason): return "Connection closed: \(reason)"
        }
    }


}
