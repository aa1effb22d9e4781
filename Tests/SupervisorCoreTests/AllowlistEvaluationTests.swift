import SupervisorCore
import XCTest

final class AllowlistEvaluationTests: ScratchTestCase {
    private func evaluate(
        _ argv: [String], allowlist: [String] = [], pathEnv: String = "/usr/bin", cwd: String? = nil,
        safeBins: SafeBinPolicy = .default, skillBins: [(name: String, resolvedPath: String)] = []
    ) -> AllowlistEvaluation {
        AllowlistEvaluation.evaluate(
            argv: argv, cwd: cwd, pathEnv: pathEnv, home: "/home/u", allowlist: allowlist.map(AllowlistRule.init(stringLiteral:)),
            safeBins: safeBins, skillBins: skillBins)
    }

    func testShellPayloadWithAllowlistedSegmentsIsSatisfied() {
        let argv = ["/bin/sh", "-lc", "/usr/bin/true && /usr/bin/id"]
        let result = evaluate(argv, allowlist: ["/usr/bin/*"])
        XCTAssertTrue(result.analysisOk)
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertNil(result.blockedReason)
        XCTAssertEqual(result.shell, ShellInvocation(executableIndex: 0, shellIndex: 0, payloadIndex: 2, payload: argv[2]))
        XCTAssertEqual(result.segments.map(\.resolvedPath), ["/usr/bin/true", "/usr/bin/id"])
        XCTAssertEqual(result.segments.map(\.matchedPattern), ["/usr/bin/*", "/usr/bin/*"])
        XCTAssertEqual(result.executionArgv, argv)
        XCTAssertEqual(result.allowAlwaysPatterns, ["/usr/bin/true", "/usr/bin/id"])
    }

    func testRedirectionInPayloadFailsAnalysis() {
        let result = evaluate(["/bin/sh", "-lc", "/usr/bin/true && /usr/bin/id > out.txt"], allowlist: ["/usr/bin/*"])
        XCTAssertFalse(result.analysisOk)
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertEqual(result.blockedReason, "unsupported shell token: redirection >")
        XCTAssertNil(result.executionArgv)
        XCTAssertNil(result.allowAlwaysPatterns)
        XCTAssertEqual(result.segments, [])
    }

