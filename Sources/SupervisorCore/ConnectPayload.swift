import OpenClawIPC

/// The exact string a node signs for `connect` (protocol.md §3.3).
///
/// Fields are joined with `|`, no escaping; the Supervisor builds it from its own settings,
/// so the NetWorker contributes only the nonce and the timestamp.
public struct ConnectPayload: Equatable, Sendable {
    public var deviceId: String
    public var clientId: String
    public var clientMode: String
    public var role: String
    public var scopes: [String]
    public var signedAtMs: Int64
    public var token: String
    public var nonce: String
    public var platform: String?
    public var deviceFamily: String?

    public init(deviceId: String, clientId: String, clientMode: String, role: String, scopes: [String],
                signedAtMs: Int64, token: String, nonce: String, platform: String?, deviceFamily: String?) {
        self.deviceId = deviceId
        self.clientId = clientId
        self.clientMode = clientMode
        self.role = role
        self.scopes = scopes
        self.signedAtMs = signedAtMs
        self.token = token
        self.nonce = nonce
        self.platform = platform
        self.deviceFamily = deviceFamily
    }

    public func text(_ version: SignatureVersion) -> String {
        var fields = [
            version.rawValue, deviceId, clientId, clientMode, role,
            scopes.joined(separator: ","), String(signedAtMs), token, nonce,
        ]
        if version == .v3 {
            fields.append(Self.normalizeMetadata(platform))
            fields.append(Self.normalizeMetadata(deviceFamily))
        }
        return fields.joined(separator: "|")
    }

    /// Trim, then lowercase ASCII A–Z only (`normalizeDeviceMetadataForAuth`).
    static func normalizeMetadata(_ value: String?) -> String {
        guard let value else { return "" }
        let trimmed = value.trimmingWhitespace()
        return String(String.UnicodeScalarView(trimmed.unicodeScalars.map { scalar in
            (scalar.value >= 65 && scalar.value <= 90) ? Unicode.Scalar(scalar.value + 32)! : scalar
        }))
    }
}

extension String {
    /// Trims Unicode whitespace and newlines at both ends (JS `String.prototype.trim`).
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !ExecCommandText.isWhitespace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !ExecCommandText.isWhitespace($0) })!
        return String(scalars[first...last])
    }
}
