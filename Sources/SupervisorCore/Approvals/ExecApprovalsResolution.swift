/// The built-in end of the resolution chain, used for a field no layer of the file sets.
/// Upstream changed these over time (spec §5.1), so they are configurable; `.node` is this
/// port's decision for a node with no file (design §6).
public struct ExecApprovalDefaults: Equatable, Sendable {
    public var security: ExecSecurity
    public var ask: ExecAsk
    public var askFallback: AskFallback
    public var autoAllowSkills: Bool

    public init(security: ExecSecurity, ask: ExecAsk, askFallback: AskFallback, autoAllowSkills: Bool) {
        self.security = security
        self.ask = ask
        self.askFallback = askFallback
        self.autoAllowSkills = autoAllowSkills
    }

    /// Mid-era node host with no config: allowlist / on-miss / deny / false.
    public static let node = ExecApprovalDefaults(security: .allowlist, ask: .onMiss, askFallback: .deny, autoAllowSkills: false)
    /// Newer upstream (`DEFAULT_SECURITY = "full"`, `DEFAULT_ASK = "off"`).
    public static let newer = ExecApprovalDefaults(security: .full, ask: .off, askFallback: .deny, autoAllowSkills: false)
}

/// An allowlist entry together with the agent key whose list holds it, so usage bookkeeping
/// writes back to the list the entry came from (`"*"` or the agent's own).
public struct ResolvedAllowlistEntry: Equatable, Sendable {
    public var agentKey: String
    public var entry: AllowlistEntry

    public init(agentKey: String, entry: AllowlistEntry) {
        self.agentKey = agentKey
        self.entry = entry
    }
}

/// The effective policy of one agent. Every field is decided; `allowlist` is the
/// `agents."*"` entries followed by the agent's own entries.
public struct ResolvedExecApprovals: Equatable, Sendable {
    public var agentKey: String
    public var security: ExecSecurity
    public var ask: ExecAsk
    public var askFallback: AskFallback
    public var autoAllowSkills: Bool
    public var allowlist: [ResolvedAllowlistEntry]
    /// Why the file on disk could not be used; the policy is then deny-all. Nil otherwise.
    public var problem: String?

    public init(agentKey: String, security: ExecSecurity, ask: ExecAsk, askFallback: AskFallback,
                autoAllowSkills: Bool, allowlist: [ResolvedAllowlistEntry], problem: String? = nil) {
        self.agentKey = agentKey
        self.security = security
        self.ask = ask
        self.askFallback = askFallback
        self.autoAllowSkills = autoAllowSkills
        self.allowlist = allowlist
        self.problem = problem
    }

    /// Upstream's fallback when the file cannot be read: nothing runs and nothing is
    /// resolved by fallback, whatever the built-in defaults say.
    public static func denyAll(agentKey: String, problem: String?) -> ResolvedExecApprovals {
        ResolvedExecApprovals(agentKey: agentKey, security: .deny, ask: .always, askFallback: .deny,
                              autoAllowSkills: false, allowlist: [], problem: problem)
    }

    /// The file key for an agent id: trimmed, and `main` when nil or blank.
    public static func agentKey(for agentId: String?) -> String {
        let trimmed = agentId?.trimmingWhitespace() ?? ""
        return trimmed.isEmpty ? ExecApprovalsFile.agentMain : trimmed
    }
}

extension ExecApprovalsFile {
    /// Each field comes from `agents.<id>`, else `agents."*"`, else `defaults`, else `builtIn`.
    public func resolve(agentId: String?, builtIn: ExecApprovalDefaults = .node) -> ResolvedExecApprovals {
        let key = ResolvedExecApprovals.agentKey(for: agentId)
        let agent = agents?[key]
        let wildcard = agents?[Self.agentWildcard]
        let layers = [agent, wildcard, defaults].compactMap { $0 }
        func first<T>(_ field: (AgentApprovals) -> T?) -> T? { layers.lazy.compactMap(field).first }

        var allowlist = (wildcard?.allowlist ?? []).map { ResolvedAllowlistEntry(agentKey: Self.agentWildcard, entry: $0) }
        // Agent id "*" would otherwise list the wildcard entries twice.
        if key != Self.agentWildcard {
            allowlist += (agent?.allowlist ?? []).map { ResolvedAllowlistEntry(agentKey: key, entry: $0) }
        }
        return ResolvedExecApprovals(
            agentKey: key,
            security: first(\.security) ?? builtIn.security,
            ask: first(\.ask) ?? builtIn.ask,
            askFallback: first(\.askFallback) ?? builtIn.askFallback,
            autoAllowSkills: first(\.autoAllowSkills) ?? builtIn.autoAllowSkills,
            allowlist: allowlist)
    }
}
