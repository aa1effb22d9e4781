import FoundationEssentials
import Glibc
import Logging
import OpenClawIPC

/// Where authorised runs go: the Supervisor's ExecWorker dispatcher. (Events travel with the
/// result, in `InvokeOutput`.)
public protocol ExecRunner: AnyObject {
    /// Queues `order`; nil when accepted (the completion then runs exactly once).
    func run(_ order: RunOrder, completion: @escaping (Result<RunOutcome, WireError>) -> Void) -> WireError?
}

/// `system.run.prepare` and `system.run`: every policy decision is made here, in the
/// Supervisor. The ExecWorker receives only a resolved argv, cwd and environment.
public final class SystemRunHandler: CommandHandler {
    public let commands = ["system.run.prepare", "system.run"]

    /// Bytes of stdout/stderr kept, per stream and combined (head kept).
    public static let outputCap = 200_000
    /// Characters of output an `exec.finished` event carries (tail kept).
    public static let eventOutputTail = 20_000

    let environment: ExecEnvironment
    let pathEnv: String
    let home: String?
    /// Where a command without a cwd runs (and where its relative words are resolved).
    let defaultCwd: String
    /// The user commands run as, when it is not the node's own: files are checked as it.
    let commandUser: (uid: uid_t, gid: gid_t)?
    let approvals: ExecApprovalsStore
    let config: OpenClawConfig
    let logger: Logger
    let clock: () -> Int64
    let newId: () -> String
    /// The ExecWorker's monitor: the only way a command starts.
    let runner: ExecRunner
    let metrics: NodeMetrics?

    public init(environment: ExecEnvironment, pathEnv: String, home: String?, defaultCwd: String? = nil,
                commandUser: (uid: uid_t, gid: gid_t)? = nil,
                approvals: ExecApprovalsStore, config: OpenClawConfig, runner: ExecRunner, metrics: NodeMetrics? = nil,
                logger: Logger,
                clock: @escaping () -> Int64 = currentTimeMillis, newId: @escaping () -> String = { RandomID.uuid() }) {
        self.runner = runner
        self.metrics = metrics
        self.defaultCwd = defaultCwd ?? ExecutableResolver.currentDirectory() ?? "/"
        self.commandUser = commandUser
        self.environment = environment
        self.pathEnv = pathEnv
        self.home = home
        self.approvals = approvals
        self.config = config
        self.logger = logger
        self.clock = clock
        self.newId = newId
    }

    public func handle(_ invoke: InvokeRequest, completion: @escaping (InvokeOutput) -> Void) {
        let fail = { [weak self] (error: WireError) -> Void in self?.reject(invoke, error, completion: completion) }
        let request: SystemRunRequest
        switch InvokeParams.object(invoke).flatMap({ SystemRunRequest.parse($0, newRunId: newId) }) {
        case let .success(parsed): request = parsed
        case let .failure(error): return fail(error)
        }
        let (pathEnv, defaultCwd) = (self.pathEnv, self.defaultCwd)
        if invoke.command == "system.run.prepare" {
            FileChecks.run(as: commandUser, { SystemRunPlan.prepare(request, pathEnv: pathEnv, defaultCwd: defaultCwd) }, timedOut: { .failure(Self.fileChecksTimedOut) }) { prepared in
                switch prepared {
                case let .success(prepared):
                    let payload = (try? JSONText.encode(JSONValue.object(["plan": prepared.plan.json]))) ?? "{}"
                    completion(InvokeOutput(result: .success(invoke, payloadJSON: payload)))
                case let .failure(error):
                    fail(error)
                }
            }
            return
        }
        guard request.approvedByAsk else { return decide(request, approved: nil, invoke: invoke, completion: completion) }
        // What needs no file is checked before the file checks, in `authorise`'s order.
        if let error = request.checkApprovalBinding() ?? Self.environmentError(request) { return fail(error) }
        FileChecks.run(as: commandUser, { ApprovedRun.verify(request, pathEnv: pathEnv, defaultCwd: defaultCwd) }, timedOut: { .failure(Self.fileChecksTimedOut) }) { [weak self] verified in
            switch verified {
            case let .success(approved): self?.decide(request, approved: approved, invoke: invoke, completion: completion)
            case let .failure(error): fail(error)
            }
        }
    }

    static let fileChecksTimedOut = WireError(code: "UNAVAILABLE", message: "SYSTEM_RUN_DENIED: the approval's file checks did not finish in time")

    func reject(_ invoke: InvokeRequest, _ error: WireError, completion: (InvokeOutput) -> Void) {
        logger.notice("\(invoke.command) rejected", metadata: ["code": "\(error.code)", "reason": "\(error.message)"])
        completion(InvokeOutput(result: .failure(invoke, code: error.code, message: error.message)))
    }

