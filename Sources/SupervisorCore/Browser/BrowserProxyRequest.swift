import OpenClawIPC

/// `browser.proxy` params after upstream's checks (`browser.md` §1.2, §1.3, §3.2, §3.3):
/// a pure function of the params and the proxy settings, so every rule is unit-tested.
public struct BrowserProxyRequest: Equatable, Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var body: JSONValue?
    public var timeoutMs: Int
    /// The effective profile (nil for `/profiles`, which selects none).
    public var profile: String?
    public var envelope: Bool

    /// Default proxy deadline ([newer] `DEFAULT_BROWSER_PROXY_TIMEOUT_MS`).
    public init(method: String, path: String, query: [String: String], body: JSONValue?, timeoutMs: Int, profile: String?,
                envelope: Bool) {
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.timeoutMs = timeoutMs
        self.profile = profile
        self.envelope = envelope
    }

    public static let defaultTimeoutMs = 20000
    public static let maxTimeoutMs = 600_000

    /// Parses and checks `params`; a failure is the thrown error's text (without `Error: `).
    /// `command` is `browser.proxy` or `browser.proxy.upload.v1` (whose envelope
    /// `BrowserProxyUpload` checks once the route is known).
    public static func parse(_ params: [String: JSONValue], settings: BrowserProxySettings,
                             command: String = "browser.proxy") -> Result<BrowserProxyRequest, BrowserProxyFailure> {
        if command == "browser.proxy", params["upload"] != nil {
            return .failure(.invalid("INVALID_REQUEST: browser.proxy does not accept upload envelopes"))
        }
        if command == BrowserProxyUpload.command, !JSONValue.isTruthy(params["upload"]) {
            return .failure(.invalid("INVALID_REQUEST: browser.proxy.upload.v1 requires an upload envelope"))
        }
        let rawPath = params["path"]?.stringValue?.trimmingWhitespace() ?? ""
        guard !rawPath.isEmpty else { return .failure(.invalid("INVALID_REQUEST: path required")) }
        guard settings.enabled else { return .failure(.disabled) }
        guard settings.browserEnabled else { return .failure(.invalid("browser control disabled")) }
        let method = (params["method"]?.stringValue ?? "GET").trimmingWhitespace().uppercased()
        guard ["GET", "POST", "DELETE"].contains(method) else {
            return .failure(.invalid("INVALID_REQUEST: method must be GET, POST, or DELETE"))
        }
        let path = normalize(rawPath)
        if isPersistentProfileMutation(method: method, path: path) {
            return .failure(.invalid("INVALID_REQUEST: browser.proxy cannot mutate persistent browser profiles"))
        }
        if (method == "GET" && path == "/system-profiles") || (method == "POST" && path == "/profiles/import") {
            return .failure(.invalid("INVALID_REQUEST: browser.proxy cannot run host-local browser routes"))
        }
        var query: [String: String] = [:]
        if case let .object(entries)? = params["query"] {
            for (key, value) in entries {
                switch value {
                case .null: continue
                case let .string(text): query[key] = text
                case let .bool(flag): query[key] = flag ? "true" : "false"
                case let .number(number): query[key] = number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
                case .array, .object: query[key] = (try? JSONText.encode(value)) ?? ""
                }
            }
        }
        let body = params["body"]
        let requested = [query["profile"], body?["profile"]?.stringValue, params["profile"]?.stringValue]
            .compactMap { $0?.trimmingWhitespace() }.first { !$0.isEmpty }
        let allow = settings.allowProfiles
        var profile: String?
        if path == "/profiles" {
            if !allow.isEmpty, let requested, !allow.contains(requested) {
                return .failure(.invalid("INVALID_REQUEST: browser profile not allowed"))
            }
            profile = requested
        } else {
            let effective = requested ?? settings.defaultProfile
            if !allow.isEmpty, !allow.contains(effective) {
                return .failure(.invalid("INVALID_REQUEST: browser profile not allowed"))
            }
            profile = effective
        }
        // Written back so the route acts on the profile that was checked.
        if let profile { query["profile"] = profile }
        var timeout = defaultTimeoutMs
        if let value = params["timeoutMs"]?.numberValue, value.isFinite, value >= 1 {
            timeout = min(value.saturatingInt, maxTimeoutMs)
        }
        return .success(BrowserProxyRequest(method: method, path: path, query: query, body: body, timeoutMs: timeout,
                                            profile: profile, envelope: params["errorEnvelope"]?.stringValue == "browser-v1"))
    }

    /// A leading `/` added, trailing slashes stripped ([newer]).
    static func normalize(_ path: String) -> String {
        var path = path.hasPrefix("/") ? path : "/" + path
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// `POST /profiles/create`, `POST /reset-profile`, `DELETE /profiles/<one segment>`.
    static func isPersistentProfileMutation(method: String, path: String) -> Bool {
        if method == "POST", path == "/profiles/create" || path == "/reset-profile" { return true }
        let segments = path.split(separator: "/")
        return method == "DELETE" && segments.count == 2 && segments[0] == "profiles"
    }

    /// "ws-backed" routes, for the timeout message (§1.6).
    var isWebSocketBacked: Bool {
        ["/act", "/download", "/navigate", "/pdf", "/screenshot", "/snapshot", "/wait/download"].contains(path)
    }

    public var timeoutMessage: String {
        "browser proxy timed out for \(method) \(path) after \(timeoutMs)ms; "
            + (isWebSocketBacked ? "ws-backed browser action" : "browser action") + "; profile=\(profile ?? "-")"
    }
}

