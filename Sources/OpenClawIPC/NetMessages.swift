/// The wire between the Supervisor and the NetWorker.
///
/// The NetWorker speaks to the gateway; the Supervisor holds the secrets. Everything the
/// NetWorker sends is untrusted: the Supervisor checks each message against the
/// menu of its monitor (`SupervisorCore/Monitors/NetMonitor.swift`) before acting on it.

/// Identity a worker announces once, right after start.
public struct WorkerHello: Codable, Equatable, Sendable {
    public var pid: Int32
    /// The role the worker plays; the Supervisor refuses a worker that claims another.
    public var role: WorkerRole
    /// What the worker did to confine itself; the Supervisor checks it against /proc.
    public var confinement: ConfinementReport?
    public init(pid: Int32, role: WorkerRole, confinement: ConfinementReport? = nil) {
        self.pid = pid
        self.role = role
        self.confinement = confinement
    }
}

/// Everything the NetWorker needs to open and keep the gateway link.
/// The device private key is not here: signatures are requested per connect.
public struct NetConfiguration: Codable, Equatable, Sendable {
    public struct Client: Codable, Equatable, Sendable {
        public var id: String
        public var displayName: String?
        public var version: String
        public var platform: String
        public var deviceFamily: String?
        /// The machine's model (DMI product name or device-tree model), sent with `deviceFamily`.
        public var modelIdentifier: String?
        public var mode: String
        public var instanceId: String?
        public init(id: String, displayName: String?, version: String, platform: String,
                    deviceFamily: String?, modelIdentifier: String? = nil, mode: String, instanceId: String?) {
            self.id = id
            self.displayName = displayName
            self.version = version
            self.platform = platform
            self.deviceFamily = deviceFamily
            self.modelIdentifier = modelIdentifier
            self.mode = mode
            self.instanceId = instanceId
        }
    }

    public struct Auth: Codable, Equatable, Sendable {
        public var token: String?
        public var password: String?
        /// A setup code's single-use token (`auth.bootstrapToken`), on the first connect only.
        public var bootstrapToken: String?
        public init(token: String?, password: String?, bootstrapToken: String? = nil) {
            self.token = token
            self.password = password
            self.bootstrapToken = bootstrapToken
        }
        public var isEmpty: Bool { token == nil && password == nil && bootstrapToken == nil }
    }

    /// `ws://host:port` or `wss://host:port`.
    public var url: String
    /// Lowercase hex SHA-256 of the expected leaf certificate DER; replaces CA validation.
    public var tlsFingerprint: String?
    public var minProtocol: Int
    public var maxProtocol: Int
    public var client: Client
    public var role: String
    public var scopes: [String]
    public var caps: [String]
    public var commands: [String]
    public var pathEnv: String?
    public var deviceId: String
    /// base64url (no padding) of the raw 32-byte Ed25519 public key.
    public var publicKey: String
    /// Caps the deadline of each connection-attempt phase (nil: the link's defaults).
    public var handshakeTimeoutMs: Int?
    /// A setup code's further URLs, tried in order after `url` while no attempt has sent
    /// `connect` yet (upstream's candidate fallback); the first that reaches hello is kept.
    public var fallbacks: [Endpoint] = []
    /// Headers of the WebSocket upgrade to `url` (Cloudflare Access: `CF-Access-Client-Id`,
    /// `CF-Access-Client-Secret`), only over TLS.
    public var upgradeHeaders: [String: String] = [:]

    /// A gateway URL and its pin.
    public struct Endpoint: Codable, Equatable, Sendable {
        public var url: String
        public var tlsFingerprint: String?
        public init(url: String, tlsFingerprint: String?) {
            self.url = url
            self.tlsFingerprint = tlsFingerprint
        }
    }

    public init(url: String, tlsFingerprint: String?, minProtocol: Int, maxProtocol: Int,
                client: Client, role: String, scopes: [String], caps: [String], commands: [String],
                pathEnv: String?, deviceId: String, publicKey: String) {
        self.url = url
        self.tlsFingerprint = tlsFingerprint
        self.minProtocol = minProtocol
        self.maxProtocol = maxProtocol
        self.client = client
        self.role = role
        self.scopes = scopes
        self.caps = caps
        self.commands = commands
        self.pathEnv = pathEnv
        self.deviceId = deviceId
        self.publicKey = publicKey
    }
}

/// Signed-payload versions the Supervisor will sign (protocol.md §3.3).
public enum SignatureVersion: String, Codable, Sendable {
    case v3, v2
}

