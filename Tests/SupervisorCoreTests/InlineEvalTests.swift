import SupervisorCore
import XCTest

final class InlineEvalTests: XCTestCase {
    func testPythonCommandFlag() {
        XCTAssertEqual(InlineEval.detect(["python3", "-c", "print(1)"]), "python3 -c")
        XCTAssertEqual(InlineEval.detect(["/usr/bin/python", "-Bc", "print(1)"]), "python -c")
        XCTAssertEqual(InlineEval.detect(["python3.12", "-cprint(1)"]), "python3.12 -c")
    }

    func testNodeEvalAndPrintFlags() {
        XCTAssertEqual(InlineEval.detect(["node", "-e", "1"]), "node -e")
        XCTAssertEqual(InlineEval.detect(["node", "--eval=1"]), "node --eval")
        XCTAssertEqual(InlineEval.detect(["node", "-pe", "1"]), "node -p")
        XCTAssertEqual(InlineEval.detect(["nodejs", "--print", "1"]), "nodejs --print")
    }

    func testOtherInterpreters() {
        XCTAssertEqual(InlineEval.detect(["ruby", "-ne", "puts 1"]), "ruby -e")
        XCTAssertEqual(InlineEval.detect(["perl", "-E", "say 1"]), "perl -E")
        XCTAssertEqual(InlineEval.detect(["perl", "-lne", "print"]), "perl -e")
        XCTAssertEqual(InlineEval.detect(["php8.2", "-r", "echo 1;"]), "php8.2 -r")
        XCTAssertEqual(InlineEval.detect(["lua", "-e", "print(1)"]), "lua -e")
        XCTAssertEqual(InlineEval.detect(["osascript", "-e", "beep"]), "osascript -e")
    }

    func testDispatchWrappersAreUnwrappedFirst() {
        XCTAssertEqual(InlineEval.detect(["nice", "env", "A=1", "python3", "-c", "x"]), "python3 -c")
    }

    func testScriptsAndOtherCommandsAreNotInlineEval() {
        XCTAssertNil(InlineEval.detect(["python3", "script.py"]))
        XCTAssertNil(InlineEval.detect(["python3", "--", "-c"]))
        XCTAssertNil(InlineEval.detect(["ls", "-c"]))
        XCTAssertNil(InlineEval.detect(["pythonista", "-c", "x"]))
        XCTAssertNil(InlineEval.detect(["env", "-S", "python3 -c x"]))
        XCTAssertNil(InlineEval.detect([]))
    }
}