/// Why a proxy call failed before reaching a route.
public enum BrowserProxyFailure: Error, Equatable, Sendable {
    case invalid(String)
    /// `nodeHost.browserProxy.enabled: false`.
    case disabled

    public var wireError: WireError {
        switch self {
        case let .invalid(text): return WireError(code: "INVALID_REQUEST", message: "Error: \(text)")
        case .disabled: return WireError(code: "UNAVAILABLE", message: "Error: UNAVAILABLE: node browser proxy disabled")
        }
    }
}

/// `nodeHost.browserProxy.*` and the `browser.*` keys the Supervisor itself needs.
public struct BrowserProxySettings: Equatable, Sendable {
    /// `nodeHost.browserProxy.enabled` is not false.
    public var enabled: Bool
    /// `browser.enabled` is not false.
    public var browserEnabled: Bool
    public var allowProfiles: [String]
    public var defaultProfile: String

    public init(enabled: Bool, browserEnabled: Bool = true, allowProfiles: [String] = [], defaultProfile: String = "openclaw") {
        self.enabled = enabled
        self.browserEnabled = browserEnabled
        self.allowProfiles = allowProfiles
        self.defaultProfile = defaultProfile
    }

    /// Whether `browser.proxy` (and cap `browser`) is advertised (§1.1).
    public var advertised: Bool { enabled && browserEnabled }

    /// An invalid `enabled` or `allowProfiles` (not a boolean; not a list of names) fails
    /// closed: the proxy is off, and `ConfigCheck` says why.
    public static func from(_ config: OpenClawConfig) -> BrowserProxySettings {
        let allowValue = config.value("nodeHost.browserProxy.allowProfiles")
        let allowValid = allowValue == nil || allowValue == .null
            || allowValue?.arrayValue?.allSatisfy { $0.stringValue != nil } == true
        let allow = (allowValue?.arrayValue ?? [])
            .compactMap { $0.stringValue?.trimmingWhitespace() }.filter { !$0.isEmpty }
        let defaultProfile = config.string("browser.defaultProfile")?.trimmingWhitespace()
        return BrowserProxySettings(
            enabled: ConfigCheck.flag(config.value("nodeHost.browserProxy.enabled"), default: true) && allowValid,
            browserEnabled: ConfigCheck.flag(config.value("browser.enabled"), default: true),
            allowProfiles: allow,
            defaultProfile: defaultProfile.flatMap { $0.isEmpty ? nil : $0 } ?? "openclaw"
        )
    }
}