/// The NetWorker asks for a connect signature; the Supervisor builds the payload itself.
public struct SignRequest: Codable, Equatable, Sendable {
    public var requestId: String
    public var nonce: String
    public var signedAt: Int64
    public var version: SignatureVersion
    public init(requestId: String, nonce: String, signedAt: Int64, version: SignatureVersion) {
        self.requestId = requestId
        self.nonce = nonce
        self.signedAt = signedAt
        self.version = version
    }
}

public struct SignReply: Codable, Equatable, Sendable {
    public var requestId: String
    /// base64url (no padding) Ed25519 signature; absent when refused.
    public var signature: String?
    /// The credentials the signed payload covers, to send in `connect.auth`. They travel with
    /// the signature so the two can never disagree (a device token stored after one hello is
    /// used, and signed, on the next connect).
    public var auth: NetConfiguration.Auth?
    public var error: String?
    public init(requestId: String, signature: String, auth: NetConfiguration.Auth) {
        self.requestId = requestId
        self.signature = signature
        self.auth = auth
        self.error = nil
    }
    public init(requestId: String, refused error: String) {
        self.requestId = requestId
        self.signature = nil
        self.auth = nil
        self.error = error
    }
}

/// What the gateway said in `hello-ok` that the Supervisor needs to keep.
public struct HelloSummary: Codable, Equatable, Sendable {
    public var `protocol`: Int
    public var deviceToken: String?
    public var role: String?
    public var scopes: [String]?
    public var tickIntervalMs: Int
    public var serverVersion: String?
    /// `hello-ok.features.capabilities` (at most `maxCapabilities`).
    public var capabilities: [String]?
    public static let maxCapabilities = 64
    public init(protocol: Int, deviceToken: String?, role: String?, scopes: [String]?,
                tickIntervalMs: Int, serverVersion: String?) {
        self.protocol = `protocol`
        self.deviceToken = deviceToken
        self.role = role
        self.scopes = scopes
        self.tickIntervalMs = tickIntervalMs
        self.serverVersion = serverVersion
    }
}

/// A failed `connect`: the gateway's error, as the NetWorker classified it.
public struct ConnectRejection: Codable, Equatable, Sendable {
    public var code: String
    public var message: String
    /// `error.details.code` (what clients branch on).
    public var detailCode: String?
    public var requestId: String?
    public var retryAfterMs: Int?
    /// `error.details.reason` (`startup-sidecars`, `not-paired`, …).
    public var reason: String?
    /// `error.retryable`.
    public var retryable: Bool?
    public init(code: String, message: String, detailCode: String?, requestId: String?, retryAfterMs: Int?,
                reason: String? = nil, retryable: Bool? = nil) {
        self.code = code
        self.message = message
        self.detailCode = detailCode
        self.requestId = requestId
        self.retryAfterMs = retryAfterMs
        self.reason = reason
        self.retryable = retryable
    }

    /// The gateway is still starting (`UNAVAILABLE`, `retryable: true`, `details.reason:
    /// "startup-sidecars"`: upstream's `resolveGatewayStartupRetryAfterMs` asks all three).
    public var isGatewayStarting: Bool { code == "UNAVAILABLE" && retryable == true && reason == "startup-sidecars" }

    /// The code clients branch on: `details.code`, else the top-level code.
    public var detail: String { detailCode ?? code }

    /// The device waits for an operator's approval (`PAIRING_REQUIRED`; older gateways `NOT_PAIRED`).
    public var isPairingRequired: Bool { detail == "PAIRING_REQUIRED" || code == "NOT_PAIRED" }
}

/// The state of the gateway link, reported for status and logs.
public struct LinkState: Codable, Equatable, Sendable {
    public enum Phase: String, Codable, Sendable {
        case connecting, connected, pairingPending, disconnected
    }
    public var phase: Phase
    public var detail: String?
    public init(phase: Phase, detail: String?) {
        self.phase = phase
        self.detail = detail
    }
}

/// A `node.invoke.request` from the gateway, after `coerceNodeInvokePayload`.
public struct InvokeRequest: Codable, Equatable, Sendable {
    public var id: String
    public var nodeId: String
    public var command: String
    public var paramsJSON: String?
    public var timeoutMs: Int?
    public var idempotencyKey: String?
    /// The NetWorker's number for this delivery of `id` (a redelivery gets a new one); the
    /// result echoes it, so a late result of a replaced delivery is never published for the
    /// replacement. Not on the wire.
    public var serial: Int?
    public init(id: String, nodeId: String, command: String, paramsJSON: String?, timeoutMs: Int?, idempotencyKey: String?) {
        self.id = id
        self.nodeId = nodeId
        self.command = command
        self.paramsJSON = paramsJSON
        self.timeoutMs = timeoutMs
        self.idempotencyKey = idempotencyKey
    }
}

