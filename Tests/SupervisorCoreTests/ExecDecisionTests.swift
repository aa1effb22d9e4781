import OpenClawIPC
import XCTest

@testable import SupervisorCore

/// A file system given as a table, so an allowlist analysis runs without touching the disk.
/// None of these paths exists on a test machine: a real probe would resolve nothing.
struct TableFileProbe: FileProbe {
    /// Regular files this process may execute (a symlink to one counts, as `stat` follows it).
    var executables: Set<String>
    /// Symlinks and what `realpath` resolves them to.
    var links: [String: String] = [:]
    var workingDirectory: String? = "/"

    func isExecutableFile(_ path: String) -> Bool {
        executables.contains(path)
    }

    func executableInPath(_ name: String, path: String) -> String? {
        for directory in path.split(separator: ":", omittingEmptySubsequences: true) where directory.hasPrefix("/") {
            let candidate = directory.hasSuffix("/") ? "\(directory)\(name)" : "\(directory)/\(name)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    func realpath(_ path: String) -> String? {
        links[path] ?? (executables.contains(path) ? path : nil)
    }

    func currentDirectory() -> String? {
        workingDirectory
    }
}

/// `ExecDecision.decide`: the verdict and the approvals effects of one `system.run`, from
/// inputs already resolved. The store exists only to show that deciding writes nothing.
final class ExecDecisionTests: TempDirTestCase {
    let pathEnv = "/opt/bin:/opt/tools"
    let defaultCwd = "/srv/work"
    let now: Int64 = 1_700_000_000_000
    /// `/opt/bin/deploy` is a symlink to `/opt/tools/deploy`.
    let probe = TableFileProbe(executables: ["/opt/bin/deploy", "/opt/tools/deploy", "/opt/tools/report", "/bin/sh"],
                               links: ["/opt/bin/deploy": "/opt/tools/deploy"])
    var environment: ExecEnvironment {
        ExecEnvironment(nodeEnvironment: ["HOME": "/home/node", "SECRET": "kept out"], pathEnv: pathEnv)
    }
    /// What a child gets with no overrides: the allow-listed node variables only.
    var childEnv: [String: String] { ["PATH": pathEnv, "HOME": "/home/node"] }

    func request(_ command: [String], _ params: [String: JSONValue] = [:]) throws -> SystemRunRequest {
        var params = params
        params["command"] = .array(command.map(JSONValue.string))
        return try SystemRunRequest.parse(params, newRunId: { "run-1" }).get()
    }

    /// Params of an approved request carrying the plan that binds it (no agent or session).
    func approval(_ command: [String], decision: String, cwd: String? = nil) -> [String: JSONValue] {
        var plan: [String: JSONValue] = ["argv": .array(command.map(JSONValue.string)),
                                         "commandText": .string(ExecCommandText.format(command))]
        var params: [String: JSONValue] = ["approvalDecision": .string(decision)]
        if let cwd {
            plan["cwd"] = .string(cwd)
            params["cwd"] = .string(cwd)
        }
        params["systemRunPlan"] = .object(plan)
        return params
    }

    func decide(_ request: SystemRunRequest, approved: ApprovedRun? = nil, security: ExecSecurity = .allowlist,
                ask: ExecAsk = .off, allowlist: [String] = [], grants: [String] = [],
                settings: ExecConfig = ExecConfig()) -> Result<ExecDecision.Verdict, WireError> {
        let entries = allowlist.enumerated().map {
            ResolvedAllowlistEntry(agentKey: "main", entry: AllowlistEntry(id: "entry-\($0.offset + 1)", pattern: $0.element))
        } + grants.map {
            ResolvedAllowlistEntry(agentKey: "main", entry: AllowlistEntry(id: "grant", pattern: $0, source: AllowlistEntry.allowAlwaysSource))
        }
        let approvals = ResolvedExecApprovals(agentKey: "main", security: security, ask: ask, askFallback: .deny,
                                              autoAllowSkills: false, allowlist: entries)
        let evaluation = AllowlistEvaluation.evaluate(
            argv: request.command, cwd: request.cwd ?? defaultCwd, pathEnv: pathEnv, home: "/home/node",
            allowlist: allowlist.map(AllowlistRule.init(stringLiteral:))
                + grants.map { AllowlistRule(pattern: $0, generated: !$0.hasPrefix("/")) },
            safeBins: settings.safeBinPolicy, skillBins: [], probe: probe)
        return ExecDecision.decide(ExecDecision.Input(
            request: request, approved: approved, settings: settings, approvals: approvals, evaluation: evaluation,
            defaultCwd: defaultCwd, environment: environment, now: now, newId: "n-1", nodeName: "nas"))
    }

