import OpenClawIPC
import XCTest

@testable import SupervisorCore

final class ExecPolicyTests: XCTestCase {
    func input(_ security: ExecSecurity, _ ask: ExecAsk, approved: Bool = false, ok: Bool = true, satisfied: Bool = false,
               eval: String? = nil) -> ExecPolicy.Input {
        ExecPolicy.Input(security: security, ask: ask, approvedByAsk: approved, analysisOk: ok, allowlistSatisfied: satisfied,
                         inlineEval: eval)
    }

    func testSecurityDenyWinsOverApproval() {
        XCTAssertEqual(ExecPolicy.decide(input(.deny, .off, approved: true)),
                       .deny(reason: "security=deny", message: "SYSTEM_RUN_DISABLED: security=deny"))
    }

    func testAllowlistMissWithoutAsk() {
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .off)),
                       .deny(reason: "allowlist-miss", message: "SYSTEM_RUN_DENIED: allowlist miss"))
    }

    func testOnMissAsksOnlyOnAMiss() {
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .onMiss)),
                       .deny(reason: "approval-required", message: "SYSTEM_RUN_DENIED: approval required"))
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .onMiss, satisfied: true)), .allow)
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .onMiss, ok: false, satisfied: true)),
                       .deny(reason: "approval-required", message: "SYSTEM_RUN_DENIED: approval required"))
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .onMiss, approved: true)), .allow)
    }

    func testAskAlwaysNeedsApprovalEvenWhenSatisfiedOrFull() {
        XCTAssertEqual(ExecPolicy.decide(input(.full, .always)),
                       .deny(reason: "approval-required", message: "SYSTEM_RUN_DENIED: approval required"))
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .always, satisfied: true)),
                       .deny(reason: "approval-required", message: "SYSTEM_RUN_DENIED: approval required"))
        XCTAssertEqual(ExecPolicy.decide(input(.full, .always, approved: true)), .allow)
    }

    func testFullWithoutAskRunsAnything() {
        XCTAssertEqual(ExecPolicy.decide(input(.full, .off, ok: false)), .allow)
    }

    func testInlineEvalNeedsExplicitApprovalUnderAllowlist() {
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .off, satisfied: true, eval: "python3 -c")),
                       .deny(reason: "approval-required",
                             message: "SYSTEM_RUN_DENIED: approval required (python3 -c requires explicit approval in strictInlineEval mode)"))
        XCTAssertEqual(ExecPolicy.decide(input(.allowlist, .off, approved: true, satisfied: true, eval: "python3 -c")), .allow)
        XCTAssertEqual(ExecPolicy.decide(input(.full, .off, eval: "python3 -c")), .allow)
    }

    func testScreenRecordingIsNeverAvailable() {
        var request = input(.full, .off)
        request.needsScreenRecording = true
        XCTAssertEqual(ExecPolicy.decide(request),
                       .deny(reason: "permission:screenRecording", message: "PERMISSION_MISSING: screenRecording"))
    }
}

final class ExecEnvironmentTests: XCTestCase {
    func testBlockedOverridesAreNamedSorted() {
        let rejection = ExecEnvironment.inspect(["LD_PRELOAD": "x", "BASH_ENV": "y", "TERM": "xterm"])
        XCTAssertEqual(rejection?.message,
                       "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: BASH_ENV, LD_PRELOAD)")
    }

    func testPathIsAlwaysRefusedWhateverTheCase() {
        XCTAssertEqual(ExecEnvironment.inspect(["Path": "/usr/bin"])?.blocked, ["Path"])
    }

    func testNonPortableKeysAreReportedSeparately() {
        XCTAssertEqual(ExecEnvironment.inspect(["A-B": "1", "HOME": "/x"])?.message,
                       "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: HOME; invalid non-portable override keys: A-B)")
    }

    func testAcceptableOverridesPass() {
        XCTAssertNil(ExecEnvironment.inspect(["TERM": "xterm", "FOO_1": "x", "_X": "y"]))
    }

    func testChildEnvironmentIsTheAllowListPlusOverrides() {
        let env = ExecEnvironment(nodeEnvironment: ["HOME": "/root", "SECRET": "s", "LD_PRELOAD": "x", "LC_TIME": "C",
                                                    "OPENCLAW_GATEWAY_TOKEN": "t"], pathEnv: "/usr/bin:/bin")
        XCTAssertEqual(env.childEnvironment(overrides: ["FOO": "1"], shellWrapper: false),
                       ["HOME": "/root", "LC_TIME": "C", "PATH": "/usr/bin:/bin", "FOO": "1"])
    }

