import SupervisorCore
import XCTest

final class DispatchWrappersTests: XCTestCase {
    private func inner(_ argv: [String], file: StaticString = #filePath, line: UInt = #line) -> [String]? {
        guard case .plain(let inner, _, _) = DispatchWrappers.unwrap(argv) else {
            XCTFail("expected plain, got \(DispatchWrappers.unwrap(argv))", file: file, line: line)
            return nil
        }
        return inner
    }

    private func assertBlocked(_ argv: [String], containing text: String, file: StaticString = #filePath, line: UInt = #line) {
        guard case .blocked(let reason) = DispatchWrappers.unwrap(argv) else {
            return XCTFail("expected blocked, got \(DispatchWrappers.unwrap(argv))", file: file, line: line)
        }
        XCTAssertTrue(reason.contains(text), "reason \"\(reason)\" lacks \"\(text)\"", file: file, line: line)
    }

    func testPlainCommandIsReturnedUnchanged() {
        XCTAssertEqual(DispatchWrappers.unwrap(["ls", "-la"]), .plain(argv: ["ls", "-la"], wrappers: [], envAssignments: []))
    }

    func testEnvAssignmentsAreReturnedWithTheInnerCommand() {
        XCTAssertEqual(
            DispatchWrappers.unwrap(["env", "FOO=1", "BAR=a=b", "ls"]),
            .plain(argv: ["ls"], wrappers: [DispatchWrapper(name: "env", index: 0)],
                   envAssignments: [EnvAssignment(key: "FOO", value: "1"), EnvAssignment(key: "BAR", value: "a=b")]))
    }

    func testEnvIgnoreAndUnsetOptionsAreTransparent() {
        XCTAssertEqual(inner(["env", "-i", "-u", "HOME", "--", "ls"]), ["ls"])
        XCTAssertEqual(inner(["env", "-uHOME", "--unset=PATH", "--ignore-environment", "ls"]), ["ls"])
        XCTAssertEqual(inner(["env", "-iu", "HOME", "ls"]), ["ls"])
        XCTAssertEqual(inner(["env", "-", "FOO=1", "ls"]), ["ls"])
    }

    func testEnvWrapperIsRecognisedByBasenameOfAPath() {
        XCTAssertEqual(
            DispatchWrappers.unwrap(["/usr/bin/env", "ls"]),
            .plain(argv: ["ls"], wrappers: [DispatchWrapper(name: "env", index: 0)], envAssignments: []))
    }

    func testEnvSplitStringIsBlocked() {
        assertBlocked(["env", "-S", "sh -c id", "x"], containing: "-S")
        assertBlocked(["env", "-S'sh -c id'"], containing: "-S")
        assertBlocked(["env", "--split-string=sh -c id"], containing: "split-string")
        assertBlocked(["env", "-iS", "sh -c id"], containing: "-S")
    }

    func testEnvChdirAndArgv0AreBlocked() {
        assertBlocked(["env", "-C", "/tmp", "ls"], containing: "chdir")
        assertBlocked(["env", "--chdir=/tmp", "ls"], containing: "chdir")
        assertBlocked(["env", "-a", "x", "ls"], containing: "argv0")
    }

    func testEnvUnknownOptionsAndAbbreviationsAreBlocked() {
        assertBlocked(["env", "--split", "x", "ls"], containing: "unsupported option --split")
        assertBlocked(["env", "-0", "ls"], containing: "unsupported option -0")
        assertBlocked(["env", "--debug", "ls"], containing: "unsupported")
    }

    func testEnvNonPortableAssignmentIsBlocked() {
        assertBlocked(["env", "./x=1", "ls"], containing: "non-portable")
        assertBlocked(["env", "=1", "ls"], containing: "non-portable")
    }

    func testWrapperWithoutCommandIsBlocked() {
        assertBlocked(["env"], containing: "missing command")
        assertBlocked(["env", "FOO=1"], containing: "missing command")
        assertBlocked(["nice", "-n", "5"], containing: "missing command")
        assertBlocked(["timeout", "5"], containing: "missing command")
        assertBlocked(["timeout"], containing: "missing DURATION")
        assertBlocked(["nice", "-n"], containing: "needs a value")
    }

    func testNiceForms() {
        XCTAssertEqual(inner(["nice", "/usr/bin/id"]), ["/usr/bin/id"])
        XCTAssertEqual(inner(["nice", "-n", "5", "id", "-u"]), ["id", "-u"])
        XCTAssertEqual(inner(["nice", "-n5", "id"]), ["id"])
        XCTAssertEqual(inner(["nice", "-5", "id"]), ["id"])
        XCTAssertEqual(inner(["nice", "--adjustment=5", "id"]), ["id"])
        XCTAssertEqual(inner(["nice", "--adjustment", "-5", "id"]), ["id"])
        assertBlocked(["nice", "-x", "id"], containing: "unsupported option -x")
    }

