import OpenClawIPC

/// `mcp.tools.call.v1 {server, tool, arguments?}` (upstream's `handleMcpToolsCall`):
/// advertised with cap `mcp` even when no server is configured, so adding servers later needs
/// no re-pairing. Only a tool of the published catalogue is called; the result travels as the
/// structured `payload`, bounded as upstream bounds it.
public final class McpToolsHandler: CommandHandler {
    public static let wireCommands = [McpCatalog.command]
    static let defaultTimeoutMs = 120_000

    let runner: McpRunner?
    /// Per server: the call cap (`requestTimeoutMs` when configured, else 120 000 ms).
    let callCaps: [String: Int]

    public init(runner: McpRunner?, callCaps: [String: Int]) {
        self.runner = runner
        self.callCaps = callCaps
    }

    public func handle(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        func fail(_ code: String, _ message: String) {
            completion(InvokeOutput(result: .failure(request, code: code, message: message)))
        }
        let call: (server: String, tool: String, arguments: JSONValue)
        switch Self.decode(request.paramsJSON) {
        case let .failure(error): return fail(error.code, error.message)
        case let .success(decoded): call = decoded
        }
        guard let runner, runner.isConnected(call.server) else {
            return fail("MCP_SERVER_UNAVAILABLE", "MCP server \"\(call.server)\" is unavailable")
        }
        guard runner.descriptors.contains(where: { $0.server == call.server && $0.tool == call.tool }) else {
            return fail("MCP_TOOL_UNAVAILABLE", "MCP tool \"\(call.tool)\" is unavailable on server \"\(call.server)\"")
        }
        let requested = request.timeoutMs.flatMap { $0 > 0 ? min($0, 2_147_483_647) : nil } ?? Self.defaultTimeoutMs
        let timeoutMs = min(requested, callCaps[call.server] ?? Self.defaultTimeoutMs)
        runner.call(server: call.server, tool: call.tool, arguments: call.arguments, timeoutMs: timeoutMs, cancellation: cancellation) { outcome in
            switch outcome {
            case let .failure(error): fail(error.code, error.message)
            case let .success(result):
                guard let json = try? JSONText.encode(McpResultShaping.payload(result)) else {
                    return fail("MCP_TOOL_ERROR", "MCP tool result could not be encoded")
                }
                var answer = InvokeResult.success(request, payloadJSON: json)
                answer.payloadStructured = true
                completion(InvokeOutput(result: answer))
            }
        }
    }

    /// upstream's `decodeMcpToolsCallParams`, with its messages.
    static func decode(_ text: String?) -> Result<(server: String, tool: String, arguments: JSONValue), WireError> {
        func invalid(_ message: String) -> Result<(server: String, tool: String, arguments: JSONValue), WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: \(message)"))
        }
        guard let text, !text.isEmpty else { return invalid("paramsJSON required") }
        guard let value = try? JSONText.decode(JSONValue.self, from: text) else { return invalid("paramsJSON malformed JSON") }
        guard case let .object(params) = value else { return invalid("MCP tool params must be an object") }
        let server = params["server"]?.stringValue?.trimmingWhitespace() ?? ""
        let tool = params["tool"]?.stringValue?.trimmingWhitespace() ?? ""
        guard !server.isEmpty, !tool.isEmpty else { return invalid("server and tool required") }
        switch params["arguments"] {
        case nil: return .success((server, tool, .object([:])))
        case let .object(arguments)?: return .success((server, tool, .object(arguments)))
        default: return invalid("arguments must be an object")
        }
    }
}

/// upstream's `queueOptionalPublication` for one gateway method, per connection: identical
/// params are not sent again, a refused set is not retried, a gateway that does not know the
/// method is left alone, and a transient failure is retried after 250 ms doubling to 5 s.
final class OptionalPublication {
    let method: String
    let label: String
    private let send: (String, @escaping (Result<GatewayReply, WireError>) -> Void) -> Void
    private let schedule: (Int, @escaping () -> Void) -> Void
    private let log: (String) -> Void
    private var connection = 0
    private var unsupported = false
    private var pending: String?
    private var inFlight: String?
    private var published: String?
    private var rejected: String?
    /// The last params asked for: only they are ever retried.
    private var latest: String?
    private var retryMs = 250

    init(method: String, label: String, send: @escaping (String, @escaping (Result<GatewayReply, WireError>) -> Void) -> Void,
         schedule: @escaping (Int, @escaping () -> Void) -> Void, log: @escaping (String) -> Void) {
        self.method = method
        self.label = label
        self.send = send
        self.schedule = schedule
        self.log = log
    }

    /// A new connection: everything is sent again, once.
    func connected() {
        connection += 1
        unsupported = false
        pending = nil
        inFlight = nil
        published = nil
        rejected = nil
        latest = nil
        retryMs = 250
    }

    func publish(_ params: String) {
        latest = params
        guard !unsupported, params != rejected, params != pending else { return }
        if inFlight == nil, params == published { return }
        if inFlight == params { return }
        rejected = nil
        pending = params
        if inFlight == nil { sendPending() }
    }

    private func sendPending() {
        guard let params = pending else { return }
        pending = nil
        inFlight = params
        let connection = self.connection
        send(params) { [weak self] reply in
            guard let self, self.connection == connection else { return }
            self.inFlight = nil
            switch reply {
            case let .success(answer) where answer.ok:
                self.published = params
                self.retryMs = 250
            case let .success(answer):
                let error = answer.error ?? WireError(code: "UNAVAILABLE", message: "refused")
                if error.code == "INVALID_REQUEST", error.message == "unknown method: \(self.method)" {
                    self.unsupported = true
                    self.pending = nil
                    return
                }
                self.log("node host \(self.label) publish failed: \(error.code): \(error.message)")
                if error.code == "INVALID_REQUEST" {
                    self.rejected = params
                } else {
                    self.published = nil
                    self.retry(params, connection: connection)
                }
            case let .failure(error):
                self.log("node host \(self.label) publish failed: \(error.code): \(error.message)")
                self.published = nil
                self.retry(params, connection: connection)
            }
            self.sendPending()
        }
    }

    private func retry(_ params: String, connection: Int) {
        let delay = retryMs
        retryMs = min(retryMs * 2, 5_000)
        schedule(delay) { [weak self] in
            guard let self, self.connection == connection, self.latest == params, self.pending == nil, self.inFlight == nil,
                  self.published != params else { return }
            self.pending = params
            self.sendPending()
        }
    }
}
