import FoundationEssentials
import Glibc
import Logging
import OpenClawIPC

/// Where authorised runs go: the Supervisor's ExecWorker dispatcher. (Events travel with the
/// result, in `InvokeOutput`.)
public protocol ExecRunner: AnyObject {
    /// Why `run` would refuse an order now (the node is busy or shutting down), with the error
    /// `run` would answer; nil when it would accept one. Asked on the same event loop as `run`,
    /// so a nil answer holds until `run` is called, as long as nothing else runs in between.
    func refusal() -> WireError?
    /// Queues `order`; nil when accepted (the completion then runs exactly once).
    func run(_ order: RunOrder, completion: @escaping (Result<RunOutcome, WireError>) -> Void) -> WireError?
    /// Drops a queued run, or kills a running one's process group (its completion still runs).
    func cancel(_ runId: String)
}

/// `system.run.prepare` and `system.run`: every policy decision is made here, in the
/// Supervisor. The ExecWorker receives only a resolved argv, cwd and environment.
public final class SystemRunHandler: CommandHandler {
    public static let wireCommands = ["system.run.prepare", "system.run"]
    public static var commandCaps: [(cap: String, command: String)] {
        [(SystemRunRequest.ExecutionContext.capability, "system.run")]
    }

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
    /// Where denials are kept for `status --json`.
    let denials: DenialLog?
    /// This node's name on the gateway (for the remedy of a denial).
    let nodeName: String
    /// Where `system.run.prepare` materialises inline eval (nil: it refuses it).
    let inlineEvalDirectory: String?

