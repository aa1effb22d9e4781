import FoundationEssentials
import NodeSupport
import OpenClawIPC

/// A gateway's setup code (upstream `src/pairing/setup-code.ts`): base64url of UTF-8 JSON
/// `{url, urls?, bootstrapToken, expiresAtMs?, tlsFingerprint?}`, bare or as `oc-pair://<code>`.
/// The bootstrap token pairs the device on its first connect (single use, about 10 minutes);
/// it is never written to a file, a unit or a log.
public struct SetupCode: Equatable, Sendable {
    public var url: String
    public var urls: [String]?
    public var bootstrapToken: String
    public var expiresAtMs: Int64?
    public var tlsFingerprint: String?

    public static let prefix = "oc-pair://"
    static let maxURLs = 8

    /// upstream's messages.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalidCode, invalidPayload, expired
        public var description: String {
            switch self {
            case .invalidCode: return "Invalid pairing setup code or URL."
            case .invalidPayload: return "Invalid pairing setup payload."
            case .expired: return "Pairing setup code has expired."
            }
        }
    }

    /// Decodes a setup code or `oc-pair://` URL, as upstream's `decodePairingSetupCode`.
    public static func decode(_ input: String, nowMs: Int64) throws -> SetupCode {
        let trimmed = input.trimmingWhitespace()
        let code = trimmed.lowercased().hasPrefix(prefix) ? String(trimmed.dropFirst(prefix.count)) : trimmed
        guard !code.isEmpty, code.utf8.allSatisfy(isBase64URLByte), let bytes = Base64URL.decode(code),
              let payload = try? JSONText.decode(JSONValue.self, from: String(decoding: bytes, as: UTF8.self)) else {
            throw Failure.invalidCode
        }
        return try SetupCode(payload: payload, nowMs: nowMs)
    }

    /// Validates a payload (a decoded code, or a join URL's JSON body).
    public init(payload: JSONValue, nowMs: Int64) throws {
        guard case .object = payload else { throw Failure.invalidPayload }
        guard let url = payload["url"]?.stringValue?.trimmingWhitespace(), !url.isEmpty,
              let token = payload["bootstrapToken"]?.stringValue?.trimmingWhitespace(), !token.isEmpty,
              Self.isCanonical(url) else { throw Failure.invalidPayload }
        self.url = url
        bootstrapToken = token
        if let list = payload["urls"], list != .null {
            guard let items = list.arrayValue, !items.isEmpty, items.count <= Self.maxURLs else { throw Failure.invalidPayload }
            let strings = items.compactMap(\.stringValue)
            guard strings.count == items.count, strings.allSatisfy(Self.isCanonical) else { throw Failure.invalidPayload }
            urls = strings
        }
        if let expires = payload["expiresAtMs"], expires != .null {
            guard let value = expires.numberValue, value >= 0, value <= 9_007_199_254_740_991, value.rounded() == value else {
                throw Failure.invalidPayload
            }
            guard Int64(value) > nowMs else { throw Failure.expired }
            expiresAtMs = Int64(value)
        }
        if let pin = payload["tlsFingerprint"], pin != .null {
            guard let text = pin.stringValue, let normalized = Self.normalizeFingerprint(text) else { throw Failure.invalidPayload }
            tlsFingerprint = normalized
        }
    }

    /// The endpoints to try, in order: `urls` when given (it replaces `url`), else `url`; the
    /// pin goes only with the entry that equals `url`.
    public var candidates: [GatewayEndpoint] {
        (urls ?? [url]).compactMap { candidate in
            guard let parsed = EndpointURL(candidate, schemes: ["wss", "ws"]) else { return nil }
            let tls = parsed.scheme == "wss"
            return GatewayEndpoint(host: parsed.host, port: parsed.explicitPort ?? (tls ? 443 : 80), tls: tls,
                                   fingerprint: candidate == url ? tlsFingerprint : nil,
                                   contextPath: parsed.path == "/" ? nil : parsed.path)
        }
    }

    /// upstream's `normalizeUrl(url, "ws") === url`: `ws`/`wss`, a lowercase host, no default
    /// port, no trailing `/`, no user info, query or fragment (a context path may follow).
    static func isCanonical(_ url: String) -> Bool {
        guard !url.contains("?"), !url.contains("#"), !url.contains("@"), let parsed = EndpointURL(url, schemes: ["wss", "ws"]),
              parsed.host == parsed.host.lowercased() else { return false }
        let defaultPort = parsed.scheme == "wss" ? 443 : 80
        let host = parsed.host.contains(":") ? "[\(parsed.host)]" : parsed.host
        let port = parsed.explicitPort.flatMap { $0 == defaultPort ? nil : ":\($0)" } ?? ""
        return url == "\(parsed.scheme)://\(host)\(port)\(parsed.path == "/" ? "" : parsed.path)"
    }

    /// 64 hex digits, or 32 colon-separated pairs, optionally after `sha256:`; lowercase.
    static func normalizeFingerprint(_ text: String) -> String? {
        var value = Substring(text.trimmingWhitespace())
        if value.lowercased().hasPrefix("sha256:") { value = value.dropFirst(7) }
        let hex = value.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit }
        if hex, value.count == 64 { return value.lowercased() }
        let pairs = value.split(separator: ":", omittingEmptySubsequences: false)
        guard pairs.count == 32, pairs.allSatisfy({ $0.count == 2 && $0.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit) }) else {
            return nil
        }
        return pairs.joined().lowercased()
    }

    public static func isBase64URLByte(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
    }
}

/// How `run` uses a setup code: `--pair` always presents its bootstrap token; with
/// `--pair-if-needed` a stored device token wins.
public struct PairingRequest: Sendable {
    public var code: SetupCode
    public var preferBootstrapToken: Bool

    public init(code: SetupCode, preferBootstrapToken: Bool) {
        self.code = code
        self.preferBootstrapToken = preferBootstrapToken
    }
}
