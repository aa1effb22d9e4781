/// The McpWorker's wire (issue 20): the Supervisor names the MCP servers the node's config
/// enables; the worker connects them, reports each server's tools as the server lists them,
/// and runs the tool calls the Supervisor authorised.

/// One MCP server, as the Supervisor resolved it from `nodeHost.mcp.servers`.
public struct McpServerConfig: Codable, Equatable, Sendable {
    public var name: String
    /// stdio: the program, its arguments, extra environment and working directory.
    public var command: String?
    public var args: [String]
    public var env: [String: String]
    public var cwd: String?
    /// Streamable HTTP: the endpoint and its headers.
    public var url: String?
    public var headers: [String: String]
    /// HTTPS: `sslVerify: false` (the server's certificate is not verified; nil: verified), and
    /// a client certificate and its key (PEM, read by the Supervisor from `clientCert` /
    /// `clientKey`).
    public var sslVerify: Bool?
    public var clientCertificatePEM: String?
    public var clientKeyPEM: String?
    /// Deadline of a connect (initialize) and of one listing.
    public var connectionTimeoutMs: Int
    public var requestTimeoutMs: Int

    public init(name: String, command: String? = nil, args: [String] = [], env: [String: String] = [:], cwd: String? = nil,
                url: String? = nil, headers: [String: String] = [:], connectionTimeoutMs: Int = 30_000, requestTimeoutMs: Int = 60_000) {
        self.name = name
        self.command = command
        self.args = args
        self.env = env
        self.cwd = cwd
        self.url = url
        self.headers = headers
        self.connectionTimeoutMs = connectionTimeoutMs
        self.requestTimeoutMs = requestTimeoutMs
    }
}

public struct McpConfiguration: Codable, Equatable, Sendable {
    public var servers: [McpServerConfig]
    /// The `clientInfo.version` the worker announces.
    public var clientVersion: String

    public init(servers: [McpServerConfig], clientVersion: String) {
        self.servers = servers
        self.clientVersion = clientVersion
    }
}

/// A tool as its server listed it (the Supervisor filters and names it).
public struct McpTool: Codable, Equatable, Sendable {
    public var name: String
    public var description: String?
    /// `inputSchema`, when the server sent one.
    public var inputSchema: JSONValue?
    /// `execution.taskSupport` is `"required"`: not callable here (upstream hides it).
    public var taskRequired: Bool

    public init(name: String, description: String? = nil, inputSchema: JSONValue? = nil, taskRequired: Bool = false) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
        self.taskRequired = taskRequired
    }
}

/// A server's state and tools, sent whenever either changes. `connected: false` withdraws
/// its tools (the process died, the session closed, a listing failed).
public struct McpServerTools: Codable, Equatable, Sendable {
    /// What one message may carry: upstream's listing cap (128 pages of 128 tools); the worker
    /// stops a listing past it, the Supervisor kills a worker that sends more.
    public static let maxTools = 128 * 128

    public var server: String
    public var connected: Bool
    public var tools: [McpTool]

    public init(server: String, connected: Bool, tools: [McpTool]) {
        self.server = server
        self.connected = connected
        self.tools = tools
    }
}

/// `mcp.tools.call.v1`, authorised: call `tool` on `server` with `arguments` (an object).
public struct McpCall: Codable, Equatable, Sendable {
    public var id: String
    public var server: String
    public var tool: String
    public var arguments: JSONValue
    public var timeoutMs: Int

    public init(id: String, server: String, tool: String, arguments: JSONValue, timeoutMs: Int) {
        self.id = id
        self.server = server
        self.tool = tool
        self.arguments = arguments
        self.timeoutMs = timeoutMs
    }
}

/// The call's outcome: the server's `tools/call` result, or upstream's error code and text.
public struct McpCallResult: Codable, Equatable, Sendable {
    public var id: String
    public var result: JSONValue?
    public var error: WireError?

    public init(id: String, result: JSONValue? = nil, error: WireError? = nil) {
        self.id = id
        self.result = result
        self.error = error
    }
}

public struct McpCallId: Codable, Equatable, Sendable {
    public var id: String
    public init(id: String) { self.id = id }
}

/// Messages the Supervisor sends to the McpWorker.
public enum SupervisorToMcp: IPCMessage, Equatable {
    case configure(McpConfiguration)
    case call(McpCall)
    case cancel(McpCallId)
    case shutdown(Empty)

    public enum Kind: String, CaseIterable, Sendable {
        case configure
        case call = "mcp.call"
        case cancel = "mcp.cancel"
        case shutdown
    }

    public var kind: Kind {
        switch self {
        case .configure: return .configure
        case .call: return .call
        case .cancel: return .cancel
        case .shutdown: return .shutdown
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .configure: return .configure(try McpConfiguration(from: decoder))
        case .call: return .call(try McpCall(from: decoder))
        case .cancel: return .cancel(try McpCallId(from: decoder))
        case .shutdown: return .shutdown(try Empty(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .configure(payload): try payload.encode(to: encoder)
        case let .call(payload): try payload.encode(to: encoder)
        case let .cancel(payload): try payload.encode(to: encoder)
        case let .shutdown(payload): try payload.encode(to: encoder)
        }
    }
}

/// Messages the McpWorker sends to the Supervisor.
public enum McpToSupervisor: IPCMessage, Equatable {
    case ready(WorkerHello)
    case tools(McpServerTools)
    case result(McpCallResult)

    public enum Kind: String, CaseIterable, Sendable {
        case ready
        case tools = "mcp.tools"
        case result = "mcp.result"
    }

    public var kind: Kind {
        switch self {
        case .ready: return .ready
        case .tools: return .tools
        case .result: return .result
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .ready: return .ready(try WorkerHello(from: decoder))
        case .tools: return .tools(try McpServerTools(from: decoder))
        case .result: return .result(try McpCallResult(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .ready(payload): try payload.encode(to: encoder)
        case let .tools(payload): try payload.encode(to: encoder)
        case let .result(payload): try payload.encode(to: encoder)
        }
    }
}