    func testShellWrapperRunsKeepOnlyTerminalAndLocaleOverrides() {
        let env = ExecEnvironment(nodeEnvironment: [:], pathEnv: "/bin")
        XCTAssertEqual(env.childEnvironment(overrides: ["FOO": "1", "LC_ALL": "C", "TERM": "dumb"], shellWrapper: true),
                       ["PATH": "/bin", "LC_ALL": "C", "TERM": "dumb"])
    }

    /// The routing variables come from the execution context alone: sent in `env` they are
    /// dropped, in `env NAME=VALUE cmd` refused.
    func testRoutingVariablesComeFromTheExecutionContextAlone() {
        let env = ExecEnvironment(nodeEnvironment: [:], pathEnv: "/bin")
        XCTAssertEqual(env.childEnvironment(overrides: ["OPENCLAW_SUBAGENT_EXEC": "1", "OPENCLAW_CHANNEL_CONTEXT": "forged", "FOO": "1"],
                                            shellWrapper: false),
                       ["PATH": "/bin", "FOO": "1"])
        XCTAssertEqual(env.childEnvironment(overrides: ["OPENCLAW_SUBAGENT_EXEC": "0"], shellWrapper: false,
                                            context: ["OPENCLAW_SUBAGENT_EXEC": "1"]),
                       ["PATH": "/bin", "OPENCLAW_SUBAGENT_EXEC": "1"])
        XCTAssertEqual(ExecEnvironment.inspectAssignments(["OPENCLAW_SUBAGENT_EXEC"]),
                       "SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: OPENCLAW_SUBAGENT_EXEC)")
    }
}

final class SystemRunRequestTests: XCTestCase {
    func parse(_ text: String) -> Result<SystemRunRequest, WireError> {
        let value = try! JSONText.decode(JSONValue.self, from: text)
        return SystemRunRequest.parse(value.objectValue!, newRunId: { "generated" })
    }

    func message(_ text: String) -> String? {
        if case let .failure(error) = parse(text) { return error.message }
        return nil
    }

    func testCommandIsRequired() {
        XCTAssertEqual(message(#"{"command": []}"#), "command required")
        XCTAssertEqual(message(#"{}"#), "command required")
        XCTAssertEqual(message(#"{"rawCommand": "ls"}"#), "rawCommand requires params.command")
    }

    func testRawCommandMustBeTheCanonicalText() {
        XCTAssertEqual(message(#"{"command": ["ls", "-la"], "rawCommand": "ls"}"#),
                       "INVALID_REQUEST: rawCommand does not match command")
        XCTAssertNil(message(#"{"command": ["/bin/sh", "-lc", "echo hi"], "rawCommand": "/bin/sh -lc \"echo hi\""}"#))
        XCTAssertNil(message(#"{"command": ["/bin/sh", "-lc", "echo hi"], "rawCommand": "echo hi"}"#))
    }

    func testDefaultsAndTrimming() throws {
        let request = try parse(#"{"command": ["ls", 1, true], "cwd": "  ", "sessionKey": " s ", "runId": ""}"#).get()
        XCTAssertEqual(request.command, ["ls", "1", "true"])
        XCTAssertNil(request.cwd)
        XCTAssertEqual(request.sessionKey, "s")
        XCTAssertEqual(request.runId, "generated")
    }

    func testApprovalWithoutPlanIsInvalid() throws {
        let request = try parse(#"{"command": ["/usr/bin/id"], "approved": true}"#).get()
        XCTAssertEqual(request.checkApprovalBinding(), WireError(code: "INVALID_REQUEST", message: "systemRunPlan invalid"))
        let unknownDecision = try parse(#"{"command": ["/usr/bin/id"], "approvalDecision": "allow-forever"}"#).get()
        XCTAssertNil(unknownDecision.checkApprovalBinding())
    }

    func testApprovalWithAnotherPlanIsRejected() throws {
        let request = try parse("""
            {"command": ["/usr/bin/id", "-g"], "approved": true,
             "systemRunPlan": {"argv": ["/usr/bin/id", "-u"], "cwd": null, "commandText": "/usr/bin/id -u"}}
            """).get()
        XCTAssertEqual(request.checkApprovalBinding(),
                       WireError(code: "INVALID_REQUEST", message: "explicit approval requires matching systemRunPlan"))
        let matching = try parse("""
            {"command": ["/usr/bin/id", "-u"], "approved": true,
             "systemRunPlan": {"argv": ["/usr/bin/id", "-u"], "cwd": null, "commandText": "/usr/bin/id -u"}}
            """).get()
        XCTAssertNil(matching.checkApprovalBinding())
    }

    func testBadEnvValuesAreRejectedNotDropped() {
        XCTAssertEqual(message(#"{"command": ["ls"], "env": {"A": 1}}"#), "INVALID_REQUEST: env values must be strings (A)")
    }
}
