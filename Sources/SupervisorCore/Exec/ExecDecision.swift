import OpenClawIPC
import NodeSupport

/// The decision for one `system.run` (node-host.md §3.5), as a pure function of what the
/// handler has already resolved: validation (`INVALID_REQUEST`), then policy (a denial), then
/// the exact run to order together with the approvals writes that go with it.
///
/// Guarantees:
/// - `decide` reads no file, writes nothing, asks no clock: the same input gives the same
///   verdict. The files were probed before (`AllowlistEvaluation`, `ApprovedRun.verify`), and
///   the writes are returned as `ApprovalsEffect`s for the caller to apply once the run is
///   accepted.
/// - Checks fail in this order: the approval binding, the env overrides, the env assignments
///   in the command, an approval without a verified run, the policy (`ExecPolicy`), the
///   execution plan.
/// - What runs is the approved plan's argv, the planned argv the allowlist matched, or, under
///   `full`, the request's argv; always in the cwd the analysis resolved its words in.
enum ExecDecision {
    struct Input {
        var request: SystemRunRequest
        /// What `ApprovedRun.verify` re-derived for a request with an approval; nil otherwise.
        var approved: ApprovedRun?
        /// `openclaw.json`'s `tools.exec` settings for the request's agent.
        var settings: ExecConfig
        /// `exec-approvals.json`'s policy for the request's agent.
        var approvals: ResolvedExecApprovals
        /// The allowlist analysis of `request.command` against `approvals.allowlist`, in
        /// `request.cwd ?? defaultCwd`.
        var evaluation: AllowlistEvaluation
        /// Where a command without a cwd runs.
        var defaultCwd: String
        var environment: ExecEnvironment
        /// Milliseconds since the epoch, stamped by the approvals effects.
        var now: Int64
        /// A fresh id: the order's id is `runId/newId`.
        var newId: String
        /// This node's name on the gateway, for the remedy of a denial.
        var nodeName: String = "<node>"
    }

    enum Verdict: Equatable {
        /// Run `order` once `effects` are written, in their order.
        case run(RunOrder, effects: [ApprovalsEffect])
        /// Denied: `denial.reason` goes into `exec.denied` and the denial metric,
        /// `denial.message` is the `UNAVAILABLE` error text; the policy and remedy go with them.
        case denied(ExecDenial)
    }

