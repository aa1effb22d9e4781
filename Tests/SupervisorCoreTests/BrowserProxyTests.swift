import Glibc
import OpenClawIPC
import SupervisorCore
import XCTest

final class BrowserProxyRequestTests: XCTestCase {
    let open = BrowserProxySettings(enabled: true)

    private func parse(_ params: [String: JSONValue], _ settings: BrowserProxySettings? = nil) -> Result<BrowserProxyRequest, BrowserProxyFailure> {
        BrowserProxyRequest.parse(params, settings: settings ?? open)
    }

    private func failure(_ params: [String: JSONValue], _ settings: BrowserProxySettings? = nil) -> WireError? {
        if case let .failure(error) = parse(params, settings) { return error.wireError }
        return nil
    }

    private func request(_ params: [String: JSONValue], _ settings: BrowserProxySettings? = nil) throws -> BrowserProxyRequest {
        try parse(params, settings).get()
    }

    func testPathIsRequiredAndNormalised() throws {
        XCTAssertEqual(failure([:]), WireError(code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: path required"))
        XCTAssertEqual(failure(["path": .string("   ")])?.message, "Error: INVALID_REQUEST: path required")
        XCTAssertEqual(try request(["path": .string(" tabs/ ")]).path, "/tabs")
        XCTAssertEqual(try request(["path": .string("/")]).path, "/")
        XCTAssertEqual(try request(["path": .string("/tabs//")]).path, "/tabs")
    }

    func testMethodIsTrimmedUppercasedAndLimited() throws {
        XCTAssertEqual(try request(["path": .string("/"), "method": .string(" post ")]).method, "POST")
        XCTAssertEqual(try request(["path": .string("/")]).method, "GET")
        XCTAssertEqual(failure(["path": .string("/"), "method": .string("PUT")])?.message,
                       "Error: INVALID_REQUEST: method must be GET, POST, or DELETE")
    }

    func testDisabledProxyAnswersUnavailableAfterThePathCheck() {
        let disabled = BrowserProxySettings(enabled: false)
        XCTAssertEqual(failure(["path": .string("/")], disabled),
                       WireError(code: "UNAVAILABLE", message: "Error: UNAVAILABLE: node browser proxy disabled"))
        XCTAssertEqual(failure([:], disabled)?.message, "Error: INVALID_REQUEST: path required")
        XCTAssertFalse(disabled.advertised)
        XCTAssertFalse(BrowserProxySettings(enabled: true, browserEnabled: false).advertised)
        XCTAssertEqual(failure(["path": .string("/")], BrowserProxySettings(enabled: true, browserEnabled: false))?.message,
                       "Error: browser control disabled")
    }

    func testPersistentProfileMutationsAndHostLocalRoutesAreRefused() {
        let mutation = "Error: INVALID_REQUEST: browser.proxy cannot mutate persistent browser profiles"
        XCTAssertEqual(failure(["path": .string("/profiles/create"), "method": .string("POST")])?.message, mutation)
        XCTAssertEqual(failure(["path": .string("/reset-profile"), "method": .string("POST")])?.message, mutation)
        XCTAssertEqual(failure(["path": .string("/profiles/work"), "method": .string("DELETE")])?.message, mutation)
        XCTAssertEqual(failure(["path": .string("profiles/work/"), "method": .string("delete")])?.message, mutation)
        // Not mutations: reading a profile, deleting the collection, deleting a tab of a profile.
        XCTAssertNil(failure(["path": .string("/profiles/work")]))
        XCTAssertNil(failure(["path": .string("/profiles"), "method": .string("DELETE")]))
        XCTAssertNil(failure(["path": .string("/profiles/work/tabs"), "method": .string("DELETE")]))
        let local = "Error: INVALID_REQUEST: browser.proxy cannot run host-local browser routes"
        XCTAssertEqual(failure(["path": .string("/system-profiles")])?.message, local)
        XCTAssertEqual(failure(["path": .string("/profiles/import"), "method": .string("POST")])?.message, local)
        XCTAssertEqual(failure(["path": .string("/"), "upload": .object([:])])?.message,
                       "Error: INVALID_REQUEST: browser.proxy does not accept upload envelopes")
    }

    func testProfileComesFromQueryThenBodyThenParamsAndIsWrittenBack() throws {
        let all: [String: JSONValue] = ["path": .string("/"), "query": .object(["profile": .string("q")]),
                                        "body": .object(["profile": .string("b")]), "profile": .string("p")]
        XCTAssertEqual(try request(all).profile, "q")
        XCTAssertEqual(try request(all).query["profile"], "q")
        XCTAssertEqual(try request(["path": .string("/"), "body": .object(["profile": .string(" b ")]), "profile": .string("p")]).profile, "b")
        XCTAssertEqual(try request(["path": .string("/"), "profile": .string("p")]).query["profile"], "p")
        XCTAssertEqual(try request(["path": .string("/")]).query["profile"], "openclaw")
        XCTAssertNil(try request(["path": .string("/profiles")]).profile)
        XCTAssertNil(try request(["path": .string("/profiles")]).query["profile"])
    }

    func testAllowProfilesChecksTheEffectiveProfileFromEverySource() throws {
        let restricted = BrowserProxySettings(enabled: true, allowProfiles: ["openclaw"])
        let refused = WireError(code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: browser profile not allowed")
        XCTAssertEqual(failure(["path": .string("/"), "profile": .string("work")], restricted), refused)
        XCTAssertEqual(failure(["path": .string("/"), "query": .object(["profile": .string("work")])], restricted), refused)
        XCTAssertEqual(failure(["path": .string("/"), "body": .object(["profile": .string("work")])], restricted), refused)
        XCTAssertEqual(failure(["path": .string("/profiles"), "profile": .string("work")], restricted), refused)
        XCTAssertEqual(failure(["path": .string("/"), "profile": .string("OpenClaw")], restricted), refused)  // case-sensitive
        XCTAssertNil(failure(["path": .string("/profiles")], restricted))
        XCTAssertNil(failure(["path": .string("/")], restricted))
        // The default profile itself must be allowed.
        let other = BrowserProxySettings(enabled: true, allowProfiles: ["work"])
        XCTAssertEqual(failure(["path": .string("/")], other), refused)
    }

    func testQueryValuesAreStringifiedAndNullsDropped() throws {
        let parsed = try request(["path": .string("/snapshot"), "query": .object([
            "interactive": .bool(true), "limit": .number(5), "scale": .number(1.5), "gone": .null, "format": .string("ai"),
        ])])
        XCTAssertEqual(parsed.query, ["interactive": "true", "limit": "5", "scale": "1.5", "format": "ai", "profile": "openclaw"])
    }

    func testTimeoutDefaultsToTwentySecondsAndNamesTheRoute() throws {
        XCTAssertEqual(try request(["path": .string("/")]).timeoutMs, 20000)
        let snapshot = try request(["path": .string("/snapshot"), "timeoutMs": .number(1500)])
        XCTAssertEqual(snapshot.timeoutMs, 1500)
        XCTAssertEqual(snapshot.timeoutMessage,
                       "browser proxy timed out for GET /snapshot after 1500ms; ws-backed browser action; profile=openclaw")
        XCTAssertEqual(try request(["path": .string("/tabs")]).timeoutMessage,
                       "browser proxy timed out for GET /tabs after 20000ms; browser action; profile=openclaw")
    }
}

final class BrowserProxyReplyTests: ScratchTestCase {
    private func call(_ path: String = "/", envelope: Bool = false, profile: String? = "openclaw") -> BrowserProxyRequest {
        BrowserProxyRequest(method: "GET", path: path, query: [:], body: nil, timeoutMs: 20000, profile: profile, envelope: envelope)
    }

    private var store: BrowserMediaStore { BrowserMediaStore(stateDir: dir) }

    private func makeMedia() -> String {
        let media = store.directory
        mkdir("\(dir)/browser", 0o700)
        mkdir(media, 0o700)
        return media
    }

    private func write(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    private func payload(_ call: BrowserProxyRequest, _ status: Int, _ body: JSONValue,
                         settings: BrowserProxySettings = BrowserProxySettings(enabled: true)) -> Result<JSONValue, WireError> {
        BrowserProxyReply.payload(call: call, response: BrowserResponse(id: "1", status: status, body: body), settings: settings, media: store)
            .map { try! JSONText.decode(JSONValue.self, from: $0) }
    }

    func testRouteErrorsAreThrownWithStatusOrEnveloped() {
        let notFound: JSONValue = .object(["error": .string("tab not found")])
        XCTAssertEqual(payload(call(), 404, notFound), .failure(WireError(code: "INVALID_REQUEST", message: "Error: 404: tab not found")))
        XCTAssertEqual(payload(call(), 500, .object([:])), .failure(WireError(code: "INVALID_REQUEST", message: "Error: HTTP 500")))
        XCTAssertEqual(payload(call(envelope: true), 404, notFound), .success(.object([
            "error": .object(["status": .number(404), "body": .object(["error": .string("tab not found")])]),
            "route": .object(["status": .string("resolved"), "profile": .string("openclaw"), "driver": .string("openclaw")]),
        ])))
    }

    func testEnvelopeKeepsOnlyTheClosedSetOfBodyKeys() {
        let body: JSONValue = .object(["error": .string("x"), "code": .string("ACT_INVALID_REQUEST"), "stack": .string("secret"),
                                       "reason": .string("navigation_blocked")])
        guard case let .success(value) = payload(call(envelope: true), 400, body) else { return XCTFail() }
        XCTAssertEqual(value["error"]?["body"], .object(["error": .string("x"), "code": .string("ACT_INVALID_REQUEST"),
                                                          "reason": .string("navigation_blocked")]))
        guard case let .success(other) = payload(call(envelope: true), 400, .object(["error": .string("x"), "code": .string("EVIL")])) else {
            return XCTFail()
        }
        XCTAssertEqual(other["error"]?["body"], .object(["error": .string("x"), "unrecognizedCode": .bool(true)]))
        guard case let .success(empty) = payload(call(envelope: true), 502, .object(["error": .string("")])) else { return XCTFail() }
        XCTAssertEqual(empty["error"]?["body"], .object(["error": .string("HTTP 502")]))
    }

    func testProfilesAreFilteredByTheAllowlist() {
        let settings = BrowserProxySettings(enabled: true, allowProfiles: ["openclaw"])
        let body: JSONValue = .object(["profiles": .array([.object(["name": .string("openclaw")]), .object(["name": .string("work")]),
                                                           .string("junk")])])
        XCTAssertEqual(payload(call("/profiles", profile: nil), 200, body, settings: settings),
                       .success(.object(["result": .object(["profiles": .array([.object(["name": .string("openclaw")])])])])))
        guard case let .success(enveloped) = payload(call("/profiles", envelope: true, profile: nil), 200, body, settings: settings) else {
            return XCTFail()
        }
        XCTAssertEqual(enveloped["route"], .object(["status": .string("unavailable")]))
    }

    func testMediaFilesAreInlinedAndRemoved() {
        let media = makeMedia()
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]
        write("\(media)/shot.png", png)
        let result: JSONValue = .object(["ok": .bool(true), "path": .string("\(media)/shot.png")])
        guard case let .success(value) = payload(call(), 200, result) else { return XCTFail() }
        XCTAssertEqual(value["files"], .array([.object(["path": .string("\(media)/shot.png"),
                                                        "base64": .string("iVBORw0KGgoBAgM="), "mimeType": .string("image/png")])]))
        XCTAssertEqual(value["result"], result)
        XCTAssertNotEqual(access("\(media)/shot.png", F_OK), 0)
    }

    func testFilesOutsideTheMediaDirectoryAreNeverRead() {
        let media = makeMedia()
        write("\(dir)/device.json", Array("secret".utf8))
        symlink("\(dir)/device.json", "\(media)/link.png")
        link("\(dir)/device.json", "\(media)/hard.png")
        mkdir("\(media)/sub", 0o700)
        write("\(media)/sub/x.png", [1])
        for path in ["\(dir)/device.json", "\(media)/link.png", "\(media)/hard.png", "\(media)/../device.json", "\(media)/sub/x.png",
                     "\(media)/missing.png", "\(media)/sub"] {
            XCTAssertEqual(payload(call(), 200, .object(["path": .string(path)])),
                           .failure(WireError(code: "INVALID_REQUEST",
                                              message: "Error: browser proxy file read failed for \(path): Error: file not found")), path)
        }
        XCTAssertEqual(access("\(dir)/device.json", F_OK), 0)
    }

    func testFileLimits() {
        let media = makeMedia()
        write("\(media)/big.png", [UInt8](repeating: 7, count: BrowserProxyReply.maxFileBytes + 1))
        XCTAssertEqual(payload(call(), 200, .object(["path": .string("\(media)/big.png")])),
                       .failure(WireError(code: "INVALID_REQUEST", message: "Error: browser proxy file exceeds 10 MiB limit")))
        write("\(media)/a.bin", [UInt8](repeating: 1, count: 9 * 1024 * 1024))
        write("\(media)/b.bin", [UInt8](repeating: 2, count: 9 * 1024 * 1024))
        XCTAssertEqual(payload(call(), 200, .object(["path": .string("\(media)/a.bin"), "imagePath": .string("\(media)/b.bin")])),
                       .failure(WireError(code: "INVALID_REQUEST", message: "Error: browser proxy files exceed 16 MiB aggregate limit")))
    }

    func testMimeTypesAreSniffedThenTakenFromTheExtension() {
        let media = makeMedia()
        write("\(media)/a.bin", Array("%PDF-1.4".utf8))
        write("\(media)/b.jpg", [0, 1])
        let result: JSONValue = .object(["path": .string("\(media)/a.bin"), "imagePath": .string("\(media)/b.jpg"),
                                         "download": .object(["path": .string("\(media)/a.bin")])])
        guard case let .success(value) = payload(call(), 200, result) else { return XCTFail() }
        XCTAssertEqual(value["files"]?.arrayValue?.compactMap { $0["mimeType"]?.stringValue }, ["application/pdf", "image/jpeg"])
    }
}

/// `browser.proxy.upload.v1`'s envelope, as upstream checks it (browser-proxy-upload.ts).
final class BrowserProxyUploadTests: XCTestCase {
    let open = BrowserProxySettings(enabled: true)

    func upload(_ params: [String: JSONValue]) -> Result<[BrowserUploadFile], WireError> {
        switch BrowserProxyRequest.parse(params, settings: open, command: BrowserProxyUpload.command) {
        case let .failure(failure): return .failure(failure.wireError)
        case let .success(call):
            return BrowserProxyUpload.files(params["upload"], call: call).mapError(\.wireError)
        }
    }

    func message(_ params: [String: JSONValue]) -> String? {
        if case let .failure(error) = upload(params) { return error.message }
        return nil
    }

    func chooser(_ files: [JSONValue], body: JSONValue = .object([:])) -> [String: JSONValue] {
        ["method": .string("post"), "path": .string("hooks/file-chooser"), "body": body,
         "upload": .object(["envelope": .string("browser-upload-v1"), "files": .array(files)])]
    }

    func file(_ name: String, _ content: String) -> JSONValue { .object(["name": .string(name), "contentBase64": .string(content)]) }

    func testTheEnvelopeIsCheckedInUpstreamsOrder() {
        for falsy: JSONValue? in [nil, .null, .bool(false), .number(0), .string("")] {
            var params: [String: JSONValue] = ["path": .string("/hooks/file-chooser")]
            params["upload"] = falsy
            XCTAssertEqual(message(params), "Error: INVALID_REQUEST: browser.proxy.upload.v1 requires an upload envelope")
        }
        var wrongRoute = chooser([file("a", "YQ==")])
        wrongRoute["path"] = .string("/snapshot")
        XCTAssertEqual(message(wrongRoute), "Error: INVALID_REQUEST: browser proxy upload requires the file chooser route")
        XCTAssertEqual(message(chooser([file("a", "YQ==")], body: .object(["paths": .array([])]))),
                       "Error: INVALID_REQUEST: browser proxy upload body must omit paths")
        XCTAssertEqual(message(chooser([file("a", "YQ==")], body: .null)), "Error: INVALID_REQUEST: browser proxy upload body must omit paths")
        XCTAssertEqual(message(chooser([])), "Error: INVALID_REQUEST: invalid browser proxy upload envelope")
        XCTAssertEqual(message(chooser(Array(repeating: file("a", "YQ=="), count: 257))), "Error: browser proxy request exceeds 256 file limit")
        XCTAssertEqual(message(chooser([file(" ", "YQ==")])), "Error: INVALID_REQUEST: invalid browser proxy upload file")
        XCTAssertEqual(message(chooser([file("a", "YQ=")])), "Error: INVALID_REQUEST: invalid browser proxy upload encoding")
        XCTAssertEqual(message(chooser([file("a", "YR==")])), "Error: INVALID_REQUEST: invalid browser proxy upload encoding")
        let nineMiB = String(repeating: "A", count: 9 * 1024 * 1024 / 3 * 4)
        XCTAssertEqual(message(chooser([file("a", nineMiB), file("b", nineMiB)])), "Error: browser proxy files exceed 16 MiB aggregate limit")
        XCTAssertEqual(message(chooser([file("a", String(repeating: "A", count: 13_981_020))])),
                       "Error: INVALID_REQUEST: invalid browser proxy upload file")
        guard case let .success(files) = upload(chooser([file("../r?.txt", "YWI=")])) else { return XCTFail("a valid envelope") }
        XCTAssertEqual(files, [BrowserUploadFile(name: "r_.txt", contentBase64: "YWI=")])
        var plain = chooser([file("a", "YQ==")])
        plain["upload"] = .null
        guard case let .failure(error) = BrowserProxyRequest.parse(plain, settings: open) else { return XCTFail("null is an envelope too") }
        XCTAssertEqual(error.wireError.message, "Error: INVALID_REQUEST: browser.proxy does not accept upload envelopes")
    }
}
