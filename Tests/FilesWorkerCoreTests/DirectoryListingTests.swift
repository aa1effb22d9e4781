import Glibc
import NodeSupport
import OpenClawIPC
import XCTest
@testable import FilesWorkerCore

/// Each test gets a fresh folder in /tmp (`root`), removed afterwards.
class ScratchRootTestCase: XCTestCase {
    var root = ""

    override func setUp() {
        var template = Array("/tmp/files-worker-test-XXXXXX".utf8CString)
        root = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() {
        _ = ProcessLauncherForTests.removeTree(root)
    }
}

final class DirectoryListingTests: ScratchRootTestCase {

    func mkdirs(_ names: String...) { for name in names { XCTAssertEqual(mkdir(root + "/" + name, 0o755), 0, name) } }

    /// upstream's `listHostDirectories`: directories only, a symlink to a directory counts (by
    /// its own path), hidden last, each group in code-unit order; parent and home as named.
    func testDirectoriesOnlyLinksResolvedHiddenLast() throws {
        mkdirs("b", "a", ".git", "Z", "é")
        XCTAssertEqual(creat(root + "/file.txt", 0o644) >= 0, true)
        XCTAssertEqual(symlink(root + "/a", root + "/link-dir"), 0)
        XCTAssertEqual(symlink(root + "/nowhere", root + "/broken"), 0)
        XCTAssertEqual(symlink(root + "/file.txt", root + "/link-file"), 0)
        let listing = try DirectoryListing.list(root, home: "/home/u").get()
        XCTAssertEqual(listing.entries.map(\.name), ["Z", "a", "b", "link-dir", "é", ".git"])
        XCTAssertEqual(listing.entries.first { $0.name == "link-dir" }?.path, root + "/link-dir")
        XCTAssertEqual(listing.entries.map(\.hidden), [nil, nil, nil, nil, nil, true])
        XCTAssertEqual(listing.parent, "/tmp")
        XCTAssertEqual(listing.home, "/home/u")
        let reply = DirectoryListing.answer(FilesRequest(path: root, home: "/h"))
        XCTAssertTrue(reply.ok)
        let payload = try JSONText.decode(JSONValue.self, from: reply.payloadJSON ?? "")
        XCTAssertEqual(payload["entries"]?.arrayValue?.last, .object(["name": .string(".git"), "path": .string(root + "/.git"), "hidden": .bool(true)]))
        XCTAssertEqual(payload["entries"]?.arrayValue?.first, .object(["name": .string("Z"), "path": .string(root + "/Z")]))
    }

    func testTheRootHasNoParentAndErrorsReadAsNodesOwn() throws {
        XCTAssertNil(try DirectoryListing.list("/", home: "/").get().parent)
        let missing = DirectoryListing.answer(FilesRequest(path: root + "/missing", home: "/"))
        XCTAssertEqual(missing.error, WireError(code: "INVALID_REQUEST", message: "Error: ENOENT: no such file or directory, scandir '\(root)/missing'"))
        XCTAssertEqual(creat(root + "/file", 0o644) >= 0, true)
        let file = DirectoryListing.answer(FilesRequest(path: root + "/file", home: "/"))
        XCTAssertEqual(file.error?.message, "Error: ENOTDIR: not a directory, scandir '\(root)/file'")
    }
}

/// The uploads' clean-up, without confinement (the sweep itself is plain file work).
final class UploadSweepTests: ScratchRootTestCase {

    /// A staged folder as the worker leaves it, with its mtime `ageMs` in the past.
    @discardableResult
    func staged(_ suffix: String, bytes: Int = 4, ageMs: Int64, marked: Bool = true) -> String {
        let folder = root + "/" + TerminalUploadLimits.folderPrefix + suffix
        XCTAssertEqual(mkdir(folder, 0o700), 0)
        if marked { XCTAssertNil(MarkedFolders.writeNew(folder + "/" + TerminalUploadLimits.markerName, Array(TerminalUploadLimits.markerContent.utf8))) }
        if bytes > 0 { XCTAssertNil(MarkedFolders.writeNew(folder + "/f", [UInt8](repeating: 1, count: bytes))) }
        let seconds = (Int64(time(nil)) * 1000 - ageMs) / 1000
        var times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, folder, &times, 0), 0)
        return folder
    }

    func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    func testExpiredMarkedFoldersGoUnmarkedOnesStayAndTheNextExpiryIsSaid() {
        let old = staged("old111", ageMs: 3_000_000)
        let fresh = staged("new111", ageMs: 1_000_000)
        let unmarked = staged("other1", ageMs: 9_000_000, marked: false)
        let emptyUnmarked = staged("empty1", bytes: 0, ageMs: 9_000_000, marked: false)
        XCTAssertEqual(mkdir(root + "/unrelated", 0o700), 0)
        let reply = UploadSweep.sweep(root: root, request: FilesRequest(retentionMs: 2_000_000))
        XCTAssertTrue(reply.ok)
        XCTAssertEqual(Set(reply.removed ?? []), [old, emptyUnmarked])
        XCTAssertFalse(exists(old))
        XCTAssertTrue(exists(fresh) && exists(unmarked) && exists(root + "/unrelated"))
        let next = reply.nextExpiryMs ?? -1
        XCTAssertTrue((990_000...1_001_000).contains(next), "\(next)")
    }

    /// After a restart the budget is restored oldest first (64 folders).
    func testOverTheBudgetTheOldestGoFirst() {
        var folders: [String] = []
        for index in 0..<66 { folders.append(staged(String(format: "%06d", index), ageMs: Int64(100_000 - index * 1_000))) }
        let reply = UploadSweep.sweep(root: root, request: FilesRequest(retentionMs: 10_000_000))
        XCTAssertEqual(reply.removed, Array(folders.prefix(2)))
        XCTAssertEqual(terminalUploadFolders.scan(root).count, 64)
    }
}

enum ProcessLauncherForTests {
    static func removeTree(_ path: String) -> Int32 {
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/rm"), strdup("-rf"), strdup(path), nil]
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/rm", nil, nil, &argv, nil)
        for pointer in argv { free(pointer) }
        guard result == 0 else { return result }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return status
    }
}
