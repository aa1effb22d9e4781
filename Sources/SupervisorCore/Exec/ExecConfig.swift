import OpenClawIPC

/// The exec settings of `openclaw.json` the node applies on top of `exec-approvals.json`
/// (`tools.exec.*`, per agent `agents.list[].tools.exec.*`). An invalid `security` or `ask` fails
/// closed (`deny`, `always`); `ConfigCheck` reports it.
public struct ExecConfig: Sendable {
    public var security: ExecSecurity?
    public var ask: ExecAsk?
    public var safeBins: Set<String>
    public var safeBinTrustedDirs: [String]
    /// Interpreter inline code (`python -c`, `node -e`) always needs explicit approval under
    /// an allowlist. On by default here (upstream's default is off): see docs/security.md.
    public var strictInlineEval: Bool

    public init(security: ExecSecurity? = nil, ask: ExecAsk? = nil, safeBins: Set<String> = SafeBinPolicy.default.bins,
                safeBinTrustedDirs: [String] = [], strictInlineEval: Bool = true) {
        self.security = security
        self.ask = ask
        self.safeBins = safeBins
        self.safeBinTrustedDirs = safeBinTrustedDirs
        self.strictInlineEval = strictInlineEval
    }

    /// Settings for `agentId` (an `agents.list` entry's `tools.exec` wins over `tools.exec`).
    public static func from(_ config: OpenClawConfig, agentId: String?) -> ExecConfig {
        var scopes: [JSONValue] = []
        if let global = config.value("tools.exec") { scopes.append(global) }
        if let agents = config.value("agents.list")?.arrayValue,
           let agent = agents.first(where: { $0["id"]?.stringValue == (agentId ?? "main") }),
           let exec = agent["tools"]?["exec"] {
            scopes.append(exec)
        }
        var result = ExecConfig()
        for scope in scopes {
            if let value = ExecSecurity(field: scope["security"]) { result.security = value }
            if let value = ExecAsk(field: scope["ask"]) { result.ask = value }
            if let bins = scope["safeBins"]?.arrayValue { result.safeBins = Set(bins.compactMap(\.stringValue)) }
            if let dirs = scope["safeBinTrustedDirs"]?.arrayValue { result.safeBinTrustedDirs = dirs.compactMap(\.stringValue) }
            if let strict = scope["strictInlineEval"]?.boolValue { result.strictInlineEval = strict }
        }
        return result
    }

    public var safeBinPolicy: SafeBinPolicy {
        var policy = SafeBinPolicy.default
        policy.bins = safeBins
        policy.trustedDirs += safeBinTrustedDirs
        return policy
    }
}
