import Dispatch
import Glibc
import NodeSupport
import OpenClawIPC
@testable import SupervisorCore
import XCTest

/// Issue 14: what an operator approves (and the audit log shows) is exactly what runs.
final class ApprovalIntegrityTests: ScratchTestCase {
    let pathEnv = "/usr/local/bin:/usr/bin:/bin"

    func parse(_ params: [String: JSONValue]) -> Result<SystemRunRequest, WireError> {
        SystemRunRequest.parse(params, newRunId: { "run-1" })
    }

    func message(_ params: [String: JSONValue]) -> String? {
        if case let .failure(error) = parse(params) { return error.message }
        return nil
    }

    func argv(_ words: [String]) -> JSONValue { .array(words.map(JSONValue.string)) }

    // MARK: Finding 2: NUL bytes

    func testNulInAnyFieldIsRefusedNamingTheField() {
        XCTAssertEqual(message(["command": argv(["echo", "a\u{0}b"])]), "INVALID_REQUEST: command[1] contains a NUL character")
        XCTAssertEqual(message(["command": argv(["echo"]), "cwd": .string("/tmp\u{0}/x")]), "INVALID_REQUEST: cwd contains a NUL character")
        XCTAssertEqual(message(["command": argv(["echo"]), "env": .object(["A\u{0}B": .string("1")])]),
                       "INVALID_REQUEST: env key contains a NUL character")
        XCTAssertEqual(message(["command": argv(["echo"]), "env": .object(["LANG": .string("C\u{0}x")])]),
                       "INVALID_REQUEST: env.LANG contains a NUL character")
        XCTAssertEqual(message(["command": argv(["echo", "hi"]), "rawCommand": .string("echo hi\u{0}")]),
                       "INVALID_REQUEST: rawCommand contains a NUL character")
        // A NUL inside a nested array survives String(x) coercion, so it is checked after it.
        XCTAssertEqual(message(["command": .array([.string("echo"), .array([.string("a\u{0}")])])]),
                       "INVALID_REQUEST: command[1] contains a NUL character")
    }

    func testTheSpawnerRefusesNulAndMalformedEnvironmentNames() {
        for spec in [SpawnSpec(path: "/bin/echo", argv: ["echo", "a\u{0}b"], env: [:]),
                     SpawnSpec(path: "/bin/echo", argv: ["echo"], env: [:], cwd: "/tmp\u{0}x"),
                     SpawnSpec(path: "/bin/echo", argv: ["echo"], env: ["A": "b\u{0}"]),
                     SpawnSpec(path: "/bin/echo", argv: ["echo"], env: ["A=B": "c"])] {
            XCTAssertThrowsError(try Spawner.spawn(spec)) { error in
                XCTAssertEqual((error as? SystemError)?.errno, EINVAL)
            }
        }
    }

    // MARK: Finding 3: carriers and env preludes

