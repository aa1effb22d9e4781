@testable import BrowserWorkerCore
import OpenClawIPC
import XCTest

final class RouteTableTests: XCTestCase {
    private func routes() -> BrowserRoutes {
        BrowserRoutes(service: BrowserService(configuration: BrowserConfiguration(
            enabled: true, evaluateEnabled: false, defaultProfile: "openclaw", profiles: [], executablePath: nil, headless: nil,
            noSandbox: false, extraArgs: [], dataDir: "/nonexistent", displayPresent: false)))
    }

    func testUnknownUnsupportedAndValidationAnswersNeedNoBrowser() {
        let table = routes()
        XCTAssertEqual(table.dispatch(method: "GET", path: "/nope", query: [:], body: nil, timeoutMs: 1000).0, 404)
        XCTAssertEqual(table.dispatch(method: "GET", path: "/nope", query: [:], body: nil, timeoutMs: 1000).1,
                       .object(["error": .string("Not Found")]))
        let (status, body) = table.dispatch(method: "POST", path: "/set/credentials", query: [:], body: nil, timeoutMs: 1000)
        XCTAssertEqual(status, 501)
        XCTAssertTrue(body["error"]?.stringValue?.hasPrefix("Playwright is not available in this gateway build; 'http credentials' is unsupported.") ?? false)
        // §5.8 state routes check their input before they need a browser (upstream's texts).
        for (path, fields, error) in [
            ("/cookies/set", [:], "cookie is required"), ("/storage/local/set", [:], "key is required"),
            ("/set/offline", ["offline": JSONValue.string("maybe")], "offline is required"), ("/set/headers", [:], "headers is required"),
            ("/set/media", ["colorScheme": .string("blue")], "colorScheme must be dark|light|no-preference|none"),
            ("/set/timezone", [:], "timezoneId is required"), ("/set/locale", ["locale": .string(" ")], "locale is required"),
        ] as [(String, [String: JSONValue], String)] {
            XCTAssertEqual(table.dispatch(method: "POST", path: path, query: [:], body: .object(fields), timeoutMs: 1000).0, 400, path)
            XCTAssertEqual(table.dispatch(method: "POST", path: path, query: [:], body: .object(fields), timeoutMs: 1000).1,
                           .object(["error": .string(error)]), path)
        }
        XCTAssertEqual(table.dispatch(method: "GET", path: "/storage/disk", query: [:], body: nil, timeoutMs: 1000).1,
                       .object(["error": .string("kind must be local|session")]))
        XCTAssertThrowsError(try BrowserRoutes.cookieParam(["name": .string("a"), "value": .string("b")])) {
            XCTAssertEqual(($0 as? BrowserError)?.message, "cookie requires url, or domain+path")
        }
        XCTAssertEqual(try BrowserRoutes.cookieParam(["name": .string("a"), "value": .string("b"), "domain": .string("x.test"),
                                                      "path": .string("/"), "sameSite": .string("Weird"), "secure": .bool(true)]),
                       .object(["name": .string("a"), "value": .string("b"), "domain": .string("x.test"), "path": .string("/"),
                                "secure": .bool(true)]))
        XCTAssertEqual(table.dispatch(method: "POST", path: "/act", query: [:], body: .object([:]), timeoutMs: 1000).1,
                       .object(["error": .string("kind is required"), "code": .string("ACT_KIND_REQUIRED")]))
        XCTAssertEqual(table.dispatch(method: "POST", path: "/act", query: [:],
                                      body: .object(["kind": .string("click"), "selector": .string("#x")]), timeoutMs: 1000).1["code"],
                       .string("ACT_SELECTOR_UNSUPPORTED"))
        XCTAssertEqual(table.dispatch(method: "POST", path: "/act", query: [:],
                                      body: .object(["kind": .string("evaluate"), "fn": .string("1")]), timeoutMs: 1000).0, 403)
        XCTAssertEqual(table.dispatch(method: "POST", path: "/act", query: [:],
                                      body: .object(["kind": .string("wait")]), timeoutMs: 1000).1["error"],
                       .string("wait requires at least one of: timeMs, text, textGone, selector, url, loadState, fn"))
        XCTAssertEqual(table.dispatch(method: "POST", path: "/act", query: [:],
                                      body: .object(["kind": .string("click"), "ref": .string("e1"), "modifiers": .array([.string("Hyper")])]),
                                      timeoutMs: 1000).1["error"], .string("modifiers must be Alt|Control|ControlOrMeta|Meta|Shift"))
        XCTAssertEqual(table.dispatch(method: "GET", path: "/", query: ["profile": "ghost"], body: nil, timeoutMs: 1000).1,
                       .object(["error": .string("Profile \"ghost\" not found. Available profiles: openclaw")]))
        XCTAssertEqual(table.dispatch(method: "DELETE", path: "/tabs/%zz", query: [:], body: nil, timeoutMs: 1000).1,
                       .object(["error": .string("invalid path parameter encoding: targetId")]))
        XCTAssertEqual(table.dispatch(method: "POST", path: "/tabs/open", query: [:], body: .object([:]), timeoutMs: 1000).1,
                       .object(["error": .string("url is required")]))
        XCTAssertEqual(table.dispatch(method: "POST", path: "/start", query: ["headless": "maybe"], body: nil, timeoutMs: 1000).1,
                       .object(["error": .string("Invalid headless value. Use \"true\" or \"false\".")]))
    }

