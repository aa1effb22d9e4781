/// The wire between the Supervisor and the BrowserWorker.
///
/// The BrowserWorker renders whatever pages an agent opens, so it is the most exposed
/// process: the Supervisor treats its answers as untrusted (response ids must name a request
/// in flight; files it names are only read from its media directory).

/// How the BrowserWorker launches and drives Chromium (from `openclaw.json` `browser.*`).
public struct BrowserConfiguration: Codable, Equatable, Sendable {
    public struct Profile: Codable, Equatable, Sendable {
        public var name: String
        /// Local CDP port of a managed profile (nil with `cdpUrl`).
        public var cdpPort: Int?
        /// `http://host:port` of a browser we attach to instead of launching.
        public var cdpUrl: String?
        public var attachOnly: Bool
        public var color: String
        public var headless: Bool?
        public var executablePath: String?

        public init(name: String, cdpPort: Int?, cdpUrl: String?, attachOnly: Bool, color: String,
                    headless: Bool?, executablePath: String?) {
            self.name = name
            self.cdpPort = cdpPort
            self.cdpUrl = cdpUrl
            self.attachOnly = attachOnly
            self.color = color
            self.headless = headless
            self.executablePath = executablePath
        }
    }

    /// `browser.enabled` (routes answer 503-style errors when false).
    public var enabled: Bool
    public var evaluateEnabled: Bool
    public var defaultProfile: String
    public var profiles: [Profile]
    /// The Chromium binary (already resolved by the Supervisor; nil = none found).
    public var executablePath: String?
    public var headless: Bool?
    public var noSandbox: Bool
    public var extraArgs: [String]
    /// Where user-data dirs (`<dir>/<profile>/user-data`) and `media/` live.
    public var dataDir: String
    /// Whether a display is available (`DISPLAY`/`WAYLAND_DISPLAY` set for the node).
    public var displayPresent: Bool

    public init(enabled: Bool, evaluateEnabled: Bool, defaultProfile: String, profiles: [Profile], executablePath: String?,
                headless: Bool?, noSandbox: Bool, extraArgs: [String], dataDir: String, displayPresent: Bool) {
        self.enabled = enabled
        self.evaluateEnabled = evaluateEnabled
        self.defaultProfile = defaultProfile
        self.profiles = profiles
        self.executablePath = executablePath
        self.headless = headless
        self.noSandbox = noSandbox
        self.extraArgs = extraArgs
        self.dataDir = dataDir
        self.displayPresent = displayPresent
    }
}

/// One browser-control route call (`browser.md` §1.3 step 8): already checked by the Supervisor.
public struct BrowserRequest: Codable, Equatable, Sendable {
    public var id: String
    public var method: String
    public var path: String
    public var query: [String: String]
    public var body: JSONValue?
    /// The proxy deadline; the worker stops waiting on Chromium after it.
    public var timeoutMs: Int
    /// `browser.proxy.upload.v1`: files the worker stages in its uploads folder and names in
    /// the route body's `paths` (the Supervisor has checked them and sanitised their names).
    public var upload: [BrowserUploadFile]?

    public init(id: String, method: String, path: String, query: [String: String], body: JSONValue?, timeoutMs: Int,
                upload: [BrowserUploadFile]? = nil) {
        self.upload = upload
        self.id = id
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.timeoutMs = timeoutMs
    }
}

/// One file of a `browser.proxy.upload.v1` envelope.
public struct BrowserUploadFile: Codable, Equatable, Sendable {
    public var name: String
    public var contentBase64: String

    public init(name: String, contentBase64: String) {
        self.name = name
        self.contentBase64 = contentBase64
    }
}

/// A route's answer: an HTTP-like status and the JSON body.
public struct BrowserResponse: Codable, Equatable, Sendable {
    public var id: String
    public var status: Int
    public var body: JSONValue
    /// The command failed before the route ran (an upload that could not be staged): the
    /// error's text, answered as the invoke's error rather than a route answer.
    public var commandError: String?

    public init(id: String, status: Int, body: JSONValue, commandError: String? = nil) {
        self.id = id
        self.status = status
        self.body = body
        self.commandError = commandError
    }
}

/// Messages the BrowserWorker sends to the Supervisor.
public enum BrowserToSupervisor: IPCMessage, Equatable {
    case ready(WorkerHello)
    case response(BrowserResponse)

    public enum Kind: String, CaseIterable, Sendable {
        case ready
        case response = "browser.response"
    }

    public var kind: Kind {
        switch self {
        case .ready: return .ready
        case .response: return .response
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .ready: return .ready(try WorkerHello(from: decoder))
        case .response: return .response(try BrowserResponse(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .ready(payload): try payload.encode(to: encoder)
        case let .response(payload): try payload.encode(to: encoder)
        }
    }
}

/// Messages the Supervisor sends to the BrowserWorker.
public enum SupervisorToBrowser: IPCMessage, Equatable {
    case configure(BrowserConfiguration)
    case request(BrowserRequest)
    case shutdown(Empty)

    public enum Kind: String, CaseIterable, Sendable {
        case configure
        case request = "browser.request"
        case shutdown
    }

    public var kind: Kind {
        switch self {
        case .configure: return .configure
        case .request: return .request
        case .shutdown: return .shutdown
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .configure: return .configure(try BrowserConfiguration(from: decoder))
        case .request: return .request(try BrowserRequest(from: decoder))
        case .shutdown: return .shutdown(try Empty(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .configure(payload): try payload.encode(to: encoder)
        case let .request(payload): try payload.encode(to: encoder)
        case let .shutdown(payload): try payload.encode(to: encoder)
        }
    }
}