    /// The verdict, or the `INVALID_REQUEST` error of a request that cannot be decided.
    static func decide(_ input: Input) -> Result<Verdict, WireError> {
        func invalid(_ message: String) -> Result<Verdict, WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: message))
        }
        let (request, settings, resolved, evaluation) = (input.request, input.settings, input.approvals, input.evaluation)
        if let error = requestError(request) { return .failure(error) }
        // `env NAME=VALUE cmd`, at the top or inside a shell payload, is an env override too.
        var assignments: [String] = []
        if case let .plain(_, _, top) = DispatchWrappers.unwrap(request.command) { assignments += top.map(\.key) }
        assignments += evaluation.segments.flatMap { $0.envAssignments.map(\.key) }
        if let message = ExecEnvironment.inspectAssignments(Array(Set(assignments)).sorted()) {
            return invalid(message)
        }
        var security = min(settings.security ?? resolved.security, resolved.security)
        var ask = max(settings.ask ?? resolved.ask, resolved.ask)
        if request.askFallback {
            security = min(security, resolved.askFallback)
            ask = .off
        }

        if request.approvedByAsk, input.approved == nil { return invalid("systemRunPlan invalid") }
        // Explicit, so the command runs where the analysis resolved its words.
        let cwd = input.approved?.cwd ?? request.cwd ?? input.defaultCwd

        let inlineEval = InlineEval.detect(request.command)
        let durable = durableApproval(evaluation, allowlist: resolved.allowlist, commandText: request.commandText)
        let exactGrant = hasExactCommandGrant(resolved.allowlist, commandText: request.commandText)
        let decision = ExecPolicy.decide(ExecPolicy.Input(
            security: security, ask: ask, approvedByAsk: request.approvedByAsk,
            analysisOk: evaluation.analysisOk, allowlistSatisfied: evaluation.allowlistSatisfied,
            needsScreenRecording: request.needsScreenRecording, inlineEval: inlineEval,
            strictInlineEval: settings.strictInlineEval, durableApprovalSatisfied: durable,
            shellWrapper: ShellWrapper.detect(request.command) != nil
        ))
        let policy = ExecDenial.Policy(security: security, ask: ask, askFallback: resolved.askFallback, agent: resolved.agentKey,
                                       askFallbackApplied: request.askFallback)
        func denial(_ reason: String, _ message: String) -> Result<Verdict, WireError> {
            let missed = evaluation.segments.first { !$0.satisfied }
            // The program the allowlist missed, when it was found (never a word the shell would expand).
            let subject = missed?.resolvedPath
            return .success(.denied(ExecDenial(reason: reason, message: message, policy: policy,
                                               remedy: ExecDenial.remedy(reason: reason, policy: policy, subject: subject,
                                                                         blocked: evaluation.blockedReason, node: input.nodeName))))
        }
        if case let .deny(reason, message) = decision { return denial(reason, message) }

        // What exactly runs: the approved plan, the planned argv the allowlist matched, the
        // request under a grant of its exact text, or the request as sent under `full`. (Segment
        // grants bind the planned argv only: without one the request is not run as sent.)
        var argv = request.command
        if security == .allowlist, !request.approvedByAsk, !(exactGrant && evaluation.executionArgv == nil) {
            guard let planned = evaluation.executionArgv else {
                return denial(ExecPolicy.Reason.executionPlanMiss, "SYSTEM_RUN_DENIED: execution plan mismatch")
            }
            argv = planned
        }

        var effects: [ApprovalsEffect] = []
        // A materialised inline-eval script lives in a folder the command's user can write: a
        // grant naming it would admit whatever is written there later, so it is approved once.
        let inlineEvalScript = request.plan?.mutableFileOperand.map { InlineEvalScript.isMaterialized($0.path) } ?? false
        if request.approvalDecision == .allowAlways, security == .allowlist, !(settings.strictInlineEval && inlineEval != nil),
           !inlineEvalScript {
            if evaluation.analysisOk, let grants = evaluation.allowAlwaysGrants, !grants.isEmpty {
                effects.append(.allowAlways(agentId: request.agentId ?? "main", grants: grants, now: input.now))
            } else {
                // Nothing a pattern can say (the analysis failed): the exact command is remembered.
                let exact = AllowlistRule(pattern: exactCommandPattern(request.commandText), generated: true)
                effects.append(.allowAlways(agentId: request.agentId ?? "main", grants: [exact], now: input.now))
            }
        }
        if security == .allowlist {
            for segment in evaluation.segments {
                guard let pattern = segment.matchedPattern,
                      let owner = resolved.allowlist.first(where: { $0.entry.pattern == pattern && $0.entry.argPattern == segment.matchedArgPattern })
                else { continue }
                effects.append(.recordUse(agentKey: owner.agentKey, id: owner.entry.id, pattern: pattern,
                                          command: request.commandText, resolvedPath: segment.resolvedPath, now: input.now))
            }
        }

        let env = input.environment.childEnvironment(overrides: request.env, shellWrapper: ShellWrapper.detect(request.command) != nil,
                                                     context: request.executionContext?.environment ?? [:])
        let order = RunOrder(
            id: request.runId + "/" + input.newId, argv: argv, cwd: cwd, env: env, timeoutMs: request.timeoutMs,
            maxOutputBytes: SystemRunHandler.outputCap, expectCwd: input.approved?.cwdIdentity, expectOperand: input.approved?.operand
        )
        return .success(.run(order, effects: effects))
    }

    /// The durable allow-always grant for an exact command: `=command:` and the SHA-256 of the
    /// trimmed command text. upstream keeps only its first 16 hex digits; 64 bits let an agent
    /// find two commands sharing them (about 2^32 tries) and have the harmless one approved, so
    /// the whole digest is written and only the whole digest matches (an upstream short grant
    /// is a miss here: the operator is asked again).
    static func exactCommandPattern(_ commandText: String) -> String {
        "=command:" + FileDigest.sha256Hex(bytes: Array(commandText.trimmingWhitespace().utf8))
    }

    /// An allow-always grant of exactly this command text.
    static func hasExactCommandGrant(_ allowlist: [ResolvedAllowlistEntry], commandText: String) -> Bool {
        let exact = exactCommandPattern(commandText)
        return allowlist.contains { $0.entry.source == AllowlistEntry.allowAlwaysSource && $0.entry.pattern == exact }
    }

    /// upstream's `hasDurableExecApproval`: an allow-always grant of the exact command, or
    /// allow-always entries behind every segment of an analysed command.
    static func durableApproval(_ evaluation: AllowlistEvaluation, allowlist: [ResolvedAllowlistEntry], commandText: String) -> Bool {
        if hasExactCommandGrant(allowlist, commandText: commandText) { return true }
        let grants = allowlist.filter { $0.entry.source == AllowlistEntry.allowAlwaysSource }
        guard evaluation.analysisOk, !evaluation.segments.isEmpty else { return false }
        return evaluation.segments.allSatisfy { segment in
            guard let pattern = segment.matchedPattern else { return false }
            return grants.contains { $0.entry.pattern == pattern && $0.entry.argPattern == segment.matchedArgPattern }
        }
    }

    /// What is wrong with a request before any file is looked at: an approval that does not
    /// bind it, or env overrides that are refused.
    static func requestError(_ request: SystemRunRequest) -> WireError? {
        request.checkApprovalBinding() ?? environmentError(request)
    }

    /// Overrides the env policy refuses, and overrides an approval does not bind.
    static func environmentError(_ request: SystemRunRequest) -> WireError? {
        let message = ExecEnvironment.inspect(request.env)?.message
            ?? (request.approvedByAsk ? ExecEnvironment.inspectApproved(request.env) : nil)
        return message.map { WireError(code: "INVALID_REQUEST", message: $0) }
    }
}
