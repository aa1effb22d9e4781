import FoundationEssentials
import OpenClawIPC

/// How much the host may run without a prompt (`exec-approvals.types.ts` `ExecSecurity`).
/// Ordered `deny < allowlist < full`, so the stricter of two policies is `min(a, b)`.
public enum ExecSecurity: String, Sendable, CaseIterable, Comparable {
    case deny
    case allowlist
    case full

    private var rank: Int {
        switch self {
        case .deny: return 0
        case .allowlist: return 1
        case .full: return 2
        }
    }

    public static func < (lhs: ExecSecurity, rhs: ExecSecurity) -> Bool { lhs.rank < rhs.rank }

    /// Accepts exactly `"deny"`, `"allowlist"`, `"full"` after trimming (upstream does not
    /// lower-case file values). Absent or null is nil (unset, inherited); any other value fails
    /// closed as `deny` (upstream would drop it and so fall back to a looser default), and
    /// `ConfigCheck` reports it.
    init?(field: JSONValue?) {
        guard let field, field != .null else { return nil }
        self = field.stringValue.flatMap { ExecSecurity(rawValue: $0.trimmingWhitespace()) } ?? .deny
    }
}

/// When to prompt an operator (`ExecAsk`). Ordered `off < on-miss < always`, so the
/// stricter of two policies is `max(a, b)`.
public enum ExecAsk: String, Sendable, CaseIterable, Comparable {
    case off
    case onMiss = "on-miss"
    case always

    private var rank: Int {
        switch self {
        case .off: return 0
        case .onMiss: return 1
        case .always: return 2
        }
    }

    public static func < (lhs: ExecAsk, rhs: ExecAsk) -> Bool { lhs.rank < rhs.rank }

    /// Accepts exactly `"off"`, `"on-miss"`, `"always"` after trimming. Absent or null is nil;
    /// any other value fails closed as `always` (every run asks).
    init?(field: JSONValue?) {
        guard let field, field != .null else { return nil }
        self = field.stringValue.flatMap { ExecAsk(rawValue: $0.trimmingWhitespace()) } ?? .always
    }
}

/// What a prompt resolves to when no operator can answer: the same values as `ExecSecurity`.
public typealias AskFallback = ExecSecurity

/// One allowlist entry. After normalisation `pattern` is non-blank and `id` is set; the
/// upstream-only `argPattern` and `commandText` fields never survive into this type.
public struct AllowlistEntry: Equatable, Sendable {
    public var id: String?
    public var pattern: String
    /// Milliseconds since the epoch.
    public var lastUsedAt: Int64?
    public var lastUsedCommand: String?
    public var lastResolvedPath: String?
    /// `"allow-always"` for entries persisted from an operator decision.
    public var source: String?
    /// Restricts the entry to arguments: a regex over them, or an argv-bound hash (allow-always).
    public var argPattern: String?

    public static let allowAlwaysSource = "allow-always"

    public init(id: String? = nil, pattern: String, lastUsedAt: Int64? = nil, lastUsedCommand: String? = nil,
                lastResolvedPath: String? = nil, source: String? = nil, argPattern: String? = nil) {
        self.argPattern = argPattern
        self.id = id
        self.pattern = pattern
        self.lastUsedAt = lastUsedAt
        self.lastUsedCommand = lastUsedCommand
        self.lastResolvedPath = lastResolvedPath
        self.source = source
    }

