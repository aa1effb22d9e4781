import SupervisorCore
import XCTest

final class ShellWrapperTests: XCTestCase {
    private func assertBlocked(_ argv: [String], containing text: String, file: StaticString = #filePath, line: UInt = #line) {
        guard case .blocked(let reason) = ShellWrapper.analyze(argv) else {
            return XCTFail("expected blocked, got \(ShellWrapper.analyze(argv))", file: file, line: line)
        }
        XCTAssertTrue(reason.contains(text), "reason \"\(reason)\" lacks \"\(text)\"", file: file, line: line)
    }

    func testLoginCommandFlag() {
        XCTAssertEqual(
            ShellWrapper.detect(["/bin/sh", "-lc", "echo hi"]),
            ShellInvocation(executableIndex: 0, shellIndex: 0, payloadIndex: 2, payload: "echo hi"))
    }

    func testCombinedClusterContainingC() {
        XCTAssertEqual(ShellWrapper.detect(["bash", "-xc", "id"])?.payloadIndex, 2)
        XCTAssertEqual(ShellWrapper.detect(["bash", "-ec", "id"])?.payload, "id")
        XCTAssertEqual(ShellWrapper.detect(["zsh", "-ce", "id"])?.payload, "id")
    }

    func testLongCommandFlag() {
        XCTAssertEqual(
            ShellWrapper.detect(["fish", "--command", "id"]),
            ShellInvocation(executableIndex: 0, shellIndex: 0, payloadIndex: 2, payload: "id"))
    }

    func testOptionsBeforeTheFlagAndExtraArgumentsAreKept() {
        XCTAssertEqual(
            ShellWrapper.detect(["bash", "-e", "-c", "echo $0 $1", "arg0", "arg1"]),
            ShellInvocation(executableIndex: 0, shellIndex: 0, payloadIndex: 3, payload: "echo $0 $1"))
        XCTAssertEqual(ShellWrapper.detect(["bash", "--noprofile", "--norc", "-c", "id"])?.payloadIndex, 4)
    }

    func testSetOptionValueIsSkipped() {
        XCTAssertEqual(ShellWrapper.detect(["bash", "-o", "pipefail", "-c", "id"])?.payloadIndex, 4)
        XCTAssertEqual(ShellWrapper.detect(["bash", "-oc", "pipefail", "id"])?.payloadIndex, 3)
    }

    func testBusyboxShellAppletIsUnwrapped() {
        XCTAssertEqual(
            ShellWrapper.detect(["busybox", "sh", "-c", "id"]),
            ShellInvocation(executableIndex: 0, shellIndex: 1, payloadIndex: 3, payload: "id"))
        XCTAssertEqual(ShellWrapper.detect(["toybox", "--", "sh", "-c", "id"])?.shellIndex, 2)
    }

    func testBusyboxNonShellAppletIsNotAShellWrapper() {
        XCTAssertEqual(ShellWrapper.analyze(["busybox", "ls", "-c", "x"]), .none)
        XCTAssertEqual(ShellWrapper.analyze(["busybox", "/bin/sh", "-c", "x"]), .none)
    }

    func testShellBehindDispatchWrappers() {
        XCTAssertEqual(
            ShellWrapper.detect(["nice", "env", "LANG=C", "/bin/sh", "-c", "id"]),
            ShellInvocation(executableIndex: 3, shellIndex: 3, payloadIndex: 5, payload: "id"))
    }

    func testScriptFileIsNotAShellWrapper() {
        XCTAssertEqual(ShellWrapper.analyze(["bash", "script.sh", "-c", "x"]), .none)
        XCTAssertEqual(ShellWrapper.analyze(["bash", "--", "-c", "x"]), .none)
        XCTAssertEqual(ShellWrapper.analyze(["bash"]), .none)
        XCTAssertEqual(ShellWrapper.analyze(["ls", "-c", "x"]), .none)
    }

    func testOptionsThatRunOtherCodeAreBlocked() {
        assertBlocked(["bash", "-i", "-c", "id"], containing: "-i")
        assertBlocked(["bash", "-ic", "id"], containing: "-i")
        assertBlocked(["bash", "-kc", "id LD_PRELOAD=x"], containing: "-k")
        assertBlocked(["bash", "-o", "keyword", "-c", "id"], containing: "keyword")
        assertBlocked(["bash", "--rcfile", "x", "-c", "id"], containing: "--rcfile")
        assertBlocked(["fish", "-C", "evil", "-c", "id"], containing: "-C")
        assertBlocked(["bash", "-O", "extglob", "-c", "id"], containing: "-O")
    }

    func testCommandStringThatLooksLikeAnOptionIsBlocked() {
        assertBlocked(["sh", "-c", "-e", "id"], containing: "looks like an option")
        assertBlocked(["sh", "-c"], containing: "without a command string")
    }

    func testBlockedDispatchWrapperBlocksDetection() {
        assertBlocked(["env", "-S", "sh -c id"], containing: "-S")
    }

    func testNewerShellNamesAreRecognised() {
        XCTAssertEqual(ShellWrapper.detect(["mksh", "-c", "id"])?.payload, "id")
        XCTAssertEqual(ShellWrapper.detect(["/usr/bin/yash", "-c", "id"])?.payload, "id")
        XCTAssertEqual(ShellWrapper.detect(["dash", "-c", "id"])?.payload, "id")
    }
}
