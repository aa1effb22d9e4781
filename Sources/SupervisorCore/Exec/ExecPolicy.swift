/// The decision for one `system.run` (node-host.md §3.5 `evaluateSystemRunPolicy`), as a
/// pure function of the effective policy, the allowlist analysis and the approval.
public enum ExecPolicy {
    /// Every reason a `system.run` is denied for (`exec.denied`'s `reason`, the denial metric's label).
    public enum Reason {
        public static let securityDeny = "security=deny"
        public static let screenRecording = "permission:screenRecording"
        public static let approvalRequired = "approval-required"
        public static let allowlistMiss = "allowlist-miss"
        public static let executionPlanMiss = "execution-plan-miss"
        public static let approvalStateWriteFailed = "approval-state-write-failed"
        public static let all = [securityDeny, screenRecording, approvalRequired, allowlistMiss, executionPlanMiss,
                                 approvalStateWriteFailed]
    }

    public enum Decision: Equatable, Sendable {
        case allow
        /// `reason` goes into `exec.denied`; `message` is the `UNAVAILABLE` error text.
        case deny(reason: String, message: String)
    }

    public struct Input: Sendable {
        public var security: ExecSecurity
        public var ask: ExecAsk
        public var approvedByAsk: Bool
        public var analysisOk: Bool
        public var allowlistSatisfied: Bool
        public var needsScreenRecording: Bool
        /// "python3 -c" etc. when the command evaluates inline code.
        public var inlineEval: String?
        public var strictInlineEval: Bool

        public init(security: ExecSecurity, ask: ExecAsk, approvedByAsk: Bool, analysisOk: Bool, allowlistSatisfied: Bool,
                    needsScreenRecording: Bool = false, inlineEval: String? = nil, strictInlineEval: Bool = true) {
            self.security = security
            self.ask = ask
            self.approvedByAsk = approvedByAsk
            self.analysisOk = analysisOk
            self.allowlistSatisfied = allowlistSatisfied
            self.needsScreenRecording = needsScreenRecording
            self.inlineEval = inlineEval
            self.strictInlineEval = strictInlineEval
        }
    }

    public static func decide(_ input: Input) -> Decision {
        if input.security == .deny {
            return .deny(reason: Reason.securityDeny, message: "SYSTEM_RUN_DISABLED: security=deny")
        }
        if input.needsScreenRecording {
            // A headless Linux host never has the screen-recording permission.
            return .deny(reason: Reason.screenRecording, message: "PERMISSION_MISSING: screenRecording")
        }
        // The allowlist only ever looks at the interpreter: inline code behind an allowlisted
        // `python3` would otherwise run unreviewed (attack class 12). `full` opts out of review.
        if input.strictInlineEval, input.security == .allowlist, let eval = input.inlineEval, !input.approvedByAsk {
            return .deny(reason: Reason.approvalRequired,
                         message: "SYSTEM_RUN_DENIED: approval required (\(eval) requires explicit approval in strictInlineEval mode)")
        }
        let satisfied = input.security == .allowlist && input.analysisOk && input.allowlistSatisfied
        let requiresAsk = input.ask == .always || (input.ask == .onMiss && input.security == .allowlist && !satisfied)
        if requiresAsk, !input.approvedByAsk {
            return .deny(reason: Reason.approvalRequired, message: "SYSTEM_RUN_DENIED: approval required")
        }
        if input.security == .allowlist, !satisfied, !input.approvedByAsk {
            return .deny(reason: Reason.allowlistMiss, message: "SYSTEM_RUN_DENIED: allowlist miss")
        }
        return .allow
    }
}
