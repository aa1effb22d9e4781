import FoundationEssentials
import OpenClawIPC

/// Gateway frames as the node sends and reads them (protocol.md §1–§2, §7).
/// Plain functions over `JSONValue`, so they are testable without a socket.
public enum GatewayFrames {
    /// The `connect` request; optional members are omitted, never `null`.
    public static func connect(id: String, configuration c: NetConfiguration, auth credentials: NetConfiguration.Auth,
                               signature: String, signedAt: Int64, nonce: String) -> JSONValue {
        var client: [String: JSONValue] = [
            "id": .string(c.client.id), "version": .string(c.client.version),
            "platform": .string(c.client.platform), "mode": .string(c.client.mode),
        ]
        if let name = c.client.displayName, !name.isEmpty { client["displayName"] = .string(name) }
        if let family = c.client.deviceFamily, !family.isEmpty { client["deviceFamily"] = .string(family) }
        if let instance = c.client.instanceId, !instance.isEmpty { client["instanceId"] = .string(instance) }
        var params: [String: JSONValue] = [
            "minProtocol": .number(Double(c.minProtocol)),
            "maxProtocol": .number(Double(c.maxProtocol)),
            "client": .object(client),
            "caps": .array(c.caps.map(JSONValue.string)),
            "commands": .array(c.commands.map(JSONValue.string)),
            "role": .string(c.role),
            "scopes": .array(c.scopes.map(JSONValue.string)),
            "device": .object([
                "id": .string(c.deviceId),
                "publicKey": .string(c.publicKey),
                "signature": .string(signature),
                "signedAt": .number(Double(signedAt)),
                "nonce": .string(nonce),
            ]),
        ]
        if let pathEnv = c.pathEnv { params["pathEnv"] = .string(pathEnv) }
        var auth: [String: JSONValue] = [:]
        if let token = credentials.token, !token.isEmpty { auth["token"] = .string(token) }
        if let password = credentials.password, !password.isEmpty { auth["password"] = .string(password) }
        if !auth.isEmpty { params["auth"] = .object(auth) }
        return request(id: id, method: "connect", params: .object(params))
    }

    public static func request(id: String, method: String, params: JSONValue) -> JSONValue {
        .object(["type": .string("req"), "id": .string(id), "method": .string(method), "params": params])
    }

    /// `node.invoke.result` params: `payloadJSON`/`error` only when present.
    public static func invokeResult(id: String, _ result: InvokeResult) -> JSONValue {
        var params: [String: JSONValue] = [
            "id": .string(result.id), "nodeId": .string(result.nodeId), "ok": .bool(result.ok),
        ]
        if let payload = result.payloadJSON { params["payloadJSON"] = .string(payload) }
        if let error = result.error {
            var shape: [String: JSONValue] = [:]
            if !error.code.isEmpty { shape["code"] = .string(error.code) }
            if !error.message.isEmpty { shape["message"] = .string(error.message) }
            params["error"] = .object(shape)
        }
        return request(id: id, method: "node.invoke.result", params: .object(params))
    }

    public static func nodeEvent(id: String, _ event: NodeEvent) -> JSONValue {
        request(id: id, method: "node.event", params: .object([
            "event": .string(event.event), "payloadJSON": .string(event.payloadJSON),
        ]))
    }

    /// `coerceNodeInvokePayload`: trims ids and command, drops the event if any is empty.
    public static func invokeRequest(from payload: JSONValue?) -> InvokeRequest? {
        guard let payload, case .object = payload else { return nil }
        func trimmed(_ key: String) -> String? {
            guard let value = payload[key]?.stringValue?.trimmingSpaces(), !value.isEmpty else { return nil }
            return value
        }
        guard let id = trimmed("id"), let nodeId = trimmed("nodeId"), let command = trimmed("command") else { return nil }
        var paramsJSON: String?
        if case let .string(text)? = payload["paramsJSON"] {
            paramsJSON = text
        } else if let params = payload["params"], params != .null {
            paramsJSON = try? JSONText.encode(params)
        }
        var timeout: Int?
        if let number = payload["timeoutMs"]?.numberValue, number.isFinite, number >= 0, number < 1e12 {
            timeout = Int(number)
        }
        return InvokeRequest(id: id, nodeId: nodeId, command: command, paramsJSON: paramsJSON,
                             timeoutMs: timeout, idempotencyKey: payload["idempotencyKey"]?.stringValue)
    }

    /// A `connect` error, reduced to what the Supervisor classifies on.
    public static func rejection(from error: JSONValue?) -> ConnectRejection {
        let details = error?["details"]
        var retryAfter: Int?
        if let value = (error?["retryAfterMs"] ?? details?["retryAfterMs"])?.numberValue, value >= 0, value < 86_400_000 {
            retryAfter = Int(value)
        }
        return ConnectRejection(
            code: error?["code"]?.stringValue ?? "UNAVAILABLE",
            message: error?["message"]?.stringValue ?? "connect failed",
            detailCode: details?["code"]?.stringValue,
            requestId: details?["requestId"]?.stringValue,
            retryAfterMs: retryAfter
        )
    }

    public static func encode(_ frame: JSONValue) -> String {
        (try? JSONText.encode(frame)) ?? "{}"
    }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}

/// Reconnect delays: 1 s doubling to 30 s, no jitter, reset after hello (protocol.md §6.4).
public struct ReconnectBackoff: Equatable, Sendable {
    public static let initialMs = 1000
    public static let maxMs = 30_000
    public private(set) var nextMs = ReconnectBackoff.initialMs

    public init() {}

    /// The delay before the next attempt; `retryAfterMs` overrides without advancing.
    public mutating func next(retryAfterMs: Int? = nil) -> Int {
        if let retryAfterMs { return retryAfterMs }
        let delay = nextMs
        nextMs = min(Self.maxMs, nextMs * 2)
        return delay
    }

    public mutating func reset() { nextMs = Self.initialMs }
}