/// An error as the gateway wire carries it (`{code, message}`).
public struct WireError: Codable, Equatable, Sendable, Error {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// `node.invoke.result` params, produced by the Supervisor.
public struct InvokeResult: Codable, Equatable, Sendable {
    public var id: String
    public var nodeId: String
    public var ok: Bool
    public var payloadJSON: String?
    public var error: WireError?
    /// The delivery this answers (`InvokeRequest.serial`); not on the wire.
    public var serial: Int?
    /// `payloadJSON` goes to the gateway as the structured `payload` field (upstream's MCP
    /// results: "structured invoke data without double JSON escaping").
    public var payloadStructured: Bool?
    public init(id: String, nodeId: String, ok: Bool, payloadJSON: String?, error: WireError?) {
        self.id = id
        self.nodeId = nodeId
        self.ok = ok
        self.payloadJSON = payloadJSON
        self.error = error
    }
}

/// `node.event` params, produced by the Supervisor.
public struct NodeEvent: Codable, Equatable, Sendable {
    public var event: String
    public var payloadJSON: String
    public init(event: String, payloadJSON: String) {
        self.event = event
        self.payloadJSON = payloadJSON
    }
}

/// A Prometheus scrape arrived at the NetWorker's metrics listener.
public struct MetricsRequest: Codable, Equatable, Sendable {
    public var requestId: String
    public init(requestId: String) { self.requestId = requestId }
}

/// Gateway frames the NetWorker could not serve (unreadable, or malformed invokes), counted
/// since its last report; sent at most once a second.
public struct FramesDropped: Codable, Equatable, Sendable {
    public var count: Int
    public init(count: Int) { self.count = count }
}

/// The exposition text for a scrape.
public struct MetricsReply: Codable, Equatable, Sendable {
    public var requestId: String
    public var text: String
    public init(requestId: String, text: String) {
        self.requestId = requestId
        self.text = text
    }
}

/// Invokes the link stopped answering for: the gateway cancelled one (`node.invoke.cancel`),
/// or the connection they came on is gone (`invokeId` nil: every invoke of that connection;
/// upstream's `cancelAll`). Their commands are killed and nothing is published for them.
public struct InvokeCancel: Codable, Equatable, Sendable {
    public var invokeId: String?
    public init(invokeId: String?) { self.invokeId = invokeId }
}

/// A request the Supervisor makes of the gateway on the linked connection (for example
/// `node.runnerInventory.update`). The NetWorker writes it as a `req` frame and answers with
/// a `GatewayReply` of the same `callId`: the gateway's response, or a failure when the link
/// is down or the connection closes first. It never outlives its connection.
public struct GatewayCall: Codable, Equatable, Sendable {
    public var callId: String
    public var method: String
    /// The request's `params`, as JSON text.
    public var paramsJSON: String
    public init(callId: String, method: String, paramsJSON: String) {
        self.callId = callId
        self.method = method
        self.paramsJSON = paramsJSON
    }
}

/// The gateway's response to a `GatewayCall` (`ok`, its payload, or its error).
public struct GatewayReply: Codable, Equatable, Sendable {
    public var callId: String
    public var ok: Bool
    /// The response payload as JSON text; nil when absent or larger than `maxPayloadBytes`.
    public var payloadJSON: String?
    public var error: WireError?
    public init(callId: String, ok: Bool, payloadJSON: String?, error: WireError?) {
        self.callId = callId
        self.ok = ok
        self.payloadJSON = payloadJSON
        self.error = error
    }

    public static let maxPayloadBytes = 64 * 1024
    /// The answer to a call the link could not carry (not linked, or its connection closed).
    public static func unavailable(_ callId: String, _ message: String) -> GatewayReply {
        GatewayReply(callId: callId, ok: false, payloadJSON: nil, error: WireError(code: "UNAVAILABLE", message: message))
    }
}

/// A pairing event the gateway sent on the node's connection (`node.pair.requested`,
/// `node.pair.resolved`), reduced to the fields the Supervisor reads.
public struct PairingEvent: Codable, Equatable, Sendable {
    public var event: String
    public var requestId: String?
    public var nodeId: String?
    /// `approved`, `rejected`, `removed`, … (`node.pair.resolved` only).
    public var decision: String?
    public init(event: String, requestId: String?, nodeId: String?, decision: String?) {
        self.event = event
        self.requestId = requestId
        self.nodeId = nodeId
        self.decision = decision
    }
}

/// Messages the NetWorker sends to the Supervisor.
public enum NetToSupervisor: IPCMessage, Equatable {
    case ready(WorkerHello)
    case signRequest(SignRequest)
    case linkState(LinkState)
    case helloOk(HelloSummary)
    case connectRejected(ConnectRejection)
    case invoke(InvokeRequest)
    case metricsRequest(MetricsRequest)
    case framesDropped(FramesDropped)
    case invokeCancel(InvokeCancel)
    case gatewayReply(GatewayReply)
    case pairingEvent(PairingEvent)