    /// Overrides the env policy refuses, and overrides an approval does not bind.
    static func environmentError(_ request: SystemRunRequest) -> WireError? {
        let message = ExecEnvironment.inspect(request.env)?.message
            ?? (request.approvedByAsk ? ExecEnvironment.inspectApproved(request.env) : nil)
        return message.map { WireError(code: "INVALID_REQUEST", message: $0) }
    }

    /// The policy decision and, when it allows the run, the order to the ExecWorker.
    func decide(_ request: SystemRunRequest, approved: ApprovedRun?, invoke: InvokeRequest,
                completion: @escaping (InvokeOutput) -> Void) {
        switch authorise(request, approved: approved) {
        case let .failure(error):
            reject(invoke, error, completion: completion)
        case let .success(.denied(reason, message)):
            logger.notice("system.run denied", metadata: ["runId": "\(request.runId)", "reason": "\(reason)"])
            metrics?.denied(reason)
            completion(InvokeOutput(events: [deniedEvent(request, reason: reason)],
                                    result: .failure(invoke, code: "UNAVAILABLE", message: message)))
        case let .success(.run(order)):
            start(order, for: request, invoke: invoke, completion: completion)
        }
    }

    enum Verdict {
        case run(RunOrder)
        case denied(reason: String, message: String)
    }