    func testPositionalCarriersRequireTheFullArgvAsRawCommand() {
        let carried = argv(["/bin/sh", "-lc", "$0 \"$1\"", "/usr/bin/touch", "/tmp/marker"])
        XCTAssertEqual(message(["command": carried, "rawCommand": .string("$0 \"$1\"")]),
                       "INVALID_REQUEST: rawCommand does not match command")
        guard case let .success(full) = parse(["command": carried, "rawCommand": .string(#"/bin/sh -lc "$0 \"$1\"" /usr/bin/touch /tmp/marker"#)]) else {
            return XCTFail("the full argv text is accepted")
        }
        XCTAssertEqual(full.displayText, #"/bin/sh -lc "$0 \"$1\"" /usr/bin/touch /tmp/marker"#)
    }

    func testAnEnvPreludeWithAssignmentsRequiresTheFullArgv() {
        let command = argv(["/usr/bin/env", "BASH_ENV=/tmp/payload.sh", "bash", "-lc", "echo hi"])
        XCTAssertEqual(message(["command": command, "rawCommand": .string("echo hi")]), "INVALID_REQUEST: rawCommand does not match command")
        XCTAssertNil(message(["command": command, "rawCommand": .string(#"/usr/bin/env BASH_ENV=/tmp/payload.sh bash -lc "echo hi""#)]))
        XCTAssertEqual(message(["command": argv(["env", "-i", "sh", "-c", "echo hi"]), "rawCommand": .string("echo hi")]),
                       "INVALID_REQUEST: rawCommand does not match command")
        // A wrapper that does not touch the environment keeps the payload.
        XCTAssertNil(message(["command": argv(["nice", "sh", "-c", "echo hi"]), "rawCommand": .string("echo hi")]))
        XCTAssertNil(message(["command": argv(["env", "sh", "-c", "echo hi"]), "rawCommand": .string("echo hi")]))
    }

    func testEventsShowThePayloadOnlyWhereItStandsForTheCommand() throws {
        let plain = try parse(["command": argv(["sh", "-lc", "echo hi"]), "rawCommand": .string("echo hi")]).get()
        XCTAssertEqual(plain.displayText, "echo hi")
        XCTAssertEqual(plain.commandText, #"sh -lc "echo hi""#)
        XCTAssertEqual(try parse(["command": argv(["sh", "-lc", "echo hi"])]).get().displayText, "echo hi")
        XCTAssertEqual(try parse(["command": argv(["sh", "-lc", "$0", "/usr/bin/id"])]).get().displayText, #"sh -lc $0 /usr/bin/id"#)
        XCTAssertEqual(try parse(["command": argv(["/bin/echo", "a b"])]).get().displayText, #"/bin/echo "a b""#)
    }

    // MARK: Finding 6: arithmetic and indirection in shell payloads

    func testExpansionsThatBashEvaluatesFailClosed() {
        for payload in ["ls ${X:='a[$(touch M)]'} ${HOME[$X]}", "ls ${HOME:$LC_X}", "echo ${!X}", "echo ${#X}", "echo ${X:-y}",
                        "echo $[1+1]", "echo $((1+1))", "echo $'\\x41'", "echo \"${X[0]}\"", "echo \"$[X]\"", "echo $\"x\"",
                        "echo $X[$Y]", "echo \"$X[1]\""] {
            XCTAssertThrowsError(try ShellPayloadParser.analyze(payload).get(), payload)
        }
        for payload in ["echo $HOME ${HOME} $1 ${10} $@ \"$*\" $? $$ ${_x9}", "ls -la"] {
            XCTAssertNoThrow(try ShellPayloadParser.analyze(payload).get(), payload)
        }
    }

    func testShellBuiltinsThatEvaluateNamesFailClosed() {
        func refusal(_ payload: String) -> String? {
            ShellBuiltins.refusal(ShellPayloadParser.parse(payload)![0])
        }
        XCTAssertNotNil(refusal("printf -v X y"))
        XCTAssertNotNil(refusal("printf $F y"))
        XCTAssertNotNil(refusal("test -v X"))
        XCTAssertNotNil(refusal("[ \"$X\" = 1 ]"))
        XCTAssertNotNil(refusal("[[ x -eq 1 ]]"))
        XCTAssertNotNil(refusal("if true"))
        // bash's `time` keyword runs what follows in the shell: the builtin, not the file.
        let timed = ShellPayloadParser.parse("time printf -v X y")![0]
        XCTAssertNotNil(ShellBuiltins.refusal(timed, commandIndex: 1))
        XCTAssertNil(ShellBuiltins.refusal(ShellPayloadParser.parse("nice printf -v X y")![0], commandIndex: 1))
        XCTAssertNil(refusal("printf '%s\\n' hi"))
        XCTAssertNil(refusal("[ -d /tmp ]"))
        XCTAssertNil(refusal("echo $HOME"))
        // A wrapper in front runs the binary (execvp), not the builtin.
        XCTAssertNil(refusal("/usr/bin/printf -v x"))
    }

    func testAllowlistAnalysisRefusesTheBuiltinForm() {
        let evaluation = AllowlistEvaluation.evaluate(
            argv: ["bash", "-c", "test -v \"$LC_X\""], cwd: nil, pathEnv: pathEnv, home: nil,
            allowlist: ["/usr/bin/test", "/usr/bin/["], safeBins: SafeBinPolicy(), skillBins: [])
        XCTAssertFalse(evaluation.analysisOk)
    }

    // MARK: Findings 8, 9: script operands

    func prepare(_ words: [String], cwd: String? = nil) -> Result<SystemRunPlan.Prepared, WireError> {
        let request = try! parse(["command": argv(words), "cwd": cwd.map(JSONValue.string) ?? .null]).get()
        return SystemRunPlan.prepare(request, pathEnv: pathEnv)
    }

    func operand(_ words: [String], cwd: String? = nil) throws -> SystemRunPlan.FileOperand? {
        try prepare(words, cwd: cwd ?? dir).get().plan.mutableFileOperand
    }

    func testASymlinkedScriptRunsByItsRealPath() throws {
        Scratch.writeFile(dir + "/benign.sh", mode: 0o644, contents: "echo benign\n")
        XCTAssertEqual(symlink(dir + "/benign.sh", dir + "/run.sh"), 0)
        let plan = try prepare(["bash", "run.sh"], cwd: dir).get().plan
        let real = ExecutableResolver.realpath(dir + "/benign.sh")!
        XCTAssertEqual(plan.mutableFileOperand?.path, real)
        XCTAssertEqual(plan.argv[1], real, "argv names the hashed file, not the link")
        XCTAssertEqual(plan.commandText, plan.argv[0] + " " + real)
    }

    func testShellOptionValuesAreNotTakenForTheScript() throws {
        Scratch.writeFile(dir + "/tool.sh", mode: 0o644, contents: "echo tool\n")
        Scratch.writeFile(dir + "/xtrace", mode: 0o644, contents: "decoy\n")
        Scratch.writeFile(dir + "/pipefail", mode: 0o644, contents: "decoy\n")
        XCTAssertEqual(try operand(["bash", "-o", "xtrace", "tool.sh"])?.argvIndex, 3)
        XCTAssertEqual(try operand(["bash", "-eo", "pipefail", "tool.sh"])?.argvIndex, 3)
        XCTAssertEqual(try operand(["bash", "+O", "extglob", "tool.sh"])?.argvIndex, 3)
        XCTAssertEqual(try operand(["sh", "-e", "--", "tool.sh"])?.argvIndex, 3)
        XCTAssertEqual(prepare(["bash", "-s", "tool.sh"], cwd: dir).failureMessage,
                       "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")
        XCTAssertEqual(prepare(["bash", "--rcfile", "x", "tool.sh"], cwd: dir).failureMessage,
                       "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")
    }

    func testVersionedInterpreterNamesAreBound() throws {
        Scratch.writeFile(dir + "/tool.pl", mode: 0o644, contents: "print 1\n")
        for name in ["perl5.36.0", "perl5", "python3.11", "node20", "ruby3.1", "lua5.4", "php8.2"] {
            XCTAssertEqual(ScriptOperand.program(of: [name, "tool.pl"], cwd: dir, pathEnv: pathEnv), .file(index: 1), name)
        }
        XCTAssertEqual(ScriptOperand.program(of: ["perl5.36.0", "-MPreload", "tool.pl"], cwd: dir, pathEnv: pathEnv), .unbindable)
    }

    func testAwkAndSedProgramFilesAreBound() throws {
        Scratch.writeFile(dir + "/prog.awk", mode: 0o644, contents: "{ print }\n")
        XCTAssertEqual(try operand(["awk", "-f", "prog.awk", "data.txt"])?.argvIndex, 2)
        XCTAssertEqual(try operand(["awk", "-v", "x=1", "-f", "prog.awk"])?.argvIndex, 4)
        XCTAssertNil(try operand(["awk", "{ print }", "prog.awk"]), "an inline program is in argv")
        for refused in [["awk", "-f", "prog.awk", "-f", "prog.awk"], ["awk", "-i", "lib.awk", "-f", "prog.awk"],
                        ["awk", "-fprog.awk"], ["awk", "-W", "exec", "prog.awk"]] {
            XCTAssertEqual(prepare(refused, cwd: dir).failureMessage,
                           "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command", "\(refused)")
        }
        Scratch.writeFile(dir + "/edit.sed", mode: 0o644, contents: "s/a/b/\n")
        XCTAssertEqual(try operand(["sed", "-n", "-f", "edit.sed", "in.txt"])?.argvIndex, 3)
        XCTAssertEqual(try operand(["sed", "-nf", "edit.sed"])?.argvIndex, 2)
        XCTAssertNil(try operand(["sed", "-e", "s/a/b/", "edit.sed"]))
    }

    func testAPayloadThatRunsAScriptCannotBeApprovedAsText() {
        Scratch.writeFile(dir + "/run.js", mode: 0o644, contents: "console.log(1)\n")
        XCTAssertEqual(prepare(["sh", "-lc", "node ./run.js"], cwd: dir).failureMessage,
                       "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")
        XCTAssertNotNil(try? prepare(["sh", "-lc", "echo hi && ls -la"], cwd: dir).get())
    }

    /// Review finds: what a payload runs is told from its text, or the approval is refused.
    func testPayloadCommandsAreFoundThroughRedirectionsKeywordsAndCarriers() throws {
        Scratch.writeFile(dir + "/run.sh", mode: 0o755, contents: "#!/bin/sh\necho run\n")
        Scratch.writeFile(dir + "/plain", mode: 0o755, contents: "echo not elf\n")
        let refused = "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command"
        for payload in ["./run.sh 2>&1 | tail -n 5", "cd /tmp\n./run.sh", "if true; then ./run.sh; fi", "exec ./run.sh",
                        ". ./run.sh", "source ./run.sh", "eval ./run.sh", "echo $(./run.sh)", "echo `id`", "$CMD x",
                        "./plain", "cat <<EOF\nx\nEOF"] {
            XCTAssertEqual(prepare(["sh", "-lc", payload], cwd: dir).failureMessage, refused, payload)
        }
        for payload in ["make 2>&1 | tail -n 20 > /dev/null", "cd /tmp\nls -la # list", "command -v git && git status",
                        "echo ${HOME:-x} $[1]", "time ls", "{ ls; }"] {
            XCTAssertNotNil(try? prepare(["sh", "-lc", payload], cwd: dir).get(), payload)
        }
        // Carriers are the command the payload runs: bound like one.
        let carried = try prepare(["bash", "-c", "\"$0\"", "./run.sh"], cwd: dir).get().plan
        XCTAssertEqual(carried.mutableFileOperand?.argvIndex, 3)
        XCTAssertEqual(carried.argv[3], ExecutableResolver.realpath(dir + "/run.sh"))
    }

    func testTheInterpreterIsJudgedByTheFileThatRuns() throws {
        Scratch.makeSubdirectory(dir + "/bin")
        XCTAssertEqual(symlink(ExecutableResolver.realpath("/usr/bin/perl")!, dir + "/bin/ls"), 0)
        Scratch.writeFile(dir + "/evil.pl", mode: 0o644, contents: "print 1\n")
        XCTAssertEqual(try operand(["nice", dir + "/bin/ls", "evil.pl"])?.argvIndex, 2)
        XCTAssertEqual(ScriptOperand.unversioned("tclsh8.6"), "tclsh")
        XCTAssertEqual(ScriptOperand.unversioned("guile-3.0"), "guile")
        XCTAssertEqual(ScriptOperand.unversioned("md5"), "md")
    }

    func testAFifoOperandIsNeverOpenedForReading() {
        XCTAssertEqual(mkfifo(dir + "/fifo.sh", 0o644), 0)
        XCTAssertEqual(prepare(["bash", "fifo.sh"], cwd: dir).failureMessage, "SYSTEM_RUN_DENIED: approval requires a file script operand")
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: dir + "/fifo.sh"), .failure(.notRegularFile))
        Scratch.writeFile(dir + "/real.sh", mode: 0o644, contents: "x\n")
        XCTAssertEqual(symlink(dir + "/real.sh", dir + "/link.sh"), 0)
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: dir + "/link.sh"), .failure(.unreadable), "O_NOFOLLOW")
    }

    // MARK: Finding 11: the approved plan is re-derived, never trusted

    func approvedRequest(_ plan: SystemRunPlan) -> SystemRunRequest {
        try! parse(["command": argv(plan.argv), "cwd": plan.cwd.map(JSONValue.string) ?? .null, "approved": .bool(true),
                    "systemRunPlan": plan.json]).get()
    }

    func testAForgedOperandPathIsNeverRead() throws {
        Scratch.writeFile(dir + "/tool.sh", mode: 0o644, contents: "echo tool\n")
        XCTAssertEqual(mkfifo(dir + "/fifo", 0o644), 0)
        var plan = try prepare(["bash", "tool.sh"], cwd: dir).get().plan
        plan.mutableFileOperand?.path = dir + "/fifo"
        // Opening the FIFO would block forever: run it aside, and fail (not hang) if it does.
        let request = approvedRequest(plan)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var message: String?
        DispatchQueue.global().async {
            message = ApprovedRun.verify(request, pathEnv: self.pathEnv).failureMessage
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "verify blocked on the forged FIFO path")
        XCTAssertEqual(message, "SYSTEM_RUN_DENIED: approval script operand changed before execution")
    }

    func testAnEditedOrMissingBindingIsRefused() throws {
        Scratch.writeFile(dir + "/tool.sh", mode: 0o644, contents: "echo tool\n")
        let plan = try prepare(["bash", "tool.sh"], cwd: dir).get().plan
        let good = try ApprovedRun.verify(approvedRequest(plan), pathEnv: pathEnv).get()
        XCTAssertEqual(good.operand?.path, plan.mutableFileOperand?.path)
        var unbound = plan
        unbound.mutableFileOperand = nil
        XCTAssertEqual(ApprovedRun.verify(approvedRequest(unbound), pathEnv: pathEnv).failureMessage,
                       "SYSTEM_RUN_DENIED: approval missing script operand binding")
        Scratch.writeFile(dir + "/tool.sh", mode: 0o644, contents: "echo evil\n")
        XCTAssertEqual(ApprovedRun.verify(approvedRequest(plan), pathEnv: pathEnv).failureMessage,
                       "SYSTEM_RUN_DENIED: approval script operand changed before execution")
    }

    // MARK: Finding 10: environment

    func testLoaderAndOptionVariablesBeyondUpstreamAreBlocked() {
        for key in ["PERLLIB", "PYTHONPLATLIBDIR", "LUA_INIT", "LUA_INIT_5_4", "LUA_PATH_5_4", "TAR_OPTIONS", "AWKPATH", "VIMINIT"] {
            XCTAssertEqual(ExecEnvironment.inspect([key: "x"])?.blocked, [key], key)
        }
        XCTAssertNil(ExecEnvironment.inspect(["FOO": "bar", "LANG": "C"]))
    }

    func testAnApprovedRunCarriesOnlyTerminalAndLocaleOverrides() {
        XCTAssertNil(ExecEnvironment.inspectApproved(["TERM": "xterm", "LC_ALL": "C", "NO_COLOR": "1"]))
        XCTAssertEqual(ExecEnvironment.inspectApproved(["FOO": "1", "LANG": "C"]),
                       "SYSTEM_RUN_DENIED: environment override rejected (not bound by the approval: FOO; put them in the approved command as `env NAME=VALUE …`)")
    }
}

extension Result {
    var failureMessage: String? {
        if case let .failure(error) = self { return (error as? WireError)?.message ?? "\(error)" }
        return nil
    }
}
