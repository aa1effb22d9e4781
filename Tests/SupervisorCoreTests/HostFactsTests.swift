import Glibc
@testable import SupervisorCore
import XCTest

/// What the node says about its machine: the model identifier in `connect`.
final class HostFactsTests: XCTestCase {
    func testTheModelIsTrimmedStrippedOfNULsAndCutAt64UTF16Units() {
        XCTAssertEqual(MachineModel.normalize("  Standard PC (Q35 + ICH9, 2009)\n"), "Standard PC (Q35 + ICH9, 2009)")
        XCTAssertEqual(MachineModel.normalize("Raspberry Pi 4 Model B Rev 1.4\0"), "Raspberry Pi 4 Model B Rev 1.4")
        XCTAssertNil(MachineModel.normalize(" \n\0"))
        XCTAssertEqual(MachineModel.normalize(String(repeating: "x", count: 80))?.count, 64)
        // 63 units, then a character of two units that does not fit whole.
        XCTAssertEqual(MachineModel.normalize(String(repeating: "a", count: 63) + "😀b"), String(repeating: "a", count: 63))
    }

    func testTheFirstSourceWithAModelWins() throws {
        var template = Array("/tmp/model-XXXXXX".utf8CString)
        let directory = String(cString: try XCTUnwrap(mkdtemp(&template)))
        defer { _ = rmdir(directory) }
        let empty = directory + "/empty", model = directory + "/model"
        for (path, text) in [(empty, "\n"), (model, "Board X\0")] {
            let fd = open(path, O_WRONLY | O_CREAT, 0o600)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        defer { unlink(empty); unlink(model) }
        XCTAssertEqual(MachineModel.identifier(sources: [directory + "/missing", empty, model]), "Board X")
        XCTAssertNil(MachineModel.identifier(sources: [directory + "/missing"]))
    }
}
