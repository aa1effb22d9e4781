import SupervisorCore
import XCTest

final class SafeBinsTests: ScratchTestCase {
    private let policy = SafeBinPolicy.default

    private func permits(_ argv: [String], at path: String? = nil) -> Bool {
        policy.permits(argv: argv, resolvedPath: path ?? "/usr/bin/\(argv[0])")
    }

    func testDefaultBinsAndTrustedDirs() {
        XCTAssertEqual(SafeBinPolicy.default.bins, ["cut", "uniq", "head", "tail", "tr", "wc"])
        XCTAssertEqual(SafeBinPolicy.default.trustedDirs, ["/bin", "/usr/bin"])
    }

    func testHeadLineCountFormsArePermitted() {
        XCTAssertTrue(permits(["head", "-n", "5"]))
        XCTAssertTrue(permits(["head", "-n5"]))
        XCTAssertTrue(permits(["head", "--lines=5"]))
        XCTAssertTrue(permits(["head", "--lines", "5"]))
        XCTAssertTrue(permits(["head", "-5"]))
        XCTAssertTrue(permits(["head", "-qn", "5"]))
        XCTAssertTrue(permits(["head"]))
        XCTAssertTrue(permits(["head", "-"]))
    }

    func testUnambiguousLongAbbreviationIsPermitted() {
        XCTAssertTrue(permits(["head", "--li=3"]))
        XCTAssertTrue(permits(["wc", "--wo"]))
    }

    func testAmbiguousLongAbbreviationIsRejected() {
        XCTAssertFalse(permits(["uniq", "--c"]))  // --count or --check-chars
    }

    func testFileOperandsAreRejected() {
        XCTAssertFalse(permits(["head", "*"]))
        XCTAssertFalse(permits(["tail", "$HOME/x"]))
        XCTAssertFalse(permits(["head", "/etc/passwd"]))
        XCTAssertFalse(permits(["head", "-n", "1", "notes.txt"]))
        XCTAssertFalse(permits(["head", "--", "-n"]))
        XCTAssertFalse(permits(["uniq", "in.txt", "out.txt"]))
        XCTAssertFalse(permits(["head", ""]))
    }

    func testRefusedOptionsAreRejectedIncludingAbbreviations() {
        XCTAssertFalse(permits(["wc", "--files0-from=x"]))
        XCTAssertFalse(permits(["wc", "--files0-from", "x"]))
        XCTAssertFalse(permits(["wc", "--files0=x"]))
        XCTAssertFalse(permits(["tail", "-f"]))
        XCTAssertFalse(permits(["tail", "--follow"]))
    }

    func testUnknownOptionsAreRejected() {
        XCTAssertFalse(permits(["cut", "--bogus"]))
        XCTAssertFalse(permits(["cut", "-x"]))
        XCTAssertFalse(permits(["head", "-n1x", "-Q"]))
        XCTAssertFalse(permits(["wc", "-lq"]))
    }

    func testValueRulesAreEnforced() {
        XCTAssertFalse(permits(["head", "-n"]))
        XCTAssertFalse(permits(["head", "--lines"]))
        XCTAssertFalse(permits(["head", "--verbose=yes"]))
        XCTAssertTrue(permits(["uniq", "--group=both"]))
        XCTAssertTrue(permits(["uniq", "--group", "-c"]))
        XCTAssertTrue(permits(["cut", "-d", ",", "-f", "1,3"]))
    }

    func testTrSetsArePermittedUnlessPathLike() {
        XCTAssertTrue(permits(["tr", "a-z", "A-Z"]))
        XCTAssertTrue(permits(["tr", "-d", "[:space:]"]))
        XCTAssertTrue(permits(["tr", "-s", " "]))
        XCTAssertFalse(permits(["tr", "/etc/passwd", "x"]))
        XCTAssertFalse(permits(["tr", "~", "x"]))
        XCTAssertFalse(permits(["tr", ".x", "y"]))
        XCTAssertFalse(permits(["tr"]))
        XCTAssertFalse(permits(["tr", "a", "b", "c"]))
        XCTAssertFalse(permits(["tr", "--", "a/b"]))
    }

    func testExecutableOutsideTrustedDirsIsRejected() {
        Scratch.makeSubdirectory(dir + "/evil")
        Scratch.writeFile(dir + "/evil/head", mode: 0o755)
        let found = ExecutableResolver.resolve("head", cwd: nil, pathEnv: "\(dir)/evil:/usr/bin")
        XCTAssertEqual(found, dir + "/evil/head")
        XCTAssertFalse(policy.permits(argv: ["head", "-n", "1"], resolvedPath: found))
        XCTAssertFalse(policy.permits(argv: ["head", "-n", "1"], resolvedPath: nil))
    }

    func testExtraTrustedDirIsHonoured() {
        Scratch.writeFile(dir + "/head", mode: 0o755)
        let extended = SafeBinPolicy.withExtraTrustedDirs([dir + "/"])
        XCTAssertTrue(extended.permits(argv: ["head", "-n", "1"], resolvedPath: dir + "/head"))
    }

    func testBothSpellingsOfTheMergedBinDirAreTrusted() {
        XCTAssertTrue(policy.permits(argv: ["head", "-n", "1"], resolvedPath: "/bin/head"))
        XCTAssertTrue(policy.permits(argv: ["/usr/bin/head", "-n", "1"], resolvedPath: "/usr/bin/head"))
        XCTAssertFalse(policy.permits(argv: ["head"], resolvedPath: "/usr/bin/../bin/head"))
    }

    func testResolvedNameMustMatchTheBin() {
        XCTAssertFalse(policy.permits(argv: ["head"], resolvedPath: "/usr/bin/tail"))
        XCTAssertFalse(policy.permits(argv: ["cat"], resolvedPath: "/usr/bin/cat"))
    }

    func testQuotedSingleQuotesEveryToken() {
        XCTAssertEqual(SafeBinPolicy.quoted(["head", "-n", "1"]), "'head' '-n' '1'")
        XCTAssertEqual(SafeBinPolicy.quoted(["it's"]), #"'it'\''s'"#)
        XCTAssertEqual(SafeBinPolicy.quoted(["$HOME", "*", ""]), "'$HOME' '*' ''")
    }

    func testQuotedTokensParseBackLiterallyWithoutExpansion() {
        let argv = ["tr", "-d", "$HOME *.txt ~ `id` $(id) it's \"q\" \\ {a,b}"]
        let tokens = ShellPayloadParser.parse(SafeBinPolicy.quoted(argv))?.first?.tokens
        XCTAssertEqual(tokens?.map(\.text), argv)
        XCTAssertEqual(tokens?.contains(where: \.hasExpansion), false)
    }
}
