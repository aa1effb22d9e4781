import SupervisorCore
import XCTest

final class ExecCommandTextTests: XCTestCase {
    func testArgumentWithSpaceIsDoubleQuoted() {
        XCTAssertEqual(ExecCommandText.format(["/bin/sh", "-lc", "echo hi"]), "/bin/sh -lc \"echo hi\"")
    }

    func testEmptyArgumentRendersAsEmptyQuotes() {
        XCTAssertEqual(ExecCommandText.format(["echo", ""]), "echo \"\"")
    }

    func testInnerDoubleQuotesAreBackslashEscaped() {
        XCTAssertEqual(ExecCommandText.format(["echo", "say \"hi\""]), "echo \"say \\\"hi\\\"\"")
        XCTAssertEqual(ExecCommandText.format(["a\"b"]), "\"a\\\"b\"")
    }

    func testTrailingSpaceInsideExecutableIsKept() {
        XCTAssertEqual(ExecCommandText.format(["ls ", "-la"]), "\"ls \" -la")
        XCTAssertNotEqual(ExecCommandText.format(["ls "]), ExecCommandText.format(["ls"]))
    }

    func testShellMetacharactersStayVerbatim() {
        XCTAssertEqual(ExecCommandText.format(["echo", "$HOME", "'x'", "*", "a\\b"]), "echo $HOME 'x' * a\\b")
    }

    func testTabsNewlinesAndUnicodeSpacesCountAsWhitespace() {
        XCTAssertEqual(ExecCommandText.format(["a\tb"]), "\"a\tb\"")
        XCTAssertEqual(ExecCommandText.format(["a\nb"]), "\"a\nb\"")
        XCTAssertEqual(ExecCommandText.format(["a\u{00A0}b"]), "\"a\u{00A0}b\"")
    }

    func testEmptyArgvRendersEmptyString() {
        XCTAssertEqual(ExecCommandText.format([]), "")
    }
}