    /// The reason and upstream's message of a denial (nil: not a denial).
    func denied(_ verdict: Result<ExecDecision.Verdict, WireError>) -> [String]? {
        guard case let .success(.denied(denial)) = verdict else { return nil }
        return [denial.reason, denial.message]
    }

    func denial(_ verdict: Result<ExecDecision.Verdict, WireError>) -> ExecDenial? {
        guard case let .success(.denied(denial)) = verdict else { return nil }
        return denial
    }

    func order(_ argv: [String], cwd: String? = nil, expectCwd: FileIdentity? = nil) -> RunOrder {
        RunOrder(id: "run-1/n-1", argv: argv, cwd: cwd ?? defaultCwd, env: childEnv, timeoutMs: nil,
                 maxOutputBytes: 200_000, expectCwd: expectCwd)
    }

    // MARK: Denials

    func testSecurityDenyIsDeniedWithItsReasonAndMessage() throws {
        XCTAssertEqual(denied(decide(try request(["deploy"]), security: .deny, allowlist: ["/opt/bin/deploy"])),
                       ["security=deny", "SYSTEM_RUN_DISABLED: security=deny"])
    }

    func testTheStricterOfConfigAndApprovalsFileApplies() throws {
        XCTAssertEqual(denied(decide(try request(["deploy"]), security: .full, settings: ExecConfig(security: .deny))),
                       ["security=deny", "SYSTEM_RUN_DISABLED: security=deny"])
    }

    func testAllowlistMissIsDenied() throws {
        XCTAssertEqual(denied(decide(try request(["deploy"]), allowlist: ["/opt/tools/report"])),
                       ["allowlist-miss", "SYSTEM_RUN_DENIED: allowlist miss"])
    }

    func testAMissUnderOnMissAsksForApproval() throws {
        XCTAssertEqual(denied(decide(try request(["deploy"]), ask: .onMiss)),
                       ["approval-required", "SYSTEM_RUN_DENIED: approval required"])
    }

    // MARK: Every denial explains itself (issue 19)