    func testLenientBodyParsing() {
        let request = RouteRequest(method: "POST", path: "/", query: [:], body: [
            "a": .string(" yes "), "b": .number(0), "c": .string("7"), "d": .string("  "), "e": .number(3),
        ], deadline: Deadline(ms: 10))
        XCTAssertEqual(request.bool("a"), true)
        XCTAssertEqual(request.bool("b"), false)
        XCTAssertEqual(request.int("c"), 7)
        XCTAssertNil(request.string("d"))
        XCTAssertEqual(request.string("e"), "3")
    }

    func testLaunchArgumentsFollowTheUpstreamRecipe() {
        let arguments = ChromiumProcess.arguments(port: 18800, userDataDir: "/s/browser/openclaw/user-data", headless: true,
                                                  noSandbox: false, extraArgs: ["--lang=de"])
        XCTAssertEqual(arguments, [
            "--remote-debugging-port=18800", "--user-data-dir=/s/browser/openclaw/user-data", "--no-first-run",
            "--no-default-browser-check", "--disable-sync", "--disable-background-networking", "--disable-component-update",
            "--disable-features=Translate,MediaRouter", "--disable-session-crashed-bubble", "--hide-crash-restore-bubble",
            "--password-store=basic", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server",
            "--lang=de", "about:blank",
        ])
        XCTAssertFalse(ChromiumProcess.arguments(port: 1, userDataDir: "/u", headless: false, noSandbox: true,
                                                 extraArgs: ["--proxy-server=x"]).contains("--no-proxy-server"))
    }

    /// Upstream's answer for a route it serves through Playwright only, spelled out.
    private func playwrightOnly(_ feature: String) -> String {
        "Playwright is not available in this gateway build; '\(feature)' is unsupported. This node host drives Chromium over "
            + "the DevTools protocol and does not implement this route.\nDocs: /tools/browser-control#playwright-requirement"
    }

    /// The routes of the three tables this one replaced (main, state, Playwright-only), in
    /// their matching order.
    private let everyRoute: [(String, String, RouteFamily)] = [
        ("GET", "/", .profiles), ("POST", "/start", .profiles), ("POST", "/stop", .profiles), ("GET", "/profiles", .profiles),
        ("GET", "/tabs", .tabs), ("POST", "/tabs/open", .tabs), ("POST", "/tabs/focus", .tabs), ("DELETE", "/tabs/:targetId", .tabs),
        ("POST", "/tabs/action", .tabs), ("POST", "/navigate", .tabs),
        ("GET", "/snapshot", .snapshot), ("POST", "/screenshot", .capture), ("POST", "/pdf", .capture),
        ("GET", "/console", .diagnostics), ("GET", "/errors", .diagnostics), ("GET", "/requests", .diagnostics),
        ("POST", "/highlight", .act), ("POST", "/hooks/dialog", .act), ("POST", "/hooks/file-chooser", .act), ("POST", "/act", .act),
        ("GET", "/cookies", .state), ("POST", "/cookies/set", .state), ("POST", "/cookies/clear", .state),
        ("GET", "/storage/:kind", .state), ("POST", "/storage/:kind/set", .state), ("POST", "/storage/:kind/clear", .state),
        ("POST", "/set/offline", .state), ("POST", "/set/headers", .state), ("POST", "/set/geolocation", .state),
        ("POST", "/set/media", .state), ("POST", "/set/timezone", .state), ("POST", "/set/locale", .state),
        ("POST", "/trace/start", .unsupported("trace")), ("POST", "/trace/stop", .unsupported("trace")),
        ("POST", "/response/body", .unsupported("response body")), ("POST", "/download", .unsupported("download")),
        ("POST", "/wait/download", .unsupported("wait for download")), ("POST", "/set/device", .unsupported("device emulation")),
        ("POST", "/set/credentials", .unsupported("http credentials")),
        ("POST", "/permissions/grant", .unsupported("permissions")),
    ]

