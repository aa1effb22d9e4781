import FoundationEssentials
import OpenClawIPC

/// Gateway frames as the node sends and reads them (protocol.md §1–§2, §7).
/// Plain functions over `JSONValue`, so they are testable (and fuzzed) without a socket: the
/// NetWorker's link is the I/O around them.
public enum GatewayFrames {
    /// The `connect` request; optional members are omitted, never `null`.
    public static func connect(id: String, configuration c: NetConfiguration, auth credentials: NetConfiguration.Auth,
                               signature: String, signedAt: Int64, nonce: String) -> JSONValue {
        var client: [String: JSONValue] = [
            "id": .string(c.client.id), "version": .string(c.client.version),
            "platform": .string(c.client.platform), "mode": .string(c.client.mode),
        ]
        if let name = c.client.displayName, !name.isEmpty { client["displayName"] = .string(name) }
        if let family = c.client.deviceFamily, !family.isEmpty {
            client["deviceFamily"] = .string(family)
            // As upstream's node host: the model only with a device family.
            if let model = c.client.modelIdentifier, !model.isEmpty { client["modelIdentifier"] = .string(model) }
        }
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
        if let token = credentials.bootstrapToken, !token.isEmpty { auth["bootstrapToken"] = .string(token) }
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
        if let payload = result.payloadJSON {
            if result.payloadStructured == true, let value = try? JSONText.decode(JSONValue.self, from: payload) {
                params["payload"] = value
            } else {
                params["payloadJSON"] = .string(payload)
            }
        }
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

    /// Why a `node.invoke.request` cannot be served, and whom to tell: with an `id`, the
    /// gateway gets an `INVALID_REQUEST` result instead of waiting for its own deadline.
    public struct InvokeRejection: Error, Equatable, Sendable {
        public var id: String?
        public var nodeId: String?
        public var message: String
    }

    /// `coerceNodeInvokePayload`: ids and command trimmed and required, `paramsJSON` (or
    /// `params` serialised), `timeoutMs` a non-negative finite number when present.
    /// Upstream drops a payload it cannot coerce; here every one whose `id` is readable is
    /// answered (`InvokeRejection`), so the gateway never waits on silence.
    public static func invokeRequest(from payload: JSONValue?) -> Result<InvokeRequest, InvokeRejection> {
        guard let payload, case .object = payload else {
            return .failure(InvokeRejection(id: nil, nodeId: nil, message: "INVALID_REQUEST: invoke payload must be an object"))
        }
        func trimmed(_ key: String) -> String? {
            guard let value = payload[key]?.stringValue?.trimmingSpaces(), !value.isEmpty else { return nil }
            return value
        }
        let id = trimmed("id"), nodeId = trimmed("nodeId")
        func reject(_ message: String) -> Result<InvokeRequest, InvokeRejection> {
            .failure(InvokeRejection(id: id, nodeId: nodeId, message: "INVALID_REQUEST: " + message))
        }
        guard let id else { return reject("id required") }
        guard let nodeId else { return reject("nodeId required") }
        guard let command = trimmed("command") else { return reject("command required") }
        var paramsJSON: String?
        if case let .string(text)? = payload["paramsJSON"] {
            paramsJSON = text
        } else if let params = payload["params"], params != .null {
            paramsJSON = try? JSONText.encode(params)
        }
        var timeout: Int?
        switch payload["timeoutMs"] {
        case nil, .null?: break
        case let .number(number)? where number.isFinite && number >= 0:
            timeout = Int(min(number, Double(IPCLimits.maxTimerMs)))
        default: return reject("timeoutMs must be a non-negative finite number")
        }
        return .success(InvokeRequest(id: id, nodeId: nodeId, command: command, paramsJSON: paramsJSON,
                                      timeoutMs: timeout, idempotencyKey: payload["idempotencyKey"]?.stringValue))
    }

    /// The `id` and `nodeId` of a `node.invoke.request` frame that is not valid JSON, read
    /// from its text where they are plain JSON strings; nil when it is not recognisably one.
    public static func unreadableInvoke(_ text: String) -> (id: String, nodeId: String?)? {
        let bytes = Array(text.utf8)
        guard find(Array("\"node.invoke.request\"".utf8), in: bytes, from: 0) != nil,
              let payload = find(Array("\"payload\"".utf8), in: bytes, from: 0) else { return nil }
        guard let id = stringMember("id", in: bytes, from: payload), !id.isEmpty else { return nil }
        return (id, stringMember("nodeId", in: bytes, from: payload))
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard needle.count <= bytes.count, start <= bytes.count - needle.count else { return nil }
        var index = start
        while index <= bytes.count - needle.count {
            if bytes[index] == needle[0], bytes[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    private static func skipWhitespace(_ bytes: [UInt8], from start: Int) -> Int {
        var index = start
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        return index
    }

    /// `"key" : "value"` after `from`, where the value has no escapes and is at most 256 bytes.
    private static func stringMember(_ key: String, in bytes: [UInt8], from start: Int) -> String? {
        var search = start
        let needle = Array("\"\(key)\"".utf8)
        while let at = find(needle, in: bytes, from: search) {
            search = at + needle.count
            var index = skipWhitespace(bytes, from: search)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { continue }
            index = skipWhitespace(bytes, from: index + 1)
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { continue }
            let valueStart = index + 1
            var end = valueStart
            while end < bytes.count, end - valueStart <= 256, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
            guard end < bytes.count, bytes[end] == UInt8(ascii: "\""), end - valueStart <= 256 else { return nil }
            return String(decoding: bytes[valueStart..<end], as: UTF8.self).trimmingSpaces()
        }
        return nil
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
            retryAfterMs: retryAfter,
            reason: details?["reason"]?.stringValue,
            retryable: error?["retryable"]?.boolValue
        )
    }

    public static func encode(_ frame: JSONValue) -> String {
        (try? JSONText.encode(frame)) ?? "{}"
    }
}

extension String {
    /// Trimmed of Unicode whitespace at both ends (JavaScript's `String.prototype.trim`).
    public func trimmingSpaces() -> String {
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
