import NodeSupport
import FoundationEssentials
import Glibc
import OpenClawIPC
import XCTest

@testable import SupervisorCore

/// Ids `id-1`, `id-2`, … so normalised files are predictable.
final class SequentialIDs {
    private var next = 0
    func make() -> String {
        next += 1
        return "id-\(next)"
    }
}

func json(_ text: String) throws -> JSONValue {
    try JSONText.decode(JSONValue.self, from: text)
}

func normalize(_ text: String, requireVersion: Bool = true) throws -> ExecApprovalsFile {
    let ids = SequentialIDs()
    return ExecApprovalsFile(normalizing: try json(text), requireVersion: requireVersion, makeID: ids.make)
}

/// A fresh temporary directory; the store's state dir is `<root>/state`, not yet created.
class TempDirTestCase: XCTestCase {
    var root = ""
    var stateDir: String { root + "/state" }
    var filePath: String { stateDir + "/exec-approvals.json" }

    override func setUpWithError() throws {
        var template = Array("/tmp/exec-approvals-test.XXXXXX".utf8CString)
        root = try XCTUnwrap(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func makeStore(builtIn: ExecApprovalDefaults = .node) -> ExecApprovalsStore {
        ExecApprovalsStore(stateDir: stateDir, builtIn: builtIn, sha256Hex: FileDigest.sha256Hex(bytes:), makeID: SequentialIDs().make)
    }

    /// Writes raw text to `path`, creating the state dir.
    func writeRaw(_ text: String, to path: String? = nil) throws {
        try SecureFile.write(path ?? filePath, Array(text.utf8))
    }

    func readRaw(_ path: String? = nil) throws -> String {
        String(decoding: try XCTUnwrap(try SecureFile.read(path ?? filePath)), as: UTF8.self)
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        XCTAssertEqual(lstat(path, &info), 0, path)
        return info.st_mode & 0o777
    }

    func onDisk() throws -> JSONValue {
        try json(try readRaw())
    }
}

func XCTAssertThrowsApprovalsError<T>(_ expression: @autoclosure () throws -> T, _ message: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        XCTAssertEqual((error as? ApprovalsError)?.message, message, file: file, line: line)
    }
}

func XCTAssertThrowsApprovalsError<T>(_ expression: @autoclosure () throws -> T, containing fragment: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        let message = (error as? ApprovalsError)?.message ?? "\(error)"
        XCTAssertTrue(message.contains(fragment), "\(message) does not contain \(fragment)", file: file, line: line)
    }
}