    public enum Kind: String, CaseIterable, Sendable {
        case ready
        case signRequest = "sign.request"
        case linkState = "link.state"
        case helloOk = "hello.ok"
        case connectRejected = "connect.rejected"
        case invoke
        case metricsRequest = "metrics.request"
        case framesDropped = "frames.dropped"
        case invokeCancel = "invoke.cancel"
        case gatewayReply = "gateway.reply"
        case pairingEvent = "pairing.event"
    }

    public var kind: Kind {
        switch self {
        case .ready: return .ready
        case .signRequest: return .signRequest
        case .linkState: return .linkState
        case .helloOk: return .helloOk
        case .connectRejected: return .connectRejected
        case .invoke: return .invoke
        case .metricsRequest: return .metricsRequest
        case .framesDropped: return .framesDropped
        case .invokeCancel: return .invokeCancel
        case .gatewayReply: return .gatewayReply
        case .pairingEvent: return .pairingEvent
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .ready: return .ready(try WorkerHello(from: decoder))
        case .signRequest: return .signRequest(try SignRequest(from: decoder))
        case .linkState: return .linkState(try LinkState(from: decoder))
        case .helloOk: return .helloOk(try HelloSummary(from: decoder))
        case .connectRejected: return .connectRejected(try ConnectRejection(from: decoder))
        case .invoke: return .invoke(try InvokeRequest(from: decoder))
        case .metricsRequest: return .metricsRequest(try MetricsRequest(from: decoder))
        case .framesDropped: return .framesDropped(try FramesDropped(from: decoder))
        case .invokeCancel: return .invokeCancel(try InvokeCancel(from: decoder))
        case .gatewayReply: return .gatewayReply(try GatewayReply(from: decoder))
        case .pairingEvent: return .pairingEvent(try PairingEvent(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .ready(payload): try payload.encode(to: encoder)
        case let .signRequest(payload): try payload.encode(to: encoder)
        case let .linkState(payload): try payload.encode(to: encoder)
        case let .helloOk(payload): try payload.encode(to: encoder)
        case let .connectRejected(payload): try payload.encode(to: encoder)
        case let .invoke(payload): try payload.encode(to: encoder)
        case let .metricsRequest(payload): try payload.encode(to: encoder)
        case let .framesDropped(payload): try payload.encode(to: encoder)
        case let .invokeCancel(payload): try payload.encode(to: encoder)
        case let .gatewayReply(payload): try payload.encode(to: encoder)
        case let .pairingEvent(payload): try payload.encode(to: encoder)
        }
    }
}

/// Messages the Supervisor sends to the NetWorker.
public enum SupervisorToNet: IPCMessage, Equatable {
    case configure(NetConfiguration)
    case signReply(SignReply)
    case invokeResult(InvokeResult)
    case nodeEvent(NodeEvent)
    case metricsReply(MetricsReply)
    case gatewayCall(GatewayCall)
    case shutdown(Empty)

    public enum Kind: String, CaseIterable, Sendable {
        case configure
        case signReply = "sign.reply"
        case invokeResult = "invoke.result"
        case nodeEvent = "node.event"
        case metricsReply = "metrics.reply"
        case gatewayCall = "gateway.call"
        case shutdown
    }

    public var kind: Kind {
        switch self {
        case .configure: return .configure
        case .signReply: return .signReply
        case .invokeResult: return .invokeResult
        case .nodeEvent: return .nodeEvent
        case .metricsReply: return .metricsReply
        case .gatewayCall: return .gatewayCall
        case .shutdown: return .shutdown
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .configure: return .configure(try NetConfiguration(from: decoder))
        case .signReply: return .signReply(try SignReply(from: decoder))
        case .invokeResult: return .invokeResult(try InvokeResult(from: decoder))
        case .nodeEvent: return .nodeEvent(try NodeEvent(from: decoder))
        case .metricsReply: return .metricsReply(try MetricsReply(from: decoder))
        case .gatewayCall: return .gatewayCall(try GatewayCall(from: decoder))
        case .shutdown: return .shutdown(try Empty(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .configure(payload): try payload.encode(to: encoder)
        case let .signReply(payload): try payload.encode(to: encoder)
        case let .invokeResult(payload): try payload.encode(to: encoder)
        case let .nodeEvent(payload): try payload.encode(to: encoder)
        case let .metricsReply(payload): try payload.encode(to: encoder)
        case let .gatewayCall(payload): try payload.encode(to: encoder)
        case let .shutdown(payload): try payload.encode(to: encoder)
        }
    }
}
