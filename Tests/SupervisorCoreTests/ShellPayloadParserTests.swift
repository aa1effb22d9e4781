import SupervisorCore
import XCTest

final class ShellPayloadParserTests: XCTestCase {
    private func argvs(_ payload: String, file: StaticString = #filePath, line: UInt = #line) -> [[String]]? {
        guard let segments = ShellPayloadParser.parse(payload) else {
            XCTFail("refused \(payload): \(ShellPayloadParser.analyze(payload))", file: file, line: line)
            return nil
        }
        return segments.map(\.argv)
    }

    func testListAndPipelineOperatorsSplitSegments() {
        let segments = ShellPayloadParser.parse("a 1 && b || c ; d | e")
        XCTAssertEqual(segments?.map(\.argv), [["a", "1"], ["b"], ["c"], ["d"], ["e"]])
        XCTAssertEqual(segments?.map(\.operatorAfter), [.and, .or, .sequence, .pipe, nil])
        XCTAssertEqual(segments?.map(\.source), ["a 1", "b", "c", "d", "e"])
    }

    func testOperatorsSplitWithoutSurroundingSpaces() {
        XCTAssertEqual(argvs("a&&b||c;d|e"), [["a"], ["b"], ["c"], ["d"], ["e"]])
    }

    func testSingleDoubleAndBackslashQuoting() {
        XCTAssertEqual(argvs("echo 'a b' \"c d\" e\\ f 'x'\"y\"z"), [["echo", "a b", "c d", "e f", "xyz"]])
    }

    func testDoubleQuoteEscapes() {
        XCTAssertEqual(argvs(#"echo "a\"b\$c\\d\x\`""#), [["echo", #"a"b$c\d\x`"#]])
    }

    func testOperatorsInsideQuotesAreLiteral() {
        XCTAssertEqual(argvs("echo 'a && b' \"c | d\" e\\;f"), [["echo", "a && b", "c | d", "e;f"]])
    }

    func testEmptyQuotedArgumentsArePreserved() {
        XCTAssertEqual(argvs("echo '' \"\""), [["echo", "", ""]])
    }

    func testQuotedNewlineAndQuotedBacktickAreLiteral() {
        XCTAssertEqual(argvs("echo 'a\nb' '`id`' a#b"), [["echo", "a\nb", "`id`", "a#b"]])
    }

    func testExpansionCharactersAreFlagged() {
        let tokens = ShellPayloadParser.parse(#"head $HOME "$X" '$Y' \$Z *.txt "*" ~ a{b,c} x?y [ab] plain"#)?.first?.tokens
        XCTAssertEqual(tokens?.map(\.hasExpansion),
                       [false, true, true, false, false, true, false, true, true, true, true, false])
        XCTAssertEqual(tokens?.map(\.text),
                       ["head", "$HOME", "$X", "$Y", "$Z", "*.txt", "*", "~", "a{b,c}", "x?y", "[ab]", "plain"])
    }

    func testRefusedConstructs() {
        let refused: [(String, String)] = [
            ("id > out.txt", "redirection"),
            ("id >> out.txt", "redirection"),
            ("sort < in.txt", "redirection"),
            ("id 2>&1", "redirection"),
            ("id &> f", "&"),
            ("cat <<EOF", "redirection"),
            ("diff <(id) x", "redirection"),
            ("echo $(id)", "$()"),
            ("echo \"$(id)\"", "$()"),
            ("echo $((1+2))", "$()"),
            ("echo `id`", "`"),
            ("echo \"`id`\"", "`"),
            ("(id)", "("),
            ("id )", ")"),
            ("a\nb", "newline"),
            ("a\rb", "newline"),
            ("sleep 1 &", "&"),
            ("a & b", "&"),
            ("a |& b", "|&"),
            ("{ id; }", "group"),
            ("} x", "group"),
            ("a && && b", "empty segment"),
            ("&& a", "empty segment"),
            ("a &&", "empty segment"),
            ("a;;b", "empty segment"),
            ("a |", "empty segment"),
            ("", "empty command"),
            ("   ", "empty command"),
            ("echo 'abc", "unterminated"),
            ("echo \"abc", "unterminated"),
            ("echo abc\\", "unterminated"),
            ("# comment", "comment"),
            ("id # comment", "comment"),
        ]
        for (payload, reason) in refused {
            switch ShellPayloadParser.analyze(payload) {
            case .success(let segments): XCTFail("accepted \(payload.debugDescription): \(segments.map(\.argv))")
            case .failure(let error):
                XCTAssertTrue(error.reason.contains(reason), "\(payload.debugDescription): \(error.reason)")
            }
        }
    }

    func testQuotedBraceIsNotAGroup() {
        XCTAssertEqual(argvs("'{' x"), [["{", "x"]])
        XCTAssertEqual(argvs("echo {"), [["echo", "{"]])
    }

    func testRenderSubstitutesSegmentsAndKeepsOthersVerbatim() {
        let segments = ShellPayloadParser.parse("echo  \"$X\"   |head -n 1&&true")!
        XCTAssertEqual(ShellPayloadParser.render(segments), "echo  \"$X\" | head -n 1 && true")
        XCTAssertEqual(
            ShellPayloadParser.render(segments, replacements: [1: "'head' '-n' '1'"]),
            "echo  \"$X\" | 'head' '-n' '1' && true")
    }

    /// Found by scripts/fuzz (Fuzz/corpus/shell-analysis/crash-trailing-escaped-blank-*): a
    /// segment's source lost its escaped trailing blank, so a rebuilt payload ended in a bare
    /// backslash and meant something else than the one analysed.
    func testAnEscapedTrailingBlankStaysInTheSegmentSource() throws {
        for payload in ["echo a\\ ", "echo a\\  ", "echo a\\ | cat", "echo a\\\\ ; true"] {
            let segments = try ShellPayloadParser.analyze(payload).get()
            let rendered = ShellPayloadParser.render(segments)
            XCTAssertEqual(try ShellPayloadParser.analyze(rendered).get().map(\.argv), segments.map(\.argv), payload)
        }
        XCTAssertEqual(ShellPayloadParser.parse("echo a\\ ")?.first?.source, "echo a\\ ")
        XCTAssertEqual(ShellPayloadParser.parse("echo a\\\\ ")?.first?.source, "echo a\\\\")
    }
}

extension ShellPayloadParserTests {
    /// A backslash-newline joins lines as the shell does (upstream's joinShellLineContinuations),
    /// outside single quotes and comments.
    func testLineContinuationsAreJoinedAsTheShellJoinsThem() {
        XCTAssertEqual(ShellPayloadParser.parse("echo a\\\nb")?.first?.argv, ["echo", "ab"])
        XCTAssertEqual(ShellPayloadParser.parse("echo \"a\\\nb\"")?.first?.argv, ["echo", "ab"])
        XCTAssertEqual(ShellPayloadParser.parse("echo 'a\\\nb'")?.first?.argv, ["echo", "a\\\nb"], "single quotes keep both")
        XCTAssertNil(ShellPayloadParser.parse("echo \"ok $\\\n(id -u)\""), "a continuation cannot hide a substitution")
    }
}