    func testNohupForms() {
        XCTAssertEqual(inner(["nohup", "id"]), ["id"])
        XCTAssertEqual(inner(["nohup", "--", "id"]), ["id"])
        assertBlocked(["nohup", "--help", "id"], containing: "unsupported")
    }

    func testStdbufForms() {
        XCTAssertEqual(inner(["stdbuf", "-oL", "id"]), ["id"])
        XCTAssertEqual(inner(["stdbuf", "-o", "L", "-e", "0", "id"]), ["id"])
        XCTAssertEqual(inner(["stdbuf", "--output=L", "--input", "0", "id"]), ["id"])
        assertBlocked(["stdbuf", "-x", "id"], containing: "unsupported option -x")
    }

    func testTimeoutForms() {
        XCTAssertEqual(inner(["timeout", "5", "id"]), ["id"])
        XCTAssertEqual(
            inner(["timeout", "-s", "KILL", "-k", "1", "--preserve-status", "--foreground", "-v", "5s", "id", "-u"]),
            ["id", "-u"])
        XCTAssertEqual(inner(["timeout", "-sKILL", "--kill-after=2", "5", "id"]), ["id"])
        assertBlocked(["timeout", "--bogus", "5", "id"], containing: "unsupported")
    }

    func testTimeForms() {
        XCTAssertEqual(inner(["time", "id"]), ["id"])
        XCTAssertEqual(inner(["time", "-p", "-f", "%e", "id"]), ["id"])
        assertBlocked(["time", "-o", "out.txt", "id"], containing: "writes a file")
        assertBlocked(["time", "--append", "id"], containing: "writes a file")
    }

    func testSetsidForms() {
        XCTAssertEqual(inner(["setsid", "id"]), ["id"])
        XCTAssertEqual(inner(["setsid", "-fw", "--ctty", "id"]), ["id"])
        assertBlocked(["setsid", "-x", "id"], containing: "unsupported")
    }

    func testIoniceForms() {
        XCTAssertEqual(inner(["ionice", "-c", "3", "id"]), ["id"])
        XCTAssertEqual(inner(["ionice", "-c2", "-n7", "-t", "id"]), ["id"])
        XCTAssertEqual(inner(["ionice", "--class", "idle", "id"]), ["id"])
        assertBlocked(["ionice", "-p", "1"], containing: "another process")
    }

    func testTasksetForms() {
        XCTAssertEqual(inner(["taskset", "0x1", "id"]), ["id"])
        XCTAssertEqual(inner(["taskset", "-c", "0-2", "id", "-u"]), ["id", "-u"])
        XCTAssertEqual(inner(["taskset", "-a", "--cpu-list", "0", "id"]), ["id"])
        assertBlocked(["taskset", "-p", "0x1", "1"], containing: "another process")
        assertBlocked(["taskset", "0x1"], containing: "missing command")
    }

    func testChrtForms() {
        XCTAssertEqual(inner(["chrt", "-f", "10", "id"]), ["id"])
        XCTAssertEqual(inner(["chrt", "--rr", "5", "id"]), ["id"])
        XCTAssertEqual(inner(["chrt", "-o", "0", "id"]), ["id"])
        XCTAssertEqual(inner(["chrt", "-d", "-T", "1000", "-D", "2000", "0", "id"]), ["id"])
        assertBlocked(["chrt", "-o", "/tmp/evil", "id"], containing: "not numeric")
        assertBlocked(["chrt", "-p", "5", "1"], containing: "another process")
    }

    func testSudoAndDoasAreNotUnwrapped() {
        XCTAssertEqual(DispatchWrappers.unwrap(["sudo", "id"]), .plain(argv: ["sudo", "id"], wrappers: [], envAssignments: []))
        XCTAssertEqual(DispatchWrappers.unwrap(["doas", "id"]), .plain(argv: ["doas", "id"], wrappers: [], envAssignments: []))
        XCTAssertEqual(inner(["nice", "sudo", "id"]), ["sudo", "id"])
    }

    func testFourNestedWrappersAreUnwrapped() {
        XCTAssertEqual(
            DispatchWrappers.unwrap(["nice", "nohup", "env", "A=1", "timeout", "5", "id"]),
            .plain(argv: ["id"],
                   wrappers: [DispatchWrapper(name: "nice", index: 0), DispatchWrapper(name: "nohup", index: 1),
                              DispatchWrapper(name: "env", index: 2), DispatchWrapper(name: "timeout", index: 4)],
                   envAssignments: [EnvAssignment(key: "A", value: "1")]))
    }

    func testFifthNestedWrapperIsBlocked() {
        assertBlocked(["nice", "nice", "nice", "nice", "nice", "id"], containing: "more than 4")
    }

    func testTrailingSpaceWrapperNameIsNotAWrapper() {
        XCTAssertEqual(
            DispatchWrappers.unwrap(["env ", "-S", "x"]), .plain(argv: ["env ", "-S", "x"], wrappers: [], envAssignments: []))
    }
}
