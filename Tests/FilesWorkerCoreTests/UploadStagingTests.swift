import Glibc
import OpenClawIPC
import XCTest
@testable import FilesWorkerCore

/// A staging refused before its folder exists still reports ready and takes its request before
/// it answers: the Supervisor checks the worker in /proc between the two, and a worker that had
/// already answered and exited was found gone (`cannot read /proc status of the files worker`)
/// instead of refused with upstream's message.
final class UploadStagingTests: ScratchRootTestCase {

    func stage(root: String, size: Int = 1) -> (FilesReply, [String]) {
        var steps: [String] = []
        let reply = UploadStaging.stage(root: root, size: size, ready: { steps.append("ready") },
                                        request: { steps.append("request"); return nil })
        return (reply, steps)
    }

    func testAFullRootIsRefusedAfterTheRequestWasTaken() {
        for index in 0..<TerminalUploadLimits.maxRetainedFolders {
            let folder = root + "/" + TerminalUploadLimits.folderPrefix + String(format: "%06d", index)
            XCTAssertEqual(mkdir(folder, 0o700), 0)
            let fd = open(folder + "/" + TerminalUploadLimits.markerName, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = TerminalUploadLimits.markerContent.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        let (reply, steps) = stage(root: root)
        XCTAssertEqual(reply.error, WireError(code: "INVALID_REQUEST",
                                              message: "TerminalUploadStagingExhaustedError: terminal upload staging limit reached"))
        XCTAssertEqual(steps, ["ready", "request"])
    }

    func testARootThatCannotTakeAFolderIsRefusedAfterTheRequestWasTaken() {
        let missing = root + "/missing"
        let (reply, steps) = stage(root: missing)
        XCTAssertEqual(reply.error, WireError(code: "INVALID_REQUEST", message:
            "Error: ENOENT: no such file or directory, mkdtemp '\(missing)/\(TerminalUploadLimits.folderPrefix)XXXXXX'"))
        XCTAssertEqual(steps, ["ready", "request"])
    }
}
