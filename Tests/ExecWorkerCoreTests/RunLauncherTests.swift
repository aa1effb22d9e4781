import Glibc
import NodeSupport
import OpenClawIPC
import XCTest
@testable import ExecWorkerCore

/// The ExecWorker's launcher: what an approval bound is re-checked just before spawn, and
/// what is reported when a command cannot start.
final class RunLauncherTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/runlauncher-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
        directory = String(cString: made)
    }

    override func tearDown() { removeTree(directory) }

    func identity(_ path: String) -> FileIdentity {
        var info = stat()
        XCTAssertEqual(lstat(path, &info), 0)
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    func order(cwd: String? = nil, expectCwd: FileIdentity? = nil, operand: OperandBinding? = nil, argv: [String] = ["/bin/true"]) -> RunOrder {
        RunOrder(id: "r", argv: argv, cwd: cwd, env: ["PATH": "/bin"], timeoutMs: nil, maxOutputBytes: 1024,
                 expectCwd: expectCwd, expectOperand: operand)
    }

    func testTheApprovedCwdMustStillBeTheSameDirectory() {
        let cwd = directory + "/work"
        mkdir(cwd, 0o700)
        let approved = identity(cwd)
        XCTAssertNil(RunLauncher.recheck(order(cwd: cwd, expectCwd: approved)))
        rmdir(cwd)
        mkdir(cwd, 0o700)
        // Same path, another directory (a new inode, unless the file system reuses it at once).
        if identity(cwd) != approved {
            XCTAssertEqual(RunLauncher.recheck(order(cwd: cwd, expectCwd: approved)), .cwdChanged)
        }
        rmdir(cwd)
        symlink(directory, cwd)
        XCTAssertEqual(RunLauncher.recheck(order(cwd: cwd, expectCwd: approved)), .cwdChanged, "a symlink is never the directory")
    }

    func testTheBoundScriptMustStillHashTheSame() {
        let script = directory + "/job.sh"
        let fd = open(script, O_WRONLY | O_CREAT, 0o700)
        _ = "echo ok\n".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        guard case let .success(hash) = FileDigest.sha256Hex(regularFile: script) else { return XCTFail("no digest") }
        XCTAssertNil(RunLauncher.recheck(order(operand: OperandBinding(path: script, sha256: hash))))
        XCTAssertEqual(RunLauncher.recheck(order(operand: OperandBinding(path: script, sha256: String(repeating: "0", count: 64)))),
                       .operandChanged)
        XCTAssertEqual(RunLauncher.recheck(order(operand: OperandBinding(path: directory + "/gone.sh", sha256: hash))), .operandChanged)
    }

    func testACommandThatCannotStartIsReportedAsUpstreamWordsIt() {
        guard case let .finished(outcome) = RunLauncher.launch(order(argv: [directory + "/missing"]), began: Clock.monotonicMs()) else {
            return XCTFail("a missing program started")
        }
        XCTAssertEqual(outcome.error, "spawn \(directory)/missing ENOENT")
        XCTAssertNil(outcome.exitCode)
    }

    func testAStartedCommandWritesToItsOwnPipes() throws {
        guard case let .started(started) = RunLauncher.launch(order(argv: ["/bin/sh", "-c", "echo hi; echo no >&2"]), began: Clock.monotonicMs()) else {
            return XCTFail("did not start")
        }
        defer { [started.pidfd, started.stdout, started.stderr].forEach { close($0) } }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(started.pid, &status, 0), started.pid)
        XCTAssertEqual(getpgid(started.pid), -1, "reaped")
        var buffer = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(read(started.stdout, &buffer, 64), 3)
        XCTAssertEqual(Array(buffer.prefix(3)), Array("hi\n".utf8))
        XCTAssertEqual(read(started.stderr, &buffer, 64), 3)
        XCTAssertEqual(Array(buffer.prefix(3)), Array("no\n".utf8))
    }

    func testANameIsResolvedOnTheChildsPath() {
        XCTAssertEqual(RunLauncher.resolve("sh", path: "/bin"), "/bin/sh")
        XCTAssertEqual(RunLauncher.resolve("./x", path: "/bin"), "./x")
        XCTAssertNil(RunLauncher.resolve("no-such-program-here", path: directory))
    }
}
