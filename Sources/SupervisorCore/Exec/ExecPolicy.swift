/// The decision for one `system.run` (node-host.md §3.5 `evaluateSystemRunPolicy`), as a
/// pure function of the effective policy, the allowlist analysis and the approval.
public enum ExecPolicy {
    /// Every reason a `system.run` is denied for (`exec.denied`'s `reason`, the denial metric's label).
    public enum Reason {
        public static let securityDeny = "security=deny"
        public static let screenRecording = "permission:screenRecording"
        public static let approvalRequired = "approval-required"
        public static let allowlistMiss = "allowlist-miss"
        /// Allowlist mode, no approval, and the shell command could not be analysed.
        public static let unsupportedShellSyntax = "unsupported-shell-syntax"
        public static let executionPlanMiss = "execution-plan-miss"
        public static let approvalStateWriteFailed = "approval-state-write-failed"
        public static let all = [securityDeny, screenRecording, approvalRequired, allowlistMiss, unsupportedShellSyntax,
                                 executionPlanMiss, approvalStateWriteFailed]
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
        /// An allow-always grant covers the command (upstream's `hasDurableExecApproval`): it
        /// satisfies an allowlist miss and an on-miss ask, never `ask=always`.
        public var durableApprovalSatisfied: Bool
        /// The command is a POSIX shell wrapper (`sh -c …`): an allowlist miss says approval is
        /// the way for those.
        public var shellWrapper: Bool

        public init(security: ExecSecurity, ask: ExecAsk, approvedByAsk: Bool, analysisOk: Bool, allowlistSatisfied: Bool,
                    needsScreenRecording: Bool = false, inlineEval: String? = nil, strictInlineEval: Bool = true,
                    durableApprovalSatisfied: Bool = false, shellWrapper: Bool = false) {
            self.durableApprovalSatisfied = durableApprovalSatisfied
            self.shellWrapper = shellWrapper
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

    /// upstream's allowlist-miss text for a POSIX shell wrapper.
    public static let shellWrapperMissMessage = "SYSTEM_RUN_DENIED: allowlist miss (shell wrappers like sh/bash/zsh -c require approval; "
        + "approve once/always or run with --ask on-miss|always)"

    public static func decide(_ input: Input) -> Decision {
        if input.security == .deny {
            return .deny(reason: Reason.securityDeny, message: "SYSTEM_RUN_DISABLED: security=deny")
        }
        // The allowlist only ever looks at the interpreter: inline code behind an allowlisted
        // `python3` would otherwise run unreviewed (attack class 12). `full` opts out of review.
        if input.strictInlineEval, input.security == .allowlist, let eval = input.inlineEval, !input.approvedByAsk {
            return .deny(reason: Reason.approvalRequired,
                         message: "SYSTEM_RUN_DENIED: approval required (\(eval) requires explicit approval in strictInlineEval mode)")
        }
        let satisfied = input.security == .allowlist && input.analysisOk && input.allowlistSatisfied
        let durable = input.durableApprovalSatisfied
        let requiresAsk = input.ask == .always || (!durable && input.ask == .onMiss && input.security == .allowlist && !satisfied)
        if requiresAsk, !input.approvedByAsk {
            return .deny(reason: Reason.approvalRequired, message: "SYSTEM_RUN_DENIED: approval required")
        }
        if input.security == .allowlist, !satisfied, !input.approvedByAsk, !durable {
            // upstream-2026 §1.5: shell syntax the analysis cannot follow is its own reason.
            if !input.analysisOk {
                return .deny(reason: Reason.unsupportedShellSyntax, message: "SYSTEM_RUN_DENIED: unsupported shell syntax")
            }
            return .deny(reason: Reason.allowlistMiss,
                         message: input.shellWrapper ? shellWrapperMissMessage : "SYSTEM_RUN_DENIED: allowlist miss")
        }
        if input.needsScreenRecording {
            // A headless Linux host never has the screen-recording permission (checked last, as upstream).
            return .deny(reason: Reason.screenRecording, message: "PERMISSION_MISSING: screenRecording")
        }
        return .allow
    }
}
