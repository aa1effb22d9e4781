import OpenClawIPC

/// Why a `system.run` was denied, as the operator and the agent need it (issue 19; upstream's
/// loudest complaint: "SYSTEM_RUN_DENIED and nobody can tell why"). The error text stays
/// upstream's exactly; the reason code, the policy values that produced the denial and one
/// remedy line travel beside it: in `exec.denied`, in the failed result's `payloadJSON`, in
/// the log line, in `status --json` (the last denials) and from `approvals explain`.
public struct ExecDenial: Equatable, Sendable {
    /// The stable code (`exec.denied`'s `reason`, the denial metric's label).
    public var reason: String
    /// upstream's error text (`SYSTEM_RUN_DENIED: …`).
    public var message: String
    public var policy: Policy
    /// What to do about it, in one line.
    public var remedy: String

    /// The effective policy, and where it came from.
    public struct Policy: Equatable, Sendable {
        public var security: ExecSecurity
        public var ask: ExecAsk
        public var askFallback: AskFallback
        /// The exec-approvals.json agent entry that applied (`main`, an agent id; `*` entries
        /// and the defaults are merged into it).
        public var agent: String
        /// The request came as the gateway's ask fallback (`approvalSource: "ask-fallback"`):
        /// `askFallback` capped the security and nobody was asked.
        public var askFallbackApplied: Bool

        public var json: JSONValue {
            .object(["security": .string(security.rawValue), "ask": .string(ask.rawValue), "askFallback": .string(askFallback.rawValue),
                     "agent": .string(agent), "askFallbackApplied": .bool(askFallbackApplied)])
        }
    }

    public var json: JSONValue {
        .object(["reason": .string(reason), "message": .string(message), "policy": policy.json, "remedy": .string(remedy)])
    }

    /// The log line's fields.
    public var metadata: [String: String] {
        ["reason": reason, "security": policy.security.rawValue, "ask": policy.ask.rawValue,
         "askFallback": policy.askFallback.rawValue, "agent": policy.agent, "remedy": remedy]
    }

    /// What the operator runs (or changes) for each reason. `subject` is the program the
    /// allowlist missed (its resolved path when known); `node` names this node on the gateway.
    /// `word` as one POSIX shell word: bare when it holds only characters no shell treats
    /// specially, else in single quotes (a `'` inside written `'\''`).
    static func shellWord(_ word: String) -> String {
        let plain = !word.isEmpty && word.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || "_./:@%+=,-".utf8.contains(byte)
        }
        return plain ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: #"'\''"#) + "'"
    }

    static func remedy(reason: String, policy: Policy, subject: String?, blocked: String?, node: String) -> String {
        // Every word an operator may paste into a shell is quoted for it (a program's path or a
        // node's name can hold `$(…)`, a space or a quote).
        let agentFlag = policy.agent == "main" ? "" : " --agent \(shellWord(policy.agent))"
        let node = shellWord(node)
        switch reason {
        case ExecPolicy.Reason.securityDeny where policy.askFallbackApplied, ExecPolicy.Reason.approvalRequired where policy.askFallbackApplied:
            return "askFallback=\(policy.askFallback.rawValue) applied: no operator approval was reachable; approve the command on the "
                + "gateway when asked, allowlist it, or set askFallback for agent \(policy.agent) in exec-approvals.json"
        case ExecPolicy.Reason.securityDeny:
            return "security=deny applies to agent \(policy.agent): allow commands by setting security to allowlist (or full) for it "
                + "(openclaw approvals set --node \(node)\(agentFlag) …, or exec-approvals.json on the node)"
        case ExecPolicy.Reason.approvalRequired:
            return "ask=\(policy.ask.rawValue) needs an operator's approval for this command: approve it on the gateway (allow-once or "
                + "allow-always)" + (subject.map { ", or add an allowlist entry: openclaw approvals allowlist add --node \(node)\(agentFlag) \(shellWord($0))" } ?? "")
        case ExecPolicy.Reason.allowlistMiss:
            return subject.map { "add an allowlist entry for \($0): openclaw approvals allowlist add --node \(node)\(agentFlag) \(shellWord($0))" }
                ?? "add an allowlist entry for the program (openclaw approvals allowlist add --node \(node)\(agentFlag) \"<path>\"), or approve the command"
        case ExecPolicy.Reason.unsupportedShellSyntax:
            return "the allowlist cannot analyse this shell command\(blocked.map { " (\($0))" } ?? ""): run the program directly "
                + "(argv, no shell), or have the command approved (ask=on-miss or always)"
        case ExecPolicy.Reason.executionPlanMiss:
            return "the allowlisted command could not be bound to one program to run: run it directly (argv), or have it approved"
        case ExecPolicy.Reason.screenRecording:
            return "a headless Linux node has no screen-recording permission: run the command without needsScreenRecording"
        case ExecPolicy.Reason.approvalStateWriteFailed:
            return "the node could not write exec-approvals.json: check its owner, mode and free space (openclaw-node doctor)"
        default:
            return "see the node's log and openclaw-node approvals explain -- <argv>"
        }
    }
}

/// The last denials, newest first, for `status --json` (`node.lastDenials`): what an operator
/// reads to see why an agent's command did not run. Bounded; used on the event loop only.
public final class DenialLog: @unchecked Sendable {
    public static let capacity = 10
    public private(set) var recent: [JSONValue] = []

    public init() {}

    func record(_ denial: ExecDenial, runId: String, command: String, at ms: Int64) {
        guard case var .object(entry) = denial.json else { return }
        entry["runId"] = .string(runId)
        entry["command"] = .string(String(command.prefix(300)))
        entry["atMs"] = .number(Double(ms))
        recent.insert(.object(entry), at: 0)
        if recent.count > Self.capacity { recent.removeLast() }
    }
}