    func testOneTableListsEveryRouteIncludingThe501sInMatchingOrder() {
        XCTAssertEqual(BrowserRoutes.routes.map { "\($0.method) \($0.pattern)" }, everyRoute.map { "\($0.0) \($0.1)" })
        XCTAssertEqual(BrowserRoutes.routes.map(\.family), everyRoute.map { $0.2 })
    }

    func testEveryRowAnswersItsOwnPathNoEarlierRowShadowsIt() throws {
        for entry in BrowserRoutes.routes {
            let path = "/" + entry.pattern.split(separator: "/").map { $0.hasPrefix(":") ? "x" : String($0) }.joined(separator: "/")
            let resolved = try BrowserRoutes.resolve(method: entry.method, path: path)
            XCTAssertEqual(resolved.map { "\($0.entry.method) \($0.entry.pattern)" }, "\(entry.method) \(entry.pattern)", path)
        }
    }

    func testPathsResolveToTheirFamilyWithDecodedParameters() throws {
        for (method, path, family, parameters) in [
            ("GET", "/", RouteFamily.profiles, [:]),
            ("GET", "/tabs/", .tabs, [:]),
            ("DELETE", "/tabs/ABC%20def", .tabs, ["targetId": "ABC def"]),
            ("DELETE", "/tabs/t1", .tabs, ["targetId": "t1"]),
            ("GET", "/storage/local", .state, ["kind": "local"]),
            ("POST", "/storage/session/set", .state, ["kind": "session"]),
            ("POST", "/storage/disk/clear", .state, ["kind": "disk"]),
            ("POST", "/set/offline", .state, [:]),
            ("POST", "/set/device", .unsupported("device emulation"), [:]),
            ("POST", "/hooks/dialog", .act, [:]),
            ("POST", "/hooks/file-chooser", .act, [:]),
        ] as [(String, String, RouteFamily, [String: String])] {
            let resolved = try BrowserRoutes.resolve(method: method, path: path)
            XCTAssertEqual(resolved?.entry.family, family, "\(method) \(path)")
            XCTAssertEqual(resolved?.parameters, parameters, "\(method) \(path)")
        }
    }

    func testPlaywrightOnlyRoutesAnswer501WithUpstreamsMessage() {
        let table = routes()
        for (path, feature) in [
            ("/trace/start", "trace"), ("/trace/stop", "trace"), ("/response/body", "response body"), ("/download", "download"),
            ("/wait/download", "wait for download"), ("/set/device", "device emulation"),
            ("/set/credentials", "http credentials"), ("/permissions/grant", "permissions"),
        ] {
            let (status, body) = table.dispatch(method: "POST", path: path, query: [:], body: nil, timeoutMs: 1000)
            XCTAssertEqual(status, 501, path)
            XCTAssertEqual(body, .object(["error": .string(playwrightOnly(feature))]), path)
        }
    }

    func testUnknownRoutesAndOtherMethodsAnswer404NotFound() {
        let table = routes()
        for (method, path) in [
            ("GET", "/nope"), ("GET", "/start"), ("PUT", "/tabs/open"), ("GET", "/trace/start"), ("POST", "/trace/start/now"),
            ("DELETE", "/tabs"), ("DELETE", "/tabs/a/b"), ("POST", "/storage/local"), ("GET", "/storage/local/set"),
        ] {
            let (status, body) = table.dispatch(method: method, path: path, query: [:], body: nil, timeoutMs: 1000)
            XCTAssertEqual(status, 404, "\(method) \(path)")
            XCTAssertEqual(body, .object(["error": .string("Not Found")]), "\(method) \(path)")
        }
    }