    public init(environment: ExecEnvironment, pathEnv: String, home: String?, defaultCwd: String? = nil,
                commandUser: (uid: uid_t, gid: gid_t)? = nil,
                approvals: ExecApprovalsStore, config: OpenClawConfig, runner: ExecRunner, metrics: NodeMetrics? = nil,
                denials: DenialLog? = nil, nodeName: String = "<node>", inlineEvalDirectory: String? = nil, logger: Logger,
                clock: @escaping () -> Int64 = currentTimeMillis, newId: @escaping () -> String = { RandomID.uuid() }) {
        self.runner = runner
        self.metrics = metrics
        self.denials = denials
        self.nodeName = nodeName
        self.inlineEvalDirectory = inlineEvalDirectory
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

    public func handle(_ invoke: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        let fail = { [weak self] (error: WireError) -> Void in self?.reject(invoke, error, completion: completion) }
        let request: SystemRunRequest
        switch InvokeParams.object(invoke).flatMap({ SystemRunRequest.parse($0, newRunId: newId) }) {
        case let .success(parsed): request = parsed
        case var .failure(error):
            // upstream's prepare throws this one as an Error (its text gets the `Error: ` prefix).
            if invoke.command == "system.run.prepare", error.message == SystemRunRequest.ExecutionContext.invalidMessage {
                error.message = "Error: " + error.message
            }
            return fail(error)
        }
        let (pathEnv, defaultCwd, inlineEvalDirectory) = (self.pathEnv, self.defaultCwd, self.inlineEvalDirectory)
        if invoke.command == "system.run.prepare" {
            FileChecks.run(as: commandUser, { SystemRunPlan.prepare(request, pathEnv: pathEnv, defaultCwd: defaultCwd,
                                                                    inlineEvalDirectory: inlineEvalDirectory) }, timedOut: { .failure(Self.fileChecksTimedOut) }) { prepared in
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
        // What needs no file is refused before any file is checked or the approvals file read
        // (`ExecDecision.decide` checks it first too, so it stays a complete function).
        if let error = ExecDecision.requestError(request) { return fail(error) }
        guard request.approvedByAsk else {
            return decide(request, approved: nil, invoke: invoke, cancellation: cancellation, completion: completion)
        }
        FileChecks.run(as: commandUser, { ApprovedRun.verify(request, pathEnv: pathEnv, defaultCwd: defaultCwd) }, timedOut: { .failure(Self.fileChecksTimedOut) }) { [weak self] verified in
            switch verified {
            case let .success(approved):
                self?.decide(request, approved: approved, invoke: invoke, cancellation: cancellation, completion: completion)
            case let .failure(error): fail(error)
            }
        }
    }

    static let fileChecksTimedOut = WireError(code: "UNAVAILABLE", message: "SYSTEM_RUN_DENIED: the approval's file checks did not finish in time")

    func reject(_ invoke: InvokeRequest, _ error: WireError, completion: (InvokeOutput) -> Void) {
        logger.notice("\(invoke.command) rejected", metadata: ["code": "\(error.code)", "reason": "\(error.message)"])
        completion(InvokeOutput(result: .failure(invoke, code: error.code, message: error.message)))
    }

    /// The policy decision and, when it allows the run, the order to the ExecWorker. The
    /// decision's approvals effects are written once the run queue would take the run and
    /// before it starts: a refused run leaves `exec-approvals.json` as it was, and a run whose
    /// allow-always cannot be persisted is denied (as upstream's node host does).
    func decide(_ request: SystemRunRequest, approved: ApprovedRun?, invoke: InvokeRequest, cancellation: InvokeCancellation,
                completion: @escaping (InvokeOutput) -> Void) {
        // Cancelled while its files were checked: it never starts (and nothing is published).
        if cancellation.isCancelled { return completion(InvokeOutput(result: .failure(invoke, code: "ABORTED", message: "cancelled"))) }
        switch authorise(request, approved: approved) {
        case let .failure(error):
            reject(invoke, error, completion: completion)
        case let .success(.denied(denial)):
            deny(request, denial, invoke: invoke, completion: completion)
        case let .success(.run(order, effects)):
            if let refused = runner.refusal() {
                return refuse(refused, for: request, invoke: invoke, completion: completion)
            }
            guard persist(effects) else {
                let policy = policy(for: request)
                let reason = ExecPolicy.Reason.approvalStateWriteFailed
                return deny(request, ExecDenial(reason: reason, message: "SYSTEM_RUN_DENIED: approval state could not be persisted",
                                                policy: policy, remedy: ExecDenial.remedy(reason: reason, policy: policy, subject: nil,
                                                                                          blocked: nil, node: nodeName)),
                            invoke: invoke, completion: completion)
            }
            start(order, for: request, invoke: invoke, cancellation: cancellation, completion: completion)
        }
    }

    /// `ExecDecision.decide` on what it needs, read here: the settings, the approvals file and
    /// the allowlist analysis (which looks at the file system). `approved` is what
    /// `ApprovedRun.verify` re-derived for a request with an approval.
    func authorise(_ request: SystemRunRequest, approved: ApprovedRun?) -> Result<ExecDecision.Verdict, WireError> {
        let settings = ExecConfig.from(config, agentId: request.agentId)
        let resolved = approvals.resolve(agentId: request.agentId)
        let evaluation = AllowlistEvaluation.evaluate(
            argv: request.command, cwd: request.cwd ?? defaultCwd, pathEnv: pathEnv, home: home,
            allowlist: resolved.allowlist.map { AllowlistRule($0.entry) }, safeBins: settings.safeBinPolicy, skillBins: []
        )
        return ExecDecision.decide(ExecDecision.Input(
            request: request, approved: approved, settings: settings, approvals: resolved, evaluation: evaluation,
            defaultCwd: defaultCwd, environment: environment, now: clock(), newId: newId(), nodeName: nodeName
        ))
    }

    /// `openclaw-node approvals explain`: the decision this node would make for `argv`, through
    /// the same code as a `system.run`, without running anything or writing the approvals file.
    /// `decision` is `allow`, `ask` (an operator's approval is needed first), `deny` or
    /// `invalid`.
    public func explain(argv: [String], agentId: String?, cwd: String?, askFallback: Bool) -> JSONValue {
        var params: [String: JSONValue] = ["command": .array(argv.map(JSONValue.string))]
        if let agentId { params["agentId"] = .string(agentId) }
        if let cwd { params["cwd"] = .string(cwd) }
        if askFallback { params["approvalSource"] = .string("ask-fallback") }
        let request: SystemRunRequest
        switch SystemRunRequest.parse(params, newRunId: newId) {
        case let .success(parsed): request = parsed
        case let .failure(error): return .object(["decision": .string("invalid"), "code": .string(error.code), "message": .string(error.message)])
        }
        let policy = policy(for: request).json
        switch authorise(request, approved: nil) {
        case let .failure(error):
            return .object(["decision": .string("invalid"), "code": .string(error.code), "message": .string(error.message), "policy": policy])
        case let .success(.denied(denial)):
            let asks = denial.reason == ExecPolicy.Reason.approvalRequired && !denial.policy.askFallbackApplied
            guard case var .object(object) = denial.json else { return denial.json }
            object["decision"] = .string(asks ? "ask" : "deny")
            return .object(object)
        case let .success(.run(order, effects)):
            let matched = effects.compactMap { effect -> JSONValue? in
                guard case let .recordUse(_, _, pattern, _, resolvedPath, _) = effect else { return nil }
                return .object(["pattern": .string(pattern), "resolvedPath": resolvedPath.map(JSONValue.string) ?? .null])
            }
            return .object(["decision": .string("allow"), "argv": .array(order.argv.map(JSONValue.string)), "cwd": order.cwd.map(JSONValue.string) ?? .null,
                            "policy": policy, "matched": .array(matched)])
        }
    }

    /// The approvals policy of `request`'s agent, as a denial names it.
    func policy(for request: SystemRunRequest) -> ExecDenial.Policy {
        let resolved = approvals.resolve(agentId: request.agentId)
        return ExecDenial.Policy(security: resolved.security, ask: resolved.ask, askFallback: resolved.askFallback,
                                 agent: resolved.agentKey, askFallbackApplied: request.askFallback)
    }

    /// Writes the approvals effects in order. False when allow-always could not be persisted:
    /// the run must then not start. A use that cannot be stamped is only logged.
    func persist(_ effects: [ApprovalsEffect]) -> Bool {
        for effect in effects {
            do {
                try effect.apply(to: approvals)
            } catch {
                switch effect {
                case .allowAlways:
                    logger.error("cannot persist allow-always", metadata: ["error": "\(error)"])
                    return false
                case .recordUse:
                    logger.warning("cannot record allowlist use", metadata: ["error": "\(error)"])
                }
            }
        }
        return true
    }

    /// A denial, explained everywhere: the log line, `exec.denied`, the result's `payloadJSON`
    /// beside upstream's error text, and `status --json`.
    func deny(_ request: SystemRunRequest, _ denial: ExecDenial, invoke: InvokeRequest, completion: (InvokeOutput) -> Void) {
        var metadata: Logger.Metadata = ["runId": "\(request.runId)"]
        for (key, value) in denial.metadata { metadata[key] = "\(value)" }
        logger.notice("system.run denied", metadata: metadata)
        metrics?.denied(denial.reason)
        denials?.record(denial, runId: request.runId, command: request.commandText, at: clock())
        var result = InvokeResult.failure(invoke, code: "UNAVAILABLE", message: denial.message)
        result.payloadJSON = try? JSONText.encode(denial.json)
        completion(InvokeOutput(events: [deniedEvent(request, denial)], result: result))
    }

    /// The run queue does not take the run (the node is busy or shutting down).
    func refuse(_ refused: WireError, for request: SystemRunRequest, invoke: InvokeRequest,
                completion: (InvokeOutput) -> Void) {
        logger.warning("system.run refused", metadata: ["runId": "\(request.runId)", "reason": "\(refused.message)"])
        completion(InvokeOutput(result: .failure(invoke, code: refused.code, message: refused.message)))
    }

    // MARK: Running

    func start(_ order: RunOrder, for request: SystemRunRequest, invoke: InvokeRequest, cancellation: InvokeCancellation,
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
        // `decide` asked `refusal()` just before, on this loop: this refusal is only a safety net.
        if let refused { return refuse(refused, for: request, invoke: invoke, completion: completion) }
        // A cancel drops the run from the queue, or kills its process group.
        cancellation.onCancel { [runner, logger] in
            logger.notice("system.run cancelled", metadata: ["runId": "\(request.runId)"])
            runner.cancel(order.id)
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

    /// upstream's `exec.denied` (`command` is the canonical command text,
    /// `suppressNotifyOnExit` always a boolean), with the policy and the remedy added.
    func deniedEvent(_ request: SystemRunRequest, _ denial: ExecDenial) -> NodeEvent {
        event("exec.denied", request, ["reason": .string(denial.reason), "command": .string(request.commandText),
                                       "suppressNotifyOnExit": .bool(request.suppressNotifyOnExit == true),
                                       "policy": denial.policy.json, "remedy": .string(denial.remedy)])
    }

    func event(_ name: String, _ request: SystemRunRequest, _ fields: [String: JSONValue]) -> NodeEvent {
        var payload = fields
        payload["sessionKey"] = .string(request.sessionKey)
        payload["runId"] = .string(request.runId)
        payload["host"] = .string("node")
        if payload["command"] == nil { payload["command"] = .string(request.displayText) }
        if payload["suppressNotifyOnExit"] == nil, let suppress = request.suppressNotifyOnExit { payload["suppressNotifyOnExit"] = .bool(suppress) }
        return NodeEvent(event: name, payloadJSON: (try? JSONText.encode(JSONValue.object(payload))) ?? "{}")
    }
}