    func testUnsatisfiedSegmentFailsTheWholePayload() {
        let result = evaluate(["/bin/sh", "-lc", "/usr/bin/true && /usr/bin/id"], allowlist: ["/usr/bin/true"])
        XCTAssertTrue(result.analysisOk)
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.map(\.satisfied), [true, false])
        XCTAssertNil(result.executionArgv)
        XCTAssertEqual(result.allowAlwaysPatterns, ["/usr/bin/true", "/usr/bin/id"])
    }

    func testNiceWrappedCommandMatchesAndPersistsTheInnerExecutable() {
        let result = evaluate(["nice", "/usr/bin/id"], allowlist: ["/usr/bin/id"])
        XCTAssertTrue(result.analysisOk)
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertNil(result.shell)
        XCTAssertEqual(result.segments.first?.wrappers, [DispatchWrapper(name: "nice", index: 0)])
        XCTAssertEqual(result.segments.first?.effectiveArgv, ["/usr/bin/id"])
        XCTAssertEqual(result.allowAlwaysPatterns, ["/usr/bin/id"])
        XCTAssertEqual(result.executionArgv, ["/usr/bin/id"])
    }

    func testPlainCommandRunsTheResolvedInnerArgvWithoutWrappers() {
        let result = evaluate(["timeout", "5", "id", "-u"], allowlist: ["/usr/bin/id"])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.executionArgv, ["/usr/bin/id", "-u"])
    }

    func testMatchingUsesThePathAsFoundWhileExecutionPinsTheRealpath() {
        let viaBin = evaluate(["id"], allowlist: ["/usr/bin/id"], pathEnv: "/bin")
        XCTAssertEqual(viaBin.segments.first?.resolvedPath, "/bin/id")
        XCTAssertFalse(viaBin.allowlistSatisfied)

        let allowedViaBin = evaluate(["/bin/id"], allowlist: ["/bin/id"])
        XCTAssertTrue(allowedViaBin.allowlistSatisfied)
        XCTAssertEqual(allowedViaBin.executionArgv, ["/usr/bin/id"])
        XCTAssertEqual(allowedViaBin.allowAlwaysPatterns, ["/bin/id"])

        let viaUsrBin = evaluate(["id"], allowlist: ["/usr/bin/id"], pathEnv: "/usr/bin")
        XCTAssertEqual(viaUsrBin.segments.first?.resolvedPath, "/usr/bin/id")
        XCTAssertTrue(viaUsrBin.allowlistSatisfied)
        XCTAssertEqual(viaUsrBin.executionArgv, ["/usr/bin/id"])
    }

    func testEnvSplitStringIsBlocked() {
        let result = evaluate(["env", "-S", "x", "y"], allowlist: ["*"])
        XCTAssertFalse(result.analysisOk)
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertEqual(result.blockedReason, "env: -S/--split-string re-splits its argument into a new command line")
        XCTAssertNil(result.executionArgv)
        XCTAssertNil(result.allowAlwaysPatterns)
    }

    func testBlockedWrapperInsidePayloadFailsAnalysis() {
        let result = evaluate(["/bin/sh", "-c", "env -S 'id' x"], allowlist: ["/usr/bin/*"])
        XCTAssertFalse(result.analysisOk)
        XCTAssertNotNil(result.shell)
    }

    func testSafeBinWithFileOperandIsRejected() {
        let result = evaluate(["/bin/sh", "-lc", "head -n 1 $HOME"])
        XCTAssertTrue(result.analysisOk)
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.first?.satisfiedBySafeBin, false)
        XCTAssertNil(result.executionArgv)
    }

    func testSafeBinDoesNotCoverTheOtherPipelineStage() {
        let result = evaluate(["/bin/sh", "-lc", "echo x | head -n 1"])
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.map(\.satisfied), [false, true])
        XCTAssertEqual(result.segments.map(\.satisfiedBySafeBin), [false, true])
    }

    func testSafeBinPayloadIsRebuiltSingleQuoted() {
        let result = evaluate(["/bin/sh", "-lc", "echo x | head -n 1"], allowlist: ["/usr/bin/echo"])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.executionArgv, ["/bin/sh", "-lc", "echo x | '/usr/bin/head' '-n' '1'"])
        // A word the shell would expand is no safe-bin usage at all (upstream's safe-bins table).
        XCTAssertFalse(evaluate(["/bin/sh", "-lc", "echo x | head -n $N"], allowlist: ["/usr/bin/echo"]).allowlistSatisfied)
    }

    func testAllowlistedSafeBinIsNotRequoted() {
        let result = evaluate(["/bin/sh", "-lc", "head -n 1"], allowlist: ["/usr/bin/head"])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.first?.satisfiedBySafeBin, true)
        XCTAssertEqual(result.executionArgv, ["/bin/sh", "-lc", "head -n 1"])
    }

    func testShellBehindWrappersRunsWithoutThemAndKeepsExtraArguments() {
        let result = evaluate(["nice", "sh", "-c", "wc -l", "arg0"])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.shell?.executableIndex, 1)
        XCTAssertEqual(result.executionArgv, ["/usr/bin/sh", "-c", "'/usr/bin/wc' '-l'", "arg0"])
    }

    func testSafeBinFromUntrustedPathDirectoryIsRejected() {
        Scratch.writeFile(dir + "/head", mode: 0o755)
        let result = evaluate(["/bin/sh", "-lc", "head -n 1"], pathEnv: "\(dir):/usr/bin")
        XCTAssertEqual(result.segments.first?.resolvedPath, dir + "/head")
        XCTAssertFalse(result.allowlistSatisfied)
    }

    func testUntrustedShellBinaryFailsAnalysis() {
        Scratch.writeFile(dir + "/sh", mode: 0o755)
        let result = evaluate([dir + "/sh", "-c", "/usr/bin/id"], allowlist: ["/usr/bin/*"])
        XCTAssertFalse(result.analysisOk)
        XCTAssertEqual(result.blockedReason, "shell \(dir)/sh is not a trusted executable")
    }

    func testAllowlistedShellOutsideTrustedDirsIsAccepted() {
        Scratch.writeFile(dir + "/sh", mode: 0o755)
        let result = evaluate([dir + "/sh", "-c", "/usr/bin/id"], allowlist: ["/usr/bin/*", dir + "/sh"])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.executionArgv, [dir + "/sh", "-c", "/usr/bin/id"])
    }

    func testWrapperInsidePayloadMustBeTrusted() {
        Scratch.writeFile(dir + "/nice", mode: 0o755)
        let trusted = evaluate(["/bin/sh", "-c", "nice /usr/bin/id"], allowlist: ["/usr/bin/id"])
        XCTAssertTrue(trusted.allowlistSatisfied)
        let hijacked = evaluate(["/bin/sh", "-c", "nice /usr/bin/id"], allowlist: ["/usr/bin/id"], pathEnv: "\(dir):/usr/bin")
        XCTAssertFalse(hijacked.allowlistSatisfied)
    }

    func testExpandingExecutableOrWrapperWordIsNotTrusted() {
        let variable = evaluate(["/bin/sh", "-c", "$X/id"], allowlist: ["/usr/bin/*"])
        XCTAssertTrue(variable.analysisOk)
        XCTAssertNil(variable.segments.first?.resolvedPath)
        XCTAssertFalse(variable.allowlistSatisfied)
        let braces = evaluate(["/bin/bash", "-c", "timeout {5,/tmp/x} /usr/bin/id"], allowlist: ["/usr/bin/id"])
        XCTAssertFalse(braces.allowlistSatisfied)
        let argument = evaluate(["/bin/sh", "-c", "/usr/bin/id $USER"], allowlist: ["/usr/bin/id"])
        XCTAssertTrue(argument.allowlistSatisfied)
    }

    func testSkillBinSatisfiesByNameAndPath() {
        let result = evaluate(["id"], skillBins: [(name: "id", resolvedPath: "/usr/bin/id")])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.first?.satisfiedBySkill, true)
        let wrongPath = evaluate(["id"], skillBins: [(name: "id", resolvedPath: "/bin/id")])
        XCTAssertFalse(wrongPath.allowlistSatisfied)
    }

    func testUnresolvableExecutableIsUnsatisfied() {
        let result = evaluate(["no-such-tool-xyz"], allowlist: ["/usr/bin/*"])
        XCTAssertTrue(result.analysisOk)
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertNil(result.segments.first?.resolvedPath)
        XCTAssertNil(result.executionArgv)
        XCTAssertEqual(result.allowAlwaysPatterns, [])
    }

    func testBareStarSatisfiesEvenAnUnresolvedCommand() {
        let result = evaluate(["no-such-tool-xyz", "a"], allowlist: ["*"])
        XCTAssertTrue(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.first?.matchedPattern, "*")
        XCTAssertEqual(result.executionArgv, ["no-such-tool-xyz", "a"])
    }

    func testBasenameOnlyAllowlistEntryIsIgnored() {
        XCTAssertFalse(evaluate(["id"], allowlist: ["id"]).allowlistSatisfied)
    }

    func testTrailingSpaceExecutableDoesNotMatch() {
        let result = evaluate(["id "], allowlist: ["/usr/bin/id"])
        XCTAssertNil(result.segments.first?.resolvedPath)
        XCTAssertFalse(result.allowlistSatisfied)
    }

    func testSudoIsTheSegmentExecutable() {
        let result = evaluate(["sudo", "/usr/bin/id"], allowlist: ["/usr/bin/id"])
        XCTAssertFalse(result.allowlistSatisfied)
        XCTAssertEqual(result.segments.first?.effectiveArgv, ["sudo", "/usr/bin/id"])
    }

    func testShellAsSegmentExecutablePersistsNothing() {
        let plain = evaluate(["bash", "script.sh"], allowlist: ["/usr/bin/*"])
        XCTAssertTrue(plain.allowlistSatisfied)
        XCTAssertNil(plain.allowAlwaysPatterns)
        let nested = evaluate(["/bin/sh", "-c", "/usr/bin/id && bash -c id"], allowlist: ["/usr/bin/*"])
        XCTAssertTrue(nested.allowlistSatisfied)
        XCTAssertNil(nested.allowAlwaysPatterns)
    }

    func testEnvAssignmentsInsidePayloadAreReported() {
        let result = evaluate(["/bin/sh", "-c", "env LD_PRELOAD=/tmp/x.so /usr/bin/id"], allowlist: ["/usr/bin/id"])
        XCTAssertEqual(result.segments.first?.envAssignments, [EnvAssignment(key: "LD_PRELOAD", value: "/tmp/x.so")])
    }

    func testInlineEvalIsReportedPerSegment() {
        let result = evaluate(["/bin/sh", "-c", "/usr/bin/true && python3 -c 'print(1)'"], allowlist: ["/usr/bin/*"])
        XCTAssertEqual(result.segments.map(\.inlineEval), [nil, "python3 -c"])
    }

    func testUnsafeShellOptionFailsAnalysis() {
        let result = evaluate(["bash", "-ic", "/usr/bin/id"], allowlist: ["/usr/bin/*"])
        XCTAssertFalse(result.analysisOk)
        XCTAssertEqual(result.blockedReason, "shell option -i is not allowed")
    }

    func testEmptyArgvFailsAnalysis() {
        XCTAssertEqual(evaluate([]).blockedReason, "command required")
    }
}