    func testABadlyEncodedPathParameterAnswers400WhenItsRowIsTried() {
        let table = routes()
        for (method, path, name) in [
            ("DELETE", "/tabs/%zz", "targetId"), ("DELETE", "/tabs/%2", "targetId"), ("GET", "/storage/%E2%82", "kind"),
            ("POST", "/storage/%zz/set", "kind"),
            // The parameter is decoded before the segments after it are compared.
            ("POST", "/storage/%zz/other", "kind"),
        ] {
            let (status, body) = table.dispatch(method: method, path: path, query: [:], body: nil, timeoutMs: 1000)
            XCTAssertEqual(status, 400, "\(method) \(path)")
            XCTAssertEqual(body, .object(["error": .string("invalid path parameter encoding: \(name)")]), "\(method) \(path)")
        }
    }

    func testEachFamilyIsWiredToItsRoutesAnswersThatNeedNoBrowser() {
        let table = routes()
        let cases: [(method: String, path: String, query: [String: String], body: [String: JSONValue], status: Int, error: String)] = [
            ("POST", "/tabs/focus", [:], [:], 400, "targetId is required"),
            ("POST", "/tabs/action", [:], ["index": .number(-1)], 400, "index must be a non-negative integer"),
            ("POST", "/tabs/action", [:], ["action": .string("spin")], 400, "unknown tab action"),
            ("POST", "/navigate", [:], [:], 400, "url is required"),
            ("GET", "/snapshot", ["format": "html"], [:], 400, "format must be aria or ai"),
            ("GET", "/snapshot", ["format": "aria", "labels": "1"], [:], 400, "labels/mode=efficient require format=ai"),
            ("GET", "/snapshot", ["refs": "aria"], [:], 501, playwrightOnly("aria refs")),
            ("POST", "/screenshot", [:], ["fullPage": .bool(true), "ref": .string("e1")], 400,
             "fullPage is not supported for element screenshots"),
            ("POST", "/screenshot", [:], ["element": .string("#x")], 501, playwrightOnly("element screenshot")),
            ("POST", "/screenshot", [:], ["type": .string("gif")], 400, "type must be png or jpeg"),
            ("POST", "/highlight", [:], [:], 400, "ref is required"),
            ("POST", "/hooks/dialog", [:], [:], 400, "accept is required"),
            ("POST", "/act", [:], ["kind": .string("batch")], 501, playwrightOnly("act:batch")),
            ("POST", "/act", [:], ["kind": .string("spin")], 400, "unknown kind: spin"),
            ("POST", "/set/geolocation", [:], ["latitude": .number(1)], 400, "latitude and longitude are required"),
            ("POST", "/storage/session/clear", ["profile": "ghost"], [:], 404, "Profile \"ghost\" not found. Available profiles: openclaw"),
        ]
        for row in cases {
            let (status, body) = table.dispatch(method: row.method, path: row.path, query: row.query, body: .object(row.body), timeoutMs: 1000)
            XCTAssertEqual(status, row.status, "\(row.method) \(row.path)")
            XCTAssertEqual(body["error"], .string(row.error), "\(row.method) \(row.path)")
        }
    }

    func testStopAndProfilesAnswerWithoutABrowser() {
        let table = routes()
        XCTAssertEqual(table.dispatch(method: "POST", path: "/stop", query: [:], body: nil, timeoutMs: 1000).1,
                       .object(["ok": .bool(true), "stopped": .bool(false), "profile": .string("openclaw")]))
        let (status, body) = table.dispatch(method: "GET", path: "/profiles", query: [:], body: nil, timeoutMs: 1000)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(body, .object(["profiles": .array([.object([
            "name": .string("openclaw"), "cdpPort": .number(18800), "cdpUrl": .string("http://127.0.0.1:18800"),
            "color": .string("#FF4500"), "driver": .string("openclaw"), "running": .bool(false), "tabCount": .number(0),
            "isDefault": .bool(true), "isRemote": .bool(false), "transport": .string("cdp"),
        ])])]))
    }
}