    func testAMissNamesThePolicyTheAgentEntryAndTheEntryToAdd() throws {
        let explained = try XCTUnwrap(denial(decide(try request(["deploy"]), allowlist: ["/opt/tools/report"])))
        XCTAssertEqual(explained.policy, ExecDenial.Policy(security: .allowlist, ask: .off, askFallback: .deny, agent: "main",
                                                           askFallbackApplied: false))
        XCTAssertEqual(explained.remedy, #"add an allowlist entry for /opt/bin/deploy: openclaw approvals allowlist add --node nas /opt/bin/deploy"#)
        let deny = try XCTUnwrap(denial(decide(try request(["deploy"]), security: .deny)))
        XCTAssertTrue(deny.remedy.hasPrefix("security=deny applies to agent main:"), deny.remedy)
        let fallback = try XCTUnwrap(denial(decide(try request(["deploy"], ["approvalSource": .string("ask-fallback")]), ask: .always)))
        XCTAssertEqual(fallback.reason, "security=deny", "askFallback=deny caps the security")
        XCTAssertTrue(fallback.policy.askFallbackApplied)
        XCTAssertTrue(fallback.remedy.hasPrefix("askFallback=deny applied: no operator approval was reachable"), fallback.remedy)
    }

    func testShellSyntaxTheAnalysisCannotFollowIsItsOwnReason() throws {
        let sent = try request(["/bin/sh", "-c", "deploy $(cat target)"])
        XCTAssertEqual(denied(decide(sent, allowlist: ["/opt/bin/deploy"])),
                       ["unsupported-shell-syntax", "SYSTEM_RUN_DENIED: unsupported shell syntax"])
        XCTAssertEqual(denied(decide(sent, ask: .onMiss, allowlist: ["/opt/bin/deploy"])),
                       ["approval-required", "SYSTEM_RUN_DENIED: approval required"], "on-miss asks first")
    }

    func testAShellWrapperMissSaysApprovalIsTheWay() throws {
        XCTAssertEqual(denied(decide(try request(["/bin/sh", "-c", "deploy now"]), allowlist: ["/opt/tools/report"])),
                       ["allowlist-miss", "SYSTEM_RUN_DENIED: allowlist miss (shell wrappers like sh/bash/zsh -c require approval; "
                        + "approve once/always or run with --ask on-miss|always)"])
    }

    func testADurableAllowAlwaysGrantSatisfiesAMissButNotAskAlways() throws {
        let sent = try request(["/bin/sh", "-c", "deploy $(cat target)"])
        let grant = ExecDecision.exactCommandPattern(sent.commandText)
        XCTAssertTrue(grant.hasPrefix("=command:") && grant.count == 9 + 64, grant)
        // upstream's 16-digit form of the same digest is no grant here.
        guard case .success(.denied) = decide(sent, ask: .onMiss, grants: [String(grant.prefix(9 + 16))]) else {
            return XCTFail("a truncated exact-command grant must not run the command")
        }
        guard case let .success(.run(order, _)) = decide(sent, ask: .onMiss, grants: [grant]) else {
            return XCTFail("the exact-command grant runs the command")
        }
        XCTAssertEqual(order.argv, sent.command)
        XCTAssertEqual(denied(decide(sent, ask: .always, grants: [grant])), ["approval-required", "SYSTEM_RUN_DENIED: approval required"])
        // An allow-always entry behind every segment is a grant too; a plain entry is not.
        guard case .success(.run) = decide(try request(["deploy"]), ask: .onMiss, grants: ["/opt/bin/deploy"]) else {
            return XCTFail("a segment grant satisfies on-miss")
        }
        XCTAssertEqual(denied(decide(try request(["deploy"]), ask: .onMiss, allowlist: ["/opt/tools/report"])),
                       ["approval-required", "SYSTEM_RUN_DENIED: approval required"])
    }

    func testAllowAlwaysOfACommandWithoutPatternsRemembersTheExactCommand() throws {
        let sent = try request(["/bin/sh", "-c", "deploy $(cat target)"], approval(["/bin/sh", "-c", "deploy $(cat target)"], decision: "allow-always"))
        let approved = ApprovedRun(cwd: defaultCwd, cwdIdentity: nil, operand: nil)
        guard case let .success(.run(_, effects)) = decide(sent, approved: approved, allowlist: ["/opt/bin/deploy"]) else {
            return XCTFail("approved")
        }
        XCTAssertEqual(effects, [.allowAlways(agentId: "main", grants: [AllowlistRule(pattern: ExecDecision.exactCommandPattern(sent.commandText),
                                                                                      generated: true)], now: now)])
    }

    /// A script materialised for `python3 -c` sits where the command's user can write: approving
    /// it always would admit whatever is written there later, so it is approved once only.
    func testAllowAlwaysOfAMaterialisedInlineEvalScriptIsNotPersisted() throws {
        let script = "/var/lib/openclaw-node/tmp/inline-eval/" + String(repeating: "a", count: 64) + ".py"
        var params = approval(["/opt/tools/report", script], decision: "allow-always")
        guard case var .object(plan)? = params["systemRunPlan"] else { return XCTFail("plan") }
        plan["mutableFileOperand"] = .object(["argvIndex": .number(1), "path": .string(script), "sha256": .string(String(repeating: "b", count: 64))])
        params["systemRunPlan"] = .object(plan)
        let sent = try request(["/opt/tools/report", script], params)
        let approved = ApprovedRun(cwd: defaultCwd, cwdIdentity: nil, operand: nil)
        guard case let .success(.run(order, effects)) = decide(sent, approved: approved, allowlist: ["/opt/bin/deploy"]) else {
            return XCTFail("approved")
        }
        XCTAssertEqual(order.argv, ["/opt/tools/report", script])
        XCTAssertFalse(effects.contains { if case .allowAlways = $0 { return true } else { return false } }, "\(effects)")
        XCTAssertTrue(InlineEvalScript.isMaterialized(script))
        XCTAssertFalse(InlineEvalScript.isMaterialized("/home/u/tmp/inline-eval-x/a.py"))
        XCTAssertNil(InlineEvalScript.form(["python3", " -c", "print(1)"]), "the flag exactly as python reads it")
        XCTAssertNotNil(InlineEvalScript.form(["python3", "-c", "print(1)"]))
    }

    // MARK: Validation, before any policy

    func testABlockedEnvOverrideIsAnInvalidRequestEvenWhereSecurityDenies() throws {
        let sent = try request(["deploy"], ["env": .object(["LD_PRELOAD": .string("/tmp/x.so")])])
        XCTAssertEqual(decide(sent, security: .deny),
                       .failure(WireError(code: "INVALID_REQUEST",
                                          message: "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: LD_PRELOAD)")))
    }

    func testABlockedEnvAssignmentInTheCommandIsAnInvalidRequest() throws {
        XCTAssertEqual(decide(try request(["env", "LD_PRELOAD=/tmp/x.so", "deploy"]), security: .full),
                       .failure(WireError(code: "INVALID_REQUEST",
                                          message: "SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: LD_PRELOAD)")))
    }

    func testAnApprovalWithoutAVerifiedRunIsAnInvalidPlan() throws {
        let approved = try request(["/opt/tools/deploy"], approval(["/opt/tools/deploy"], decision: "allow-once"))
        XCTAssertEqual(decide(approved, approved: nil),
                       .failure(WireError(code: "INVALID_REQUEST", message: "systemRunPlan invalid")))
    }

    func testAnApprovalWithoutAPlanIsAnInvalidPlan() throws {
        let approved = try request(["/opt/tools/deploy"], ["approved": .bool(true)])
        XCTAssertEqual(decide(approved, approved: ApprovedRun(cwd: nil, cwdIdentity: nil, operand: nil)),
                       .failure(WireError(code: "INVALID_REQUEST", message: "systemRunPlan invalid")))
    }

    // MARK: What runs

    func testAnAllowlistHitRunsThePlannedArgvAndStampsTheEntry() throws {
        XCTAssertEqual(decide(try request(["deploy", "--now"]), allowlist: ["/opt/bin/deploy"]), .success(.run(
            order(["/opt/tools/deploy", "--now"]),
            effects: [.recordUse(agentKey: "main", id: "entry-1", pattern: "/opt/bin/deploy", command: "deploy --now",
                                 resolvedPath: "/opt/bin/deploy", now: now)])))
    }

    func testFullSecurityRunsTheRequestsArgvAsSent() throws {
        XCTAssertEqual(decide(try request(["deploy", "--now"]), security: .full, allowlist: ["/opt/bin/deploy"]),
                       .success(.run(order(["deploy", "--now"]), effects: [])))
    }

    func testAnApprovedRunRunsInTheVerifiedCwdWithItsIdentity() throws {
        let identity = FileIdentity(device: 1, inode: 2)
        let approved = try request(["/opt/tools/deploy"], approval(["/opt/tools/deploy"], decision: "allow-once", cwd: "/srv/approved"))
        XCTAssertEqual(decide(approved, approved: ApprovedRun(cwd: "/srv/approved", cwdIdentity: identity, operand: nil), ask: .onMiss),
                       .success(.run(order(["/opt/tools/deploy"], cwd: "/srv/approved", expectCwd: identity), effects: [])))
    }

    // MARK: Approvals effects

    func testAllowAlwaysIsAnEffectWrittenOnlyWhenApplied() throws {
        let approved = try request(["/opt/tools/deploy"], approval(["/opt/tools/deploy"], decision: "allow-always"))
        let verdict = decide(approved, approved: ApprovedRun(cwd: nil, cwdIdentity: nil, operand: nil), ask: .onMiss)
        // Bound to the exact arguments it was approved with (upstream-2026 §1.5).
        let effect = ApprovalsEffect.allowAlways(agentId: "main", grants: [AllowlistRule(pattern: "/opt/tools/deploy",
                                                                                           argPattern: ArgPattern.argvHash(["/opt/tools/deploy"]),
                                                                                           generated: true)], now: now)
        XCTAssertEqual(verdict, .success(.run(order(["/opt/tools/deploy"]), effects: [effect])))

        let store = makeStore()
        XCTAssertFalse(try store.readSnapshot().exists, "deciding wrote nothing")
        try effect.apply(to: store)
        let entry = try XCTUnwrap(try store.readSnapshot().file.agents?["main"]?.allowlist?.first)
        XCTAssertEqual(entry.pattern, "/opt/tools/deploy")
        XCTAssertEqual(entry.source, "allow-always")
        XCTAssertEqual(entry.lastUsedAt, now)
    }

    func testAllowAlwaysIsNotPersistedUnderFullSecurity() throws {
        let approved = try request(["/opt/tools/deploy"], approval(["/opt/tools/deploy"], decision: "allow-always"))
        XCTAssertEqual(decide(approved, approved: ApprovedRun(cwd: nil, cwdIdentity: nil, operand: nil), security: .full),
                       .success(.run(order(["/opt/tools/deploy"]), effects: [])))
    }
}

/// Every denial reason carries its code, the policy and a remedy of its own (issue 19).
final class ExecDenialTests: XCTestCase {
    func testEveryReasonHasItsOwnRemedyAndTheJSONCarriesCodePolicyAndRemedy() {
        let policy = ExecDenial.Policy(security: .allowlist, ask: .onMiss, askFallback: .deny, agent: "ops", askFallbackApplied: false)
        let fallback = "see the node's log and openclaw-node approvals explain -- <argv>"
        var remedies: Set<String> = []
        for reason in ExecPolicy.Reason.all {
            let remedy = ExecDenial.remedy(reason: reason, policy: policy, subject: "/usr/bin/x", blocked: "a here-document", node: "nas")
            XCTAssertNotEqual(remedy, fallback, reason)
            remedies.insert(remedy)
            let denial = ExecDenial(reason: reason, message: "SYSTEM_RUN_DENIED: x", policy: policy, remedy: remedy)
            XCTAssertEqual(denial.json["reason"]?.stringValue, reason)
            XCTAssertEqual(denial.json["policy"]?["agent"]?.stringValue, "ops")
            XCTAssertEqual(denial.json["policy"]?["ask"]?.stringValue, "on-miss")
            XCTAssertEqual(denial.json["remedy"]?.stringValue, remedy)
        }
        XCTAssertEqual(remedies.count, ExecPolicy.Reason.all.count, "one remedy per reason")
        XCTAssertEqual(ExecDenial.remedy(reason: ExecPolicy.Reason.allowlistMiss, policy: policy, subject: "/usr/bin/x", blocked: nil, node: "nas"),
                       #"add an allowlist entry for /usr/bin/x: openclaw approvals allowlist add --node nas --agent ops /usr/bin/x"#)
        XCTAssertEqual(ExecDenial.remedy(reason: ExecPolicy.Reason.allowlistMiss, policy: policy, subject: "/opt/it's $(id)/x", blocked: nil,
                                         node: "my nas"),
                       #"add an allowlist entry for /opt/it's $(id)/x: openclaw approvals allowlist add --node 'my nas' --agent ops '/opt/it'\''s $(id)/x'"#)
        XCTAssertTrue(ExecDenial.remedy(reason: ExecPolicy.Reason.unsupportedShellSyntax, policy: policy, subject: nil,
                                        blocked: "a here-document", node: "nas").contains("(a here-document)"))
    }
}