    /// Validation (`INVALID_REQUEST`) then policy (a denial), then the exact run to order.
    /// `approved` is what `ApprovedRun.verify` re-derived for a request with an approval.
    func authorise(_ request: SystemRunRequest, approved: ApprovedRun?) -> Result<Verdict, WireError> {
        func invalid(_ message: String) -> Result<Verdict, WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: message))
        }
        if let error = request.checkApprovalBinding() ?? Self.environmentError(request) { return .failure(error) }
        let settings = ExecConfig.from(config, agentId: request.agentId)
        let resolved = approvals.resolve(agentId: request.agentId)
        let evaluation = AllowlistEvaluation.evaluate(
            argv: request.command, cwd: request.cwd ?? defaultCwd, pathEnv: pathEnv, home: home,
            allowlist: resolved.allowlist.map(\.entry.pattern), safeBins: settings.safeBinPolicy, skillBins: []
        )
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

        if request.approvedByAsk, approved == nil { return invalid("systemRunPlan invalid") }
        // Explicit, so the command runs where the analysis resolved its words.
        let cwd = approved?.cwd ?? request.cwd ?? defaultCwd

        let inlineEval = InlineEval.detect(request.command)
        let decision = ExecPolicy.decide(ExecPolicy.Input(
            security: security, ask: ask, approvedByAsk: request.approvedByAsk,
            analysisOk: evaluation.analysisOk, allowlistSatisfied: evaluation.allowlistSatisfied,
            needsScreenRecording: request.needsScreenRecording, inlineEval: inlineEval,
            strictInlineEval: settings.strictInlineEval
        ))
        if case let .deny(reason, message) = decision { return .success(.denied(reason: reason, message: message)) }

        // What exactly runs: the approved plan, the planned argv the allowlist matched, or the
        // request as sent under `full`.
        var argv = request.command
        if security == .allowlist, !request.approvedByAsk {
            guard let planned = evaluation.executionArgv else {
                return .success(.denied(reason: ExecPolicy.Reason.executionPlanMiss, message: "SYSTEM_RUN_DENIED: execution plan mismatch"))
            }
            argv = planned
        }

        let now = clock()
        if request.approvalDecision == .allowAlways, security == .allowlist, evaluation.analysisOk,
           let patterns = evaluation.allowAlwaysPatterns, !(settings.strictInlineEval && inlineEval != nil) {
            do {
                try approvals.addAllowAlways(agentId: request.agentId ?? "main", patterns: patterns, now: now)
            } catch {
                logger.error("cannot persist allow-always", metadata: ["error": "\(error)"])
                return .success(.denied(reason: ExecPolicy.Reason.approvalStateWriteFailed,
                                        message: "SYSTEM_RUN_DENIED: approval state could not be persisted"))
            }
        }
        if security == .allowlist {
            for segment in evaluation.segments {
                guard let pattern = segment.matchedPattern,
                      let owner = resolved.allowlist.first(where: { $0.entry.pattern == pattern }) else { continue }
                do {
                    try approvals.recordUse(agentKey: owner.agentKey, id: owner.entry.id, pattern: pattern, command: request.commandText,
                                            resolvedPath: segment.resolvedPath, now: now)
                } catch {
                    logger.warning("cannot record allowlist use", metadata: ["error": "\(error)"])
                }
            }
        }

        let env = environment.childEnvironment(overrides: request.env, shellWrapper: ShellWrapper.detect(request.command) != nil)
        return .success(.run(RunOrder(
            id: request.runId + "/" + newId(), argv: argv, cwd: cwd, env: env, timeoutMs: request.timeoutMs,
            maxOutputBytes: Self.outputCap, expectCwd: approved?.cwdIdentity, expectOperand: approved?.operand
        )))
    }

    // MARK: Running

    func start(_ order: RunOrder, for request: SystemRunRequest, invoke: InvokeRequest,
               completion: @escaping (InvokeOutput) -> Void) {
        let refused = runner.run(order) { [weak self] result in
            guard let self else { return }
            switch result {
            case let .failure(error):
                completion(InvokeOutput(result: .failure(invoke, code: error.code, message: error.message)))
            case let .success(outcome):
                completion(self.finished(outcome, for: request, invoke: invoke))
                // Logged once the result is on its way, off the reply's critical path.
                self.logFinished(outcome, for: request)
            }
        }
        if let refused {
            logger.warning("system.run refused", metadata: ["runId": "\(request.runId)", "reason": "\(refused.message)"])
            completion(InvokeOutput(result: .failure(invoke, code: refused.code, message: refused.message)))
            return
        }
        // The audit trail a node operator reads: what runs (the exact argv handed to execve,
        // invisible characters escaped by the log writer), for whom, where.
        logger.info("system.run", metadata: [
            "runId": "\(request.runId)", "agentId": "\(request.agentId ?? "main")",
            "command": "\(String(ExecCommandText.format(order.argv).prefix(300)))", "cwd": "\(order.cwd ?? "-")",
            "approved": .typed(request.approvedByAsk),
        ])
        // No `exec.started`: upstream's headless node hosts never send it (node-host.md §3.8),
        // and it would cost every run a frame and a gateway round trip.
    }

    func logFinished(_ outcome: RunOutcome, for request: SystemRunRequest) {
        logger.info("system.run finished", metadata: [
            "runId": "\(request.runId)", "exitCode": .typed(outcome.exitCode),
            "signal": .typed(outcome.signal), "timedOut": .typed(outcome.timedOut),
            "durationMs": .typed(outcome.durationMs),
        ])
    }

    func finished(_ outcome: RunOutcome, for request: SystemRunRequest, invoke: InvokeRequest) -> InvokeOutput {
        metrics?.ran(milliseconds: outcome.durationMs)
        switch outcome.refusal {
        case .cwdChanged?:
            return InvokeOutput(result: .failure(invoke, code: "UNAVAILABLE", message: "SYSTEM_RUN_DENIED: approval cwd changed before execution"))
        case .operandChanged?:
            return InvokeOutput(result: .failure(invoke, code: "UNAVAILABLE", message: "SYSTEM_RUN_DENIED: approval script operand changed before execution"))
        case nil:
            break
        }
        var stdout = outcome.stdout
        var stderr = outcome.stderr
        if outcome.truncated {
            if !stderr.trimmingWhitespace().isEmpty { stderr += "\n... (truncated)" } else { stdout += "\n... (truncated)" }
        }
        let success = outcome.exitCode == 0 && !outcome.timedOut && outcome.error == nil
        var payload: [String: JSONValue] = [
            "timedOut": .bool(outcome.timedOut), "success": .bool(success),
            "stdout": .string(stdout), "stderr": .string(stderr),
            "error": outcome.error.map(JSONValue.string) ?? .null,
        ]
        if let code = outcome.exitCode { payload["exitCode"] = .number(Double(code)) }

        var output = [stdout, stderr, outcome.error ?? ""].filter { !$0.isEmpty }.joined(separator: "\n").trimmingWhitespace()
        // JS `slice(-20000)`: UTF-16 code units, counted without walking grapheme clusters.
        let units = output.utf16
        if units.count > Self.eventOutputTail {
            let tail = units.suffix(Self.eventOutputTail)
            output = "... (truncated) " + (String(tail) ?? String(decoding: Array(tail), as: UTF16.self))
        }
        var fields: [String: JSONValue] = ["timedOut": .bool(outcome.timedOut), "success": .bool(success), "output": .string(output)]
        if let code = outcome.exitCode { fields["exitCode"] = .number(Double(code)) }
        let text = (try? JSONText.encode(JSONValue.object(payload))) ?? "{}"
        return InvokeOutput(events: [event("exec.finished", request, fields)], result: .success(invoke, payloadJSON: text))
    }

    func deniedEvent(_ request: SystemRunRequest, reason: String) -> NodeEvent {
        event("exec.denied", request, ["reason": .string(reason)])
    }

    func event(_ name: String, _ request: SystemRunRequest, _ fields: [String: JSONValue]) -> NodeEvent {
        var payload = fields
        payload["sessionKey"] = .string(request.sessionKey)
        payload["runId"] = .string(request.runId)
        payload["host"] = .string("node")
        payload["command"] = .string(request.displayText)
        if let suppress = request.suppressNotifyOnExit { payload["suppressNotifyOnExit"] = .bool(suppress) }
        return NodeEvent(event: name, payloadJSON: (try? JSONText.encode(JSONValue.object(payload))) ?? "{}")
    }
}
