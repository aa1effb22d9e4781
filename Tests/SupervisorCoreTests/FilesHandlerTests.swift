import NodeSupport
import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// `fs.listDir` / `terminal.upload` requests as upstream's node host reads them (issue 20).
final class FilesHandlerTests: XCTestCase {
    func params(_ json: String?) -> Result<NodeParams, WireError> { NodeParams.decode(json) }

    func listError(_ json: String?) -> String? {
        switch params(json) {
        case let .failure(error): return error.message
        case let .success(decoded):
            guard case let .failure(error) = FilesHandler.listRequest(decoded, home: "/home/u") else { return nil }
            XCTAssertEqual(error.code, "INVALID_REQUEST")
            return error.message
        }
    }

    func listed(_ json: String) -> String? {
        guard case let .success(decoded) = params(json), case let .success(request) = FilesHandler.listRequest(decoded, home: "/home/u") else { return nil }
        XCTAssertEqual(request.home, "/home/u")
        return request.path
    }

    func testListRequests() {
        XCTAssertEqual(listError(nil), "Error: INVALID_REQUEST: paramsJSON required")
        XCTAssertEqual(listError("{"), "Error: INVALID_REQUEST: paramsJSON malformed JSON")
        XCTAssertEqual(listError(#"{"path":5}"#), "Error: INVALID_REQUEST: path must be a string")
        XCTAssertEqual(listError(#"{"path":null}"#), "Error: INVALID_REQUEST: path must be a string")
        XCTAssertEqual(listError(#"{"path":"tmp"}"#), "Error: fs.listDir path must be absolute")
        XCTAssertEqual(listError(#"{"path":" /tmp"}"#), "Error: fs.listDir path must be absolute", "no trim: a space names another folder")
        XCTAssertEqual(listError("null"), "TypeError: Cannot read properties of null (reading 'path')")
        XCTAssertEqual(listed("{}"), "/home/u")
        XCTAssertEqual(listed(#"{"path":""}"#), "/home/u")
        XCTAssertEqual(listed("[1]"), "/home/u", "a field of a non-object is absent")
        XCTAssertEqual(listed(#"{"path":"/srv//data/./x/../y/"}"#), "/srv/data/y")
        XCTAssertEqual(listed(#"{"path":"/.."}"#), "/")
        XCTAssertEqual(listed(#"{"path":"/srv/data "}"#), "/srv/data ")
    }

    func uploadError(_ json: String) -> String? {
        guard case let .success(decoded) = params(json), case let .failure(error) = FilesHandler.uploadRequest(decoded) else { return nil }
        return error.message
    }

    func testUploadRequests() {
        let required = "Error: INVALID_REQUEST: terminal upload name and content are required"
        XCTAssertEqual(uploadError("{}"), required)
        XCTAssertEqual(uploadError(#"{"name":"a"}"#), required)
        XCTAssertEqual(uploadError(#"{"name":1,"contentBase64":""}"#), required)
        for bad in ["YQ=", "YR==", "YWI=x", "Y===", "YW\nI=", "YW-_", "====", "YWJj=", "YWI"] {
            XCTAssertEqual(uploadError(#"{"name":"a","contentBase64":"\#(bad.replacingOccurrences(of: "\n", with: "\\n"))"}"#),
                           "Error: invalid terminal upload encoding", bad)
        }
        let tooLong = String(repeating: "A", count: TerminalUploadLimits.maxBase64Length + 4)
        XCTAssertEqual(uploadError(#"{"name":"a","contentBase64":"\#(tooLong)"}"#), "Error: terminal upload exceeds 16777216 bytes")
        guard case let .success(decoded) = params(#"{"name":"../r?.txt","contentBase64":"YWI="}"#),
              case let .success((request, size)) = FilesHandler.uploadRequest(decoded) else { return XCTFail("a valid upload") }
        XCTAssertEqual(request.name, "r_.txt")
        XCTAssertEqual(size, 2)
        guard case let .success(empty) = params(#"{"name":"e","contentBase64":""}"#),
              case let .success((_, zero)) = FilesHandler.uploadRequest(empty) else { return XCTFail("the empty upload") }
        XCTAssertEqual(zero, 0)
    }

    /// upstream's `sanitizeTerminalUploadName`, row by row.
    func testUploadNames() {
        let rows: [(String, String)] = [
            (#"..\..\etc\passwd"#, "passwd"), ("report?.txt", "report_.txt"), ("CON.txt", "_CON.txt"), ("lpt¹", "_lpt¹"),
            ("com0.txt", "com0.txt"), ("name. . .", "name"), ("", "upload"), ("..", "upload"), ("dir/", "dir"), ("/", "upload"),
            ("  spaced  ", "spaced"), ("a\u{0}b\u{7F}c", "a_b_c"), ("100%!", "100__"), ("\u{A0}x\u{3000}", "x"), ("a<b>c:d\"e|f*g", "a_b_c_d_e_f_g"),
            (String(repeating: "é", count: 200), String(repeating: "é", count: 90)),
        ]
        for (name, expected) in rows { XCTAssertEqual(TerminalUploadName.sanitize(name), expected, name) }
    }

    func testCanonicalBase64() {
        XCTAssertEqual(Base64.decodeCanonical("YWJj"), Array("abc".utf8))
        XCTAssertEqual(Base64.decodeCanonical("YWI="), Array("ab".utf8))
        XCTAssertEqual(Base64.decodeCanonical("YQ=="), Array("a".utf8))
        XCTAssertEqual(Base64.decodeCanonical(""), [])
        XCTAssertEqual(Base64.decodeCanonical("+/+/"), [0xFB, 0xFF, 0xBF])
        XCTAssertNil(Base64.decodeCanonical("YR=="))
        XCTAssertNil(Base64.decodeCanonical("YWJ="))
        XCTAssertEqual(Base64.decodedSize("YQ=="), 1)
        XCTAssertEqual(Base64.decodedSize("YWJj"), 3)
        XCTAssertEqual(TerminalUploadLimits.maxBase64Length, 22_369_624)
    }

    func testUploadsRootFollowsTMPDIR() {
        XCTAssertEqual(FilesHandler.Uploads.defaultRoot(environment: [:]), "/tmp")
        XCTAssertEqual(FilesHandler.Uploads.defaultRoot(environment: ["TMPDIR": "/var/tmp/"]), "/var/tmp")
        XCTAssertEqual(FilesHandler.Uploads.defaultRoot(environment: ["TMPDIR": "relative"]), "/tmp")
    }
}