    /// Upstream `coerceAllowlistEntries` + `ensureAllowlistIds`: a string item becomes
    /// `{pattern}` (trimmed); an object needs a non-blank string `pattern` (kept verbatim, as
    /// upstream does); everything else is dropped. A missing or non-string id gets a new one.
    init?(normalizing item: JSONValue, makeID: () -> String) {
        switch item {
        case let .string(text):
            let pattern = text.trimmingWhitespace()
            guard !pattern.isEmpty else { return nil }
            self.init(id: makeID(), pattern: pattern)
        case let .object(fields):
            guard let pattern = fields["pattern"]?.stringValue, !pattern.trimmingWhitespace().isEmpty else { return nil }
            let id = fields["id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? makeID()
            self.init(id: id, pattern: pattern,
                      lastUsedAt: fields["lastUsedAt"]?.numberValue.flatMap { Int64(exactly: $0.rounded(.down)) },
                      lastUsedCommand: fields["lastUsedCommand"]?.stringValue,
                      lastResolvedPath: fields["lastResolvedPath"]?.stringValue,
                      source: fields["source"]?.stringValue, argPattern: fields["argPattern"]?.stringValue)
        default:
            return nil
        }
    }

    public var jsonValue: JSONValue {
        var object: [String: JSONValue] = ["pattern": .string(pattern)]
        object["id"] = id.map(JSONValue.string)
        object["lastUsedAt"] = lastUsedAt.map { .number(Double($0)) }
        object["lastUsedCommand"] = lastUsedCommand.map(JSONValue.string)
        object["lastResolvedPath"] = lastResolvedPath.map(JSONValue.string)
        object["source"] = source.map(JSONValue.string)
        object["argPattern"] = argPattern.map(JSONValue.string)
        return .object(object)
    }
}

/// The policy of one agent (or of `defaults`, which never carries an allowlist). Every
/// field is optional: unset means "inherit" along the resolution chain.
public struct AgentApprovals: Equatable, Sendable {
    public var security: ExecSecurity?
    public var ask: ExecAsk?
    public var askFallback: AskFallback?
    public var autoAllowSkills: Bool?
    public var allowlist: [AllowlistEntry]?

    public init(security: ExecSecurity? = nil, ask: ExecAsk? = nil, askFallback: AskFallback? = nil,
                autoAllowSkills: Bool? = nil, allowlist: [AllowlistEntry]? = nil) {
        self.security = security
        self.ask = ask
        self.askFallback = askFallback
        self.autoAllowSkills = autoAllowSkills
        self.allowlist = allowlist
    }

    /// Invalid enum values fail closed (`deny`, ask `always`); a non-boolean `autoAllowSkills` is
    /// unset (it only ever widens).
    init(normalizing fields: [String: JSONValue], withAllowlist: Bool, makeID: () -> String) {
        security = ExecSecurity(field: fields["security"])
        ask = ExecAsk(field: fields["ask"])
        askFallback = AskFallback(field: fields["askFallback"])
        autoAllowSkills = fields["autoAllowSkills"]?.boolValue
        guard withAllowlist, let items = fields["allowlist"]?.arrayValue else { return }
        let entries = items.compactMap { AllowlistEntry(normalizing: $0, makeID: makeID) }
        // Upstream keeps an empty list as it was, but a list emptied by dropping items becomes unset.
        allowlist = entries.isEmpty && !items.isEmpty ? nil : entries
    }

    /// Upstream `mergeLegacyAgent`: this agent's fields win, the legacy agent fills the gaps,
    /// and allowlists are concatenated keeping the first entry per trimmed, lower-cased pattern.
    func merging(legacy: AgentApprovals) -> AgentApprovals {
        var seen = Set<String>()
        let merged = ((allowlist ?? []) + (legacy.allowlist ?? [])).filter { entry in
            seen.insert(entry.pattern.trimmingWhitespace().lowercased()).inserted
        }
        return AgentApprovals(security: security ?? legacy.security, ask: ask ?? legacy.ask,
                              askFallback: askFallback ?? legacy.askFallback,
                              autoAllowSkills: autoAllowSkills ?? legacy.autoAllowSkills,
                              allowlist: merged.isEmpty ? nil : merged)
    }

