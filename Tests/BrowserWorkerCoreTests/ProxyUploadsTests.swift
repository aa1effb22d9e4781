@testable import BrowserWorkerCore
import Glibc
import NodeSupport
import OpenClawIPC
import XCTest

/// `browser.proxy.upload.v1`'s staging and the file chooser's path rule, on a scratch data dir.
final class ProxyUploadsTests: XCTestCase {
    var dataDir = ""

    override func setUp() {
        var template = Array("/tmp/proxy-uploads-test-XXXXXX".utf8CString)
        dataDir = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() { removeTree(dataDir) }

    func testFilesAreStagedMarkedAndNamedInOrder() throws {
        let staged = try ProxyUploads.stage([BrowserUploadFile(name: "a.txt", contentBase64: "YWJj"),
                                             BrowserUploadFile(name: "a.txt", contentBase64: "")],
                                            dataDir: dataDir, nowMs: Int64(Clock.wallMs())).get()
        XCTAssertTrue(staged.directory.hasPrefix(dataDir + "/uploads/.proxy-uploads/upload-"))
        XCTAssertEqual(staged.paths, [staged.directory + "/0/a.txt", staged.directory + "/1/a.txt"])
        XCTAssertEqual(readRegularFile(staged.paths[0], limit: 16), Array("abc".utf8))
        XCTAssertEqual(readRegularFile(staged.directory + "/.openclaw-browser-proxy-upload-v1", limit: 64),
                       Array("openclaw-browser-proxy-upload-v1\n".utf8))
        XCTAssertEqual(ProxyUploads.folders.scan(ProxyUploads.stagingRoot(dataDir: dataDir)).filter(\.marked).count, 1)
    }

    func testTheBudgetIsSixtyFourFolders() throws {
        for _ in 0..<64 {
            _ = try ProxyUploads.stage([BrowserUploadFile(name: "x", contentBase64: "eA==")], dataDir: dataDir, nowMs: Int64(Clock.wallMs())).get()
        }
        XCTAssertEqual(ProxyUploads.stage([BrowserUploadFile(name: "x", contentBase64: "eA==")], dataDir: dataDir, nowMs: Int64(Clock.wallMs())),
                       .failure(.init(text: "RESOURCE_EXHAUSTED: browser proxy upload staging limit reached")))
        // A day later they are gone, and there is room again.
        XCTAssertNoThrow(try ProxyUploads.stage([BrowserUploadFile(name: "x", contentBase64: "eA==")], dataDir: dataDir,
                                                nowMs: Int64(Clock.wallMs()) + ProxyUploads.retentionMs + 1_000).get())
    }

    func testChooserPathsStayInTheUploadsFolder() {
        let uploads = dataDir + "/uploads"
        XCTAssertEqual(mkdir(uploads, 0o700), 0)
        XCTAssertEqual(symlink("/etc", uploads + "/out"), 0)
        let invalid = ProxyUploads.StagingError(text: "Invalid path: must stay within uploads directory (\(uploads))")
        XCTAssertEqual(ProxyUploads.resolve(["/etc/hostname"], dataDir: dataDir), .failure(invalid))
        XCTAssertEqual(ProxyUploads.resolve([uploads + "/../x"], dataDir: dataDir), .failure(invalid))
        XCTAssertEqual(ProxyUploads.resolve([uploads], dataDir: dataDir), .failure(invalid))
        XCTAssertEqual(ProxyUploads.resolve(["out/hostname"], dataDir: dataDir), .failure(invalid), "a link may not lead out")
        XCTAssertEqual(ProxyUploads.resolve(["a/../b.txt", uploads + "/c"], dataDir: dataDir), .success([uploads + "/b.txt", uploads + "/c"]))
    }
}