    public var jsonValue: JSONValue {
        var object: [String: JSONValue] = [:]
        object["security"] = security.map { .string($0.rawValue) }
        object["ask"] = ask.map { .string($0.rawValue) }
        object["askFallback"] = askFallback.map { .string($0.rawValue) }
        object["autoAllowSkills"] = autoAllowSkills.map(JSONValue.bool)
        object["allowlist"] = allowlist.map { .array($0.map(\.jsonValue)) }
        return .object(object)
    }
}

/// `exec-approvals.json` after normalisation (`normalizeExecApprovals`). Values of this type
/// only hold valid enum values, allowlist entries with ids, trimmed non-empty socket fields,
/// and no legacy `agents.default`; encoding omits absent fields (never `null`).
public struct ExecApprovalsFile: Equatable, Sendable {
    /// The `socket` block. Only the macOS companion listens there; Linux still keeps the token
    /// so a file moved between hosts round-trips, and it must never leave the node.
    public struct Socket: Equatable, Sendable {
        public var path: String?
        public var token: String?

        public init(path: String? = nil, token: String? = nil) {
            self.path = path
            self.token = token
        }
    }

    public static let agentMain = "main"
    public static let agentWildcard = "*"
    static let legacyAgentDefault = "default"

    /// Always 1: a file with another version is read as `empty`.
    public var version: Int { 1 }
    public var socket: Socket?
    public var defaults: AgentApprovals?
    public var agents: [String: AgentApprovals]?

    public init(socket: Socket? = nil, defaults: AgentApprovals? = nil, agents: [String: AgentApprovals]? = nil) {
        self.socket = socket
        self.defaults = defaults
        self.agents = agents
    }

    /// What a missing file, or a file whose `version` is not 1, stands for. Like upstream it
    /// carries `defaults: {}` and `agents: {}`, so a rewritten file shows both keys.
    public static let empty = ExecApprovalsFile(defaults: AgentApprovals(), agents: [:])

    /// A fresh lower-case UUID v4, the id format upstream's `crypto.randomUUID()` produces.
    public static func randomID() -> String { RandomID.uuid() }

    /// Normalises parsed JSON. `requireVersion` is true for the file on disk (a version other
    /// than the number 1, or a non-object, gives `empty`) and false for a `set` payload, which
    /// upstream normalises without looking at `version`.
    public init(normalizing json: JSONValue, requireVersion: Bool = true, makeID: () -> String = ExecApprovalsFile.randomID) {
        guard let root = json.objectValue, !requireVersion || root["version"]?.numberValue == 1 else {
            self = .empty
            return
        }
        let path = root["socket"]?["path"]?.stringValue?.trimmingWhitespace() ?? ""
        let token = root["socket"]?["token"]?.stringValue?.trimmingWhitespace() ?? ""
        socket = path.isEmpty && token.isEmpty
            ? nil : Socket(path: path.isEmpty ? nil : path, token: token.isEmpty ? nil : token)
        defaults = AgentApprovals(normalizing: root["defaults"]?.objectValue ?? [:], withAllowlist: false, makeID: makeID)
        var agents: [String: AgentApprovals] = [:]
        // Sorted so generated ids are assigned in a stable order (deterministic tests).
        for (key, value) in (root["agents"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let fields = value.objectValue else { continue }
            agents[key] = AgentApprovals(normalizing: fields, withAllowlist: true, makeID: makeID)
        }
        if let legacy = agents.removeValue(forKey: Self.legacyAgentDefault) {
            agents[Self.agentMain] = agents[Self.agentMain]?.merging(legacy: legacy) ?? legacy
        }
        self.agents = agents
    }

    public var jsonValue: JSONValue {
        var object: [String: JSONValue] = ["version": .number(Double(version))]
        if let socket {
            var fields: [String: JSONValue] = [:]
            fields["path"] = socket.path.map(JSONValue.string)
            fields["token"] = socket.token.map(JSONValue.string)
            object["socket"] = .object(fields)
        }
        object["defaults"] = defaults?.jsonValue
        object["agents"] = agents.map { .object($0.mapValues(\.jsonValue)) }
        return .object(object)
    }
}
