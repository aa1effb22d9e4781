import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC

/// One route call as the handlers see it (`browser.md` §2: lenient body parsing).
struct RouteRequest {
    typealias Object = [String: JSONValue]

    var method: String
    var path: String
    var query: [String: String]
    var body: Object
    var pathParameters: [String: String] = [:]
    var deadline: Deadline

    /// A body field as trimmed text (numbers and booleans stringified); empty = absent.
    func string(_ key: String) -> String? { Self.text(body[key]) }

    /// Lenient text of any JSON value (§2): the reading of `string(_:)`, also for nested objects.
    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case let .string(text)?: let value = text.trimmed(); return value.isEmpty ? nil : value
        case let .number(number)?: return number.javaScriptString
        case let .bool(flag)?: return String(flag)
        default: return nil
        }
    }

    /// The raw string (not trimmed; `type` text may be spaces or empty).
    func rawString(_ key: String) -> String? { body[key]?.stringValue }

    static func bool(_ value: JSONValue?) -> Bool? {
        switch value {
        case let .bool(flag)?: return flag
        case let .number(number)?: return number == 1 ? true : number == 0 ? false : nil
        case let .string(text)?:
            switch text.trimmed().lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: return nil
            }
        default: return nil
        }
    }

    func bool(_ key: String) -> Bool? { Self.bool(body[key]) }
    func queryBool(_ key: String) -> Bool? { query[key].flatMap { Self.bool(.string($0)) } }

    func int(_ key: String) -> Int? {
        switch body[key] {
        case let .number(number)?: return number.isFinite ? number.saturatingInt : nil
        case let .string(text)?: return Int(text.trimmed()) ?? Double(text.trimmed()).flatMap { $0.isFinite ? $0.saturatingInt : nil }
        default: return nil
        }
    }

    func queryInt(_ key: String) -> Int? { query[key].flatMap { Int($0.trimmed()) } }

    /// `targetId` from the body or the query.
    var targetId: String? { string("targetId") ?? query["targetId"].map { $0.trimmed() }.flatMap { $0.isEmpty ? nil : $0 } }

    /// The profile the route acts on: query wins over body (`routes/utils.ts`).
    var profileName: String? {
        if let name = query["profile"]?.trimmed(), !name.isEmpty { return name }
        return string("profile")
    }
}

/// The browser-control route table (`browser.md` §9 tier 1, PDF, and the §5.8 state routes in
/// `BrowserStateRoutes.swift`), answering like
/// upstream's dispatcher: 404 `Not Found` for unknown routes, 501 for the Playwright-only ones.
final class BrowserRoutes {
    typealias Object = [String: JSONValue]
    enum Route {
        case status, start, stop, profiles, tabs, openTab, focusTab, deleteTab, tabAction, navigate, snapshot, screenshot, pdf
        case console, errors, requests, highlight, dialog, act
    }

    let service: BrowserService
    let mediaDir: String

    init(service: BrowserService) {
        self.service = service
        mediaDir = "\(service.configuration.dataDir)/media"
    }

    static let table: [(method: String, pattern: String, route: Route)] = [
        ("GET", "/", .status), ("POST", "/start", .start), ("POST", "/stop", .stop), ("GET", "/profiles", .profiles),
        ("GET", "/tabs", .tabs), ("POST", "/tabs/open", .openTab), ("POST", "/tabs/focus", .focusTab),
        ("DELETE", "/tabs/:targetId", .deleteTab), ("POST", "/tabs/action", .tabAction), ("POST", "/navigate", .navigate),
        ("GET", "/snapshot", .snapshot), ("POST", "/screenshot", .screenshot), ("POST", "/pdf", .pdf),
        ("GET", "/console", .console), ("GET", "/errors", .errors), ("GET", "/requests", .requests),
        ("POST", "/highlight", .highlight), ("POST", "/hooks/dialog", .dialog), ("POST", "/act", .act),
    ]

    func handle(_ route: Route, _ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        switch route {
        case .status: return try status(&request)
        case .start: return try start(&request)
        case .stop: return try stop(&request)
        case .profiles: return try listProfiles(&request)
        case .tabs: return try listTabs(&request)
        case .openTab: return try openTab(&request)
        case .focusTab: return try focusTab(&request)
        case .deleteTab: return try deleteTab(&request)
        case .tabAction: return try tabAction(&request)
        case .navigate: return try navigate(&request)
        case .snapshot: return try snapshot(&request)
        case .screenshot: return try screenshot(&request)
        case .pdf: return try pdf(&request)
        case .console: return try consoleMessages(&request)
        case .errors: return try pageErrors(&request)
        case .requests: return try networkRequests(&request)
        case .highlight: return try highlight(&request)
        case .dialog: return try armDialog(&request)
        case .act: return try act(&request)
        }
    }

    /// Routes upstream serves through Playwright that this port does not implement (§9).
    static let unsupported: [(method: String, pattern: String, feature: String)] = [
        ("POST", "/trace/start", "trace"), ("POST", "/trace/stop", "trace"), ("POST", "/response/body", "response body"),
        ("POST", "/download", "download"), ("POST", "/wait/download", "wait for download"), ("POST", "/set/device", "device emulation"),
        ("POST", "/hooks/file-chooser", "file chooser"),
        ("POST", "/set/credentials", "http credentials"), ("POST", "/permissions/grant", "permissions"),
    ]

    static func unsupportedMessage(_ feature: String) -> String {
        "Playwright is not available in this gateway build; '\(feature)' is unsupported. This node host drives Chromium over "
            + "the DevTools protocol and does not implement this route.\nDocs: /tools/browser-control#playwright-requirement"
    }

    /// Matches `pattern` (`:name` segments match one URL-decoded segment) against `path`.
    static func match(_ pattern: String, _ path: String) throws(BrowserError) -> [String: String]? {
        let patternParts = pattern.split(separator: "/")
        let pathParts = path.split(separator: "/")
        guard patternParts.count == pathParts.count else { return nil }
        var parameters: [String: String] = [:]
        for (expected, actual) in zip(patternParts, pathParts) {
            if expected.hasPrefix(":") {
                let name = String(expected.dropFirst())
                guard let decoded = percentDecode(String(actual)) else {
                    throw BrowserError("invalid path parameter encoding: \(name)", status: 400)
                }
                parameters[name] = decoded
            } else if expected != actual {
                return nil
            }
        }
        return parameters
    }

    static func percentDecode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Runs one route; never throws (failures become error bodies).
    func dispatch(method: String, path: String, query: [String: String], body: JSONValue?, timeoutMs: Int) -> (Int, JSONValue) {
        var request = RouteRequest(method: method, path: path, query: query, body: body?.objectValue ?? [:],
                                   deadline: Deadline(ms: timeoutMs))
        do {
            for route in Self.table where route.method == method {
                guard let parameters = try Self.match(route.pattern, path) else { continue }
                request.pathParameters = parameters
                return (200, try handle(route.route, &request))
            }
            for route in Self.stateTable where route.method == method {
                guard let parameters = try Self.match(route.pattern, path) else { continue }
                request.pathParameters = parameters
                return (200, try handle(route.route, &request))
            }
            for route in Self.unsupported where route.method == method {
                if try Self.match(route.pattern, path) != nil {
                    return (501, .object(["error": .string(Self.unsupportedMessage(route.feature))]))
                }
            }
            return (404, .object(["error": .string("Not Found")]))
        } catch {
            return (error.status, error.body)
        }
    }

    // MARK: Status and lifecycle (§5.1)

    func selectedProfile(_ request: RouteRequest) throws(BrowserError) -> BrowserService.Profile {
        try service.profile(named: request.profileName ?? service.configuration.defaultProfile)
    }

    func status(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try selectedProfile(request)
        let cdpHttp = service.cdpHTTPReachable(profile, timeoutMs: 300)
        let ready = cdpHttp && service.cdpReady(profile)
        let (headless, source) = (try? service.headless(for: profile)) ?? (true, "default")
        let executable = profile.config.executablePath ?? service.configuration.executablePath
        return .object([
            "enabled": .bool(service.configuration.enabled), "profile": .string(profile.config.name),
            "running": .bool(ready), "cdpReady": .bool(ready), "cdpHttp": .bool(cdpHttp),
            "pid": profile.chromium.map { .number(Double($0.pid)) } ?? .null,
            "cdpPort": profile.cdpPort.map { .number(Double($0)) } ?? .null, "cdpUrl": profile.cdpUrl.map(JSONValue.string) ?? .null,
            "chosenBrowser": profile.chromium != nil ? .string("chromium") : .null,
            "detectedBrowser": executable != nil ? .string("chromium") : .null,
            "detectedExecutablePath": executable.map(JSONValue.string) ?? .null,
            "detectError": executable == nil ? .string("No supported browser found") : .null,
            "userDataDir": profile.chromium.map { .string($0.userDataDir) } ?? .null,
            "color": .string(profile.config.color), "headless": .bool(profile.launchedHeadless ?? headless),
            "headlessSource": .string(source), "noSandbox": .bool(service.configuration.noSandbox),
            "executablePath": profile.config.executablePath.map(JSONValue.string) ?? .null,
            "attachOnly": .bool(profile.config.attachOnly), "driver": .string("openclaw"), "transport": .string("cdp"),
        ])
    }

    func start(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try selectedProfile(request)
        if let raw = request.query["headless"] {
            guard let value = RouteRequest.bool(.string(raw)), ["true", "false"].contains(raw.trimmed().lowercased()) else {
                throw BrowserError("Invalid headless value. Use \"true\" or \"false\".", status: 400)
            }
            if profile.connection == nil { profile.headlessOverride = value }
        }
        _ = try service.ensureRunning(profile, deadline: request.deadline)
        return .object(["ok": .bool(true), "profile": .string(profile.config.name)])
    }

    func stop(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try selectedProfile(request)
        let stopped = service.stop(profile)
        return .object(["ok": .bool(true), "stopped": .bool(stopped), "profile": .string(profile.config.name)])
    }

    func listProfiles(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profiles = service.profiles.map { profile -> JSONValue in
            let running = profile.connection.map { !$0.isClosed } ?? false
            let tabCount = running ? ((try? service.tabs(profile, timeoutMs: 1000))?.count ?? 0) : 0
            return .object([
                "name": .string(profile.config.name), "cdpPort": profile.cdpPort.map { .number(Double($0)) } ?? .null,
                "cdpUrl": profile.cdpUrl.map(JSONValue.string) ?? .null, "color": .string(profile.config.color),
                "driver": .string("openclaw"), "running": .bool(running), "tabCount": .number(Double(tabCount)),
                "isDefault": .bool(profile.config.name == service.configuration.defaultProfile),
                "isRemote": .bool(profile.isRemote), "transport": .string("cdp"),
            ])
        }
        return .object(["profiles": .array(profiles)])
    }

    // MARK: Tabs (§5.2)

    func listTabs(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try selectedProfile(request)
        guard service.cdpHTTPReachable(profile, timeoutMs: 300),
              let tabs = try? service.tabs(profile, timeoutMs: min(request.deadline.remaining, 3000)) else {
            return .object(["running": .bool(false), "tabs": .array([])])
        }
        return .object(["running": .bool(true), "tabs": .array(tabs.map(\.json))])
    }

    func openTab(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try selectedProfile(request)
        guard let url = request.string("url") else { throw BrowserError("url is required", status: 400) }
        let label = request.string("label")
        if let label { try service.checkLabel(profile, label, for: nil) }
        var tab = try service.openTab(profile, url: url, deadline: request.deadline)
        if let label {
            try service.setLabel(profile, tab.targetId, label)
            tab.label = label
        }
        return tab.json
    }

    func runningProfile(_ request: RouteRequest) throws(BrowserError) -> BrowserService.Profile {
        let profile = try selectedProfile(request)
        guard service.cdpHTTPReachable(profile, timeoutMs: 300) else { throw BrowserError("browser not running", status: 409) }
        return profile
    }

    func focusTab(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let targetId = request.string("targetId") else { throw BrowserError("targetId is required", status: 400) }
        let profile = try runningProfile(request)
        let tab = try service.resolveTab(profile, targetId, deadline: request.deadline)
        let connection = try service.ensureRunning(profile, deadline: request.deadline)
        try connection.call("Target.activateTarget", ["targetId": .string(tab.targetId)], timeoutMs: request.deadline.remaining)
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId)])
    }

    func deleteTab(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try runningProfile(request)
        let requested = request.pathParameters["targetId"] ?? ""
        let tab: BrowserService.Tab
        if request.query["targetIdMode"] == "raw" {
            guard let exact = try service.tabs(profile, timeoutMs: 3000).first(where: { $0.targetId == requested }) else {
                throw BrowserError("tab not found", status: 404)
            }
            tab = exact
        } else {
            tab = try service.resolveTab(profile, requested, deadline: request.deadline)
        }
        _ = try service.ensureRunning(profile, deadline: request.deadline)
        try service.closeTab(profile, tab.targetId, deadline: request.deadline)
        return .object(["ok": .bool(true)])
    }

    func tabAction(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let profile = try selectedProfile(request)
        let index: Int?
        if request.body["index"] != nil {
            guard let value = request.int("index"), value >= 0 else { throw BrowserError("index must be a non-negative integer", status: 400) }
            index = value
        } else {
            index = nil
        }
        switch request.string("action") ?? "" {
        case "list":
            let tabs = service.cdpHTTPReachable(profile, timeoutMs: 300) ? try service.tabs(profile, timeoutMs: 3000) : []
            return .object(["ok": .bool(true), "tabs": .array(tabs.map(\.json))])
        case "new":
            return .object(["ok": .bool(true), "tab": try service.openTab(profile, url: "about:blank", deadline: request.deadline).json])
        case "close":
            let running = try runningProfile(request)
            let tabs = try service.tabs(running, timeoutMs: 3000)
            let position = index ?? 0
            guard tabs.indices.contains(position) else { throw BrowserError("tab not found", status: 404) }
            _ = try service.ensureRunning(running, deadline: request.deadline)
            try service.closeTab(running, tabs[position].targetId, deadline: request.deadline)
            return .object(["ok": .bool(true), "targetId": .string(tabs[position].targetId)])
        case "select":
            guard let position = index else { throw BrowserError("index is required", status: 400) }
            let running = try runningProfile(request)
            let tabs = try service.tabs(running, timeoutMs: 3000)
            guard tabs.indices.contains(position) else { throw BrowserError("tab not found", status: 404) }
            let connection = try service.ensureRunning(running, deadline: request.deadline)
            try connection.call("Target.activateTarget", ["targetId": .string(tabs[position].targetId)], timeoutMs: request.deadline.remaining)
            running.lastTargetId = tabs[position].targetId
            return .object(["ok": .bool(true), "targetId": .string(tabs[position].targetId)])
        case "label":
            guard let label = request.string("label") else { throw BrowserError("label is required", status: 400) }
            let running = try runningProfile(request)
            var tab = try service.resolveTab(running, request.targetId, deadline: request.deadline)
            try service.setLabel(running, tab.targetId, label)
            tab.label = label
            return .object(["ok": .bool(true), "tab": tab.json])
        default:
            throw BrowserError("unknown tab action", status: 400)
        }
    }

    /// The tab a page route acts on, with its CDP session (launches the browser on demand).
    func page(_ request: RouteRequest) throws(BrowserError) -> (BrowserService.Profile, BrowserService.Tab, CDPConnection, String) {
        let profile = try selectedProfile(request)
        _ = try service.ensureRunning(profile, deadline: request.deadline)
        let tab = try service.resolveTab(profile, request.targetId, deadline: request.deadline)
        let (connection, session) = try service.session(profile, tab.targetId, deadline: request.deadline)
        return (profile, tab, connection, session)
    }

    // MARK: Navigation, snapshot, screenshot, PDF (§5.3)

    func navigate(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let url = request.string("url") else { throw BrowserError("url is required", status: 400) }
        let timeout = min(max(request.int("timeoutMs") ?? 20000, 1000), 120_000)
        let (profile, tab, connection, session) = try page(request)
        let deadline = Deadline(ms: min(timeout, request.deadline.remaining))
        let result = try connection.call("Page.navigate", ["url": .string(url)], session: session, timeoutMs: deadline.remaining)
        if let error = result["errorText"]?.stringValue, !error.isEmpty {
            throw BrowserError("navigation to \(url) failed: \(error)", status: 500)
        }
        try waitForLoad(connection, session, deadline: deadline)
        profile.refs[tab.targetId] = nil
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId),
                        "url": .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))])
    }

    /// Polls `document.readyState` until `complete`.
    func waitForLoad(_ connection: CDPConnection, _ session: String, deadline: Deadline) throws(BrowserError) {
        while true {
            if let state = try? evaluate(connection, session, "document.readyState", deadline: deadline), state == .string("complete") {
                return
            }
            guard deadline.remaining > 100 else { throw BrowserError("navigation timed out", status: 504) }
            usleep(50_000)
        }
    }

    func snapshot(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let efficient = request.query["mode"] == "efficient"
        let labels = request.queryBool("labels") ?? false
        let format = request.query["format"] ?? "ai"
        guard format == "ai" || format == "aria" else { throw BrowserError("format must be aria or ai", status: 400) }
        if format == "aria", labels || efficient { throw BrowserError("labels/mode=efficient require format=ai", status: 400) }
        if request.query["refs"] == "aria", format == "ai" { throw BrowserError(Self.unsupportedMessage("aria refs"), status: 501) }
        let (profile, tab, connection, session) = try page(request)
        try connection.call("Accessibility.enable", session: session, timeoutMs: request.deadline.remaining)
        let tree = try connection.call("Accessibility.getFullAXTree", session: session, timeoutMs: request.deadline.remaining)
        var nodes = Snapshot.nodes(from: tree)
        let url = service.currentURL(profile, tab.targetId, deadline: request.deadline)
        if format == "aria" {
            let limit = min(max(request.queryInt("limit") ?? 500, 1), 2000)
            let result = Snapshot.aria(nodes, limit: limit)
            profile.refs[tab.targetId] = result.refs
            return .object(["ok": .bool(true), "format": .string("aria"), "targetId": .string(tab.targetId), "url": .string(url),
                            "nodes": .array(result.nodes)])
        }
        nodes = Snapshot.markCursorInteractive(nodes, hits: cursorInteractive(connection, session, deadline: request.deadline))
        nodes = expandFrames(nodes, connection, session, deadline: request.deadline)
        var options = Snapshot.RoleOptions()
        options.urls = request.queryBool("urls") ?? false
        if options.urls { nodes = resolveLinkTargets(nodes, connection, session, deadline: request.deadline) }
        options.interactive = request.queryBool("interactive") ?? efficient
        options.compact = request.queryBool("compact") ?? efficient
        options.depth = request.queryInt("depth") ?? (efficient ? 6 : nil)
        let maxChars = request.queryInt("maxChars") ?? (efficient ? 8000 : 40000)
        options.maxChars = maxChars == 0 ? nil : maxChars
        let result = Snapshot.role(nodes, options: options)
        profile.refs[tab.targetId] = result.refs
        var refs: Object = [:]
        for (ref, entry) in result.refs {
            var object: Object = ["role": .string(entry.role), "name": .string(entry.name)]
            if let nth = entry.nth { object["nth"] = .number(Double(nth)) }
            refs[ref] = .object(object)
        }
        var body: Object = [
            "ok": .bool(true), "format": .string("ai"), "targetId": .string(tab.targetId), "url": .string(url),
            "snapshot": .string(result.text), "refs": .object(refs),
            "stats": .object(["lines": .number(Double(result.lines)), "chars": .number(Double(result.text.count)),
                              "refs": .number(Double(result.refs.count)), "interactive": .number(Double(result.interactiveRefs))]),
        ]
        if result.truncated { body["truncated"] = .bool(true) }
        if labels {
            let drawn = try labelledScreenshot(result.refs, connection, session, deadline: request.deadline)
            body["labels"] = .bool(true)
            body["labelsCount"] = .number(Double(drawn.count))
            body["labelsSkipped"] = .number(Double(drawn.skipped))
            body["imagePath"] = .string(drawn.path)
            body["imageType"] = .string("png")
        }
        return .object(body)
    }

    /// `labels=1`: a viewport screenshot with a badge naming each ref at its element's box.
    /// Refs whose element is not in the viewport (or has no box) are counted as skipped. The
    /// badges are a fixed overlay removed again right after the capture.
    func labelledScreenshot(_ refs: [String: BrowserService.RefEntry], _ connection: CDPConnection, _ session: String,
                            deadline: Deadline) throws(BrowserError) -> (count: Int, skipped: Int, path: String) {
        let viewport = try evaluate(connection, session, "[innerWidth, innerHeight]", deadline: deadline)
        let width = viewport.arrayValue?.first?.numberValue ?? 0, height = viewport.arrayValue?.last?.numberValue ?? 0
        var badges: [JSONValue] = []
        var skipped = 0
        let ordered = refs.sorted { (Int($0.key.dropFirst()) ?? 0) < (Int($1.key.dropFirst()) ?? 0) }
        for (ref, entry) in ordered {
            guard let node = entry.backendNodeId, deadline.remaining > 500,
                  let quads = try? connection.call("DOM.getContentQuads", ["backendNodeId": .number(Double(node))],
                                                   session: session, timeoutMs: deadline.remaining),
                  let quad = quads["quads"]?.arrayValue?.first?.arrayValue?.compactMap(\.numberValue), quad.count == 8 else {
                skipped += 1
                continue
            }
            let xs = stride(from: 0, to: 8, by: 2).map { quad[$0] }, ys = stride(from: 1, to: 8, by: 2).map { quad[$0] }
            guard xs.max()! > 0, ys.max()! > 0, xs.min()! < width, ys.min()! < height else {
                skipped += 1
                continue
            }
            badges.append(.object(["ref": .string(ref), "x": .number(max(0, xs.min()!)), "y": .number(max(0, ys.min()!))]))
        }
        let overlay = "__openclaw_node_labels"
        let list = String(decoding: JSONValue.array(badges).serialized(), as: UTF8.self)
        // Removed whatever happens next, with its own short deadline (the request's may be spent).
        defer { _ = try? evaluate(connection, session, "document.getElementById('\(overlay)')?.remove()", deadline: Deadline(ms: 2000)) }
        _ = try evaluate(connection, session, """
            (() => { const box = document.createElement("div"); box.id = "\(overlay)";
              box.style.cssText = "position:fixed;left:0;top:0;width:0;height:0;z-index:2147483647;pointer-events:none";
              for (const badge of \(list)) { const tag = document.createElement("span"); tag.textContent = badge.ref;
                tag.style.cssText = "position:fixed;left:" + badge.x + "px;top:" + badge.y + "px;background:#FF4500;color:#fff;" +
                  "font:bold 11px monospace;padding:1px 3px;border-radius:3px;line-height:1.2;white-space:nowrap";
                box.appendChild(tag); }
              document.documentElement.appendChild(box);
              // Painted before the capture; a hidden tab runs no animation frames, hence the timer.
              return new Promise((done) => { requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
                                            setTimeout(() => done(true), 200); }); })()
            """, deadline: deadline)
        let shot = try connection.call("Page.captureScreenshot", ["format": .string("png")], session: session, timeoutMs: deadline.remaining)
        return (badges.count, skipped, try saveMedia(shot["data"]?.stringValue, extension: "png"))
    }

    /// Hangs the tree of every same-process iframe under its `Iframe` node, frames inside
    /// frames too (up to 3 levels and 50 frames). The frame comes from `DOM.describeNode` of
    /// the iframe element; a frame this page session cannot read (an out-of-process,
    /// cross-site iframe) stays an `Iframe` line without children.
    func expandFrames(_ nodes: [Snapshot.Node], _ connection: CDPConnection, _ session: String, deadline: Deadline) -> [Snapshot.Node] {
        var frames: [(iframe: String, nodes: [Snapshot.Node])] = []
        var pending = nodes.filter { $0.role.lowercased() == "iframe" }.map { ($0, "", 1) }
        while let (iframe, prefix, level) = pending.first, frames.count < 50, deadline.remaining > 200 {
            pending.removeFirst()
            guard let backend = iframe.backendNodeId,
                  let described = try? connection.call("DOM.describeNode", ["backendNodeId": .number(Double(backend))],
                                                       session: session, timeoutMs: deadline.remaining),
                  let frameId = described["node"]?["frameId"]?.stringValue,
                  let tree = try? connection.call("Accessibility.getFullAXTree", ["frameId": .string(frameId)],
                                                  session: session, timeoutMs: deadline.remaining) else { continue }
            let frameNodes = Snapshot.nodes(from: tree)
            frames.append((prefix + iframe.id, frameNodes))
            if level < 3 {
                let framePrefix = "f\(frames.count):"
                // `merge` renames frame k's nodes `f<k>:…`: that is how its iframes are found again.
                pending += frameNodes.filter { $0.role.lowercased() == "iframe" }.map { ($0, framePrefix, level + 1) }
            }
        }
        return frames.isEmpty ? nodes : Snapshot.merge(nodes, frames: frames)
    }

    /// The attribute the cursor script marks elements with, removed again afterwards.
    static let cursorMark = "data-openclaw-node-ci"

    /// §6.2 step 2: elements that are not native controls and have no interactive role, are
    /// visible, and look clickable (cursor:pointer not inherited from the parent, an onclick,
    /// a tabindex other than -1, contenteditable); a hidden radio or checkbox inside one is
    /// named too. Each is marked with its index; the script returns their reasons and text.
    static let cursorScript = """
        (() => {
          const mark = "\(cursorMark)";
          const nativeTags = ["a", "button", "input", "select", "textarea", "details", "summary"];
          const roles = [\(Snapshot.interactiveRoles.sorted().map { "\"\($0)\"" }.joined(separator: ","))];
          document.querySelectorAll("[" + mark + "]").forEach((element) => element.removeAttribute(mark));
          const found = [];
          const all = document.body ? document.body.querySelectorAll("*") : [];
          for (const element of all) {
            if (!(element instanceof HTMLElement) || element.closest("[hidden],[aria-hidden='true']")) continue;
            if (nativeTags.includes(element.tagName.toLowerCase())) continue;
            if (roles.includes((element.getAttribute("role") || "").toLowerCase())) continue;
            const pointer = getComputedStyle(element).cursor === "pointer";
            const onclick = element.hasAttribute("onclick") || element.onclick !== null;
            const tabindex = element.hasAttribute("tabindex") && element.getAttribute("tabindex") !== "-1";
            const editable = ["", "true"].includes(element.getAttribute("contenteditable"));
            if (!pointer && !onclick && !tabindex && !editable) continue;
            if (pointer && !onclick && !tabindex && !editable && element.parentElement &&
                getComputedStyle(element.parentElement).cursor === "pointer") continue;
            const box = element.getBoundingClientRect();
            if (!(box.width > 0 && box.height > 0)) continue;
            const reasons = [];
            if (pointer) reasons.push("cursor:pointer");
            if (onclick) reasons.push("onclick");
            if (tabindex) reasons.push("tabindex");
            if (editable) reasons.push("contenteditable");
            const choice = element.querySelector("input[type=radio],input[type=checkbox]");
            if (choice && (choice.hidden || ["none"].includes(getComputedStyle(choice).display) ||
                           getComputedStyle(choice).visibility === "hidden")) reasons.push("hidden-" + choice.type);
            element.setAttribute(mark, String(found.length));
            found.push({ reasons, text: Array.from((element.textContent || "").replace(/\\s+/g, " ").trim()).slice(0, 100).join("") });
          }
          return found;
        })()
        """

    /// backendNodeId → what the cursor script found there (best effort: empty on any failure).
    func cursorInteractive(_ connection: CDPConnection, _ session: String, deadline: Deadline) -> [Int: Snapshot.CursorHit] {
        guard case let .array(found)? = try? evaluate(connection, session, Self.cursorScript, deadline: deadline), !found.isEmpty else {
            return [:]
        }
        defer {
            _ = try? evaluate(connection, session, "document.querySelectorAll('[\(Self.cursorMark)]').forEach((e) => e.removeAttribute('\(Self.cursorMark)'))",
                              deadline: Deadline(ms: 2000))
        }
        guard let document = try? connection.call("DOM.getDocument", ["depth": .number(0)], session: session, timeoutMs: deadline.remaining),
              let root = document["root"]?["nodeId"]?.numberValue,
              let marked = try? connection.call("DOM.querySelectorAll", ["nodeId": .number(root), "selector": .string("[\(Self.cursorMark)]")],
                                                session: session, timeoutMs: deadline.remaining) else { return [:] }
        var hits: [Int: Snapshot.CursorHit] = [:]
        for nodeId in marked["nodeIds"]?.arrayValue ?? [] where deadline.remaining > 100 {
            guard let described = try? connection.call("DOM.describeNode", ["nodeId": nodeId], session: session, timeoutMs: deadline.remaining),
                  let backend = described["node"]?["backendNodeId"]?.intValue,
                  let attributes = described["node"]?["attributes"]?.arrayValue?.compactMap(\.stringValue),
                  let at = attributes.firstIndex(of: Self.cursorMark), at + 1 < attributes.count,
                  let index = Int(attributes[at + 1]), found.indices.contains(index),
                  let reasons = found[index]["reasons"]?.arrayValue?.compactMap(\.stringValue) else { continue }
            hits[backend] = Snapshot.CursorHit(reasons: reasons, text: found[index]["text"]?.stringValue ?? "")
        }
        return hits
    }

    /// Each link's `href` as the page resolves it (`DOM.resolveNode` + `Runtime.callFunctionOn`);
    /// the remote objects are released together afterwards.
    func resolveLinkTargets(_ nodes: [Snapshot.Node], _ connection: CDPConnection, _ session: String,
                            deadline: Deadline) -> [Snapshot.Node] {
        let group = "openclaw-node-urls"
        defer { _ = try? connection.call("Runtime.releaseObjectGroup", ["objectGroup": .string(group)], session: session, timeoutMs: 2000) }
        return nodes.map { node in
            guard node.role.lowercased() == "link", let backend = node.backendNodeId, deadline.remaining > 200,
                  let resolved = try? connection.call("DOM.resolveNode", ["backendNodeId": .number(Double(backend)), "objectGroup": .string(group)],
                                                      session: session, timeoutMs: deadline.remaining),
                  let objectId = resolved["object"]?["objectId"]?.stringValue,
                  let answer = try? connection.call("Runtime.callFunctionOn", [
                      "objectId": .string(objectId), "returnByValue": .bool(true),
                      "functionDeclaration": .string("function() { return typeof this.href === 'string' ? this.href : (this.href && this.href.baseVal) || ''; }"),
                  ], session: session, timeoutMs: deadline.remaining),
                  let href = answer["result"]?["value"]?.stringValue else { return node }
            var node = node
            node.url = href
            return node
        }
    }

    func screenshot(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let fullPage = request.bool("fullPage") ?? false
        let ref = request.string("ref")
        let element = request.string("element")
        if fullPage, ref != nil || element != nil {
            throw BrowserError("fullPage is not supported for element screenshots", status: 400)
        }
        if element != nil { throw BrowserError(Self.unsupportedMessage("element screenshot"), status: 501) }
        let type = request.string("type") ?? "png"
        guard type == "png" || type == "jpeg" else { throw BrowserError("type must be png or jpeg", status: 400) }
        let (profile, tab, connection, session) = try page(request)
        try connection.call("Page.bringToFront", session: session, timeoutMs: request.deadline.remaining)
        var parameters: Object = ["format": .string(type)]
        if type == "jpeg" { parameters["quality"] = .number(85) }
        if fullPage { parameters["captureBeyondViewport"] = .bool(true) }
        if let ref {
            let box = try elementBox(profile, tab.targetId, connection, session, ref: ref, deadline: request.deadline)
            parameters["clip"] = .object(["x": .number(box.x), "y": .number(box.y), "width": .number(max(box.width, 1)),
                                          "height": .number(max(box.height, 1)), "scale": .number(1)])
        } else if fullPage {
            let metrics = try connection.call("Page.getLayoutMetrics", session: session, timeoutMs: request.deadline.remaining)
            let size = metrics["cssContentSize"] ?? metrics["contentSize"]
            if let width = size?["width"]?.numberValue, let height = size?["height"]?.numberValue {
                parameters["clip"] = .object(["x": .number(0), "y": .number(0), "width": .number(width), "height": .number(height),
                                              "scale": .number(1)])
            }
        }
        let shot = try connection.call("Page.captureScreenshot", parameters, session: session, timeoutMs: request.deadline.remaining)
        var data = shot["data"]?.stringValue
        var fileExtension = type == "jpeg" ? "jpg" : "png"
        if let first = data, let (width, height) = Self.imageSize(base64: first, clip: parameters["clip"]),
           Self.needsNormalizing(base64: first, width: width, height: height) {
            // Upstream's normalisation (screenshot.ts): at most 2000 px a side and 5 MiB, as JPEG
            // at shrinking qualities. Chromium re-renders at the smaller scale, so no image codec here.
            let scale = min(1, Self.maxScreenshotSide / max(width, height))
            let clip = parameters["clip"]?.objectValue ?? ["x": .number(0), "y": .number(0), "width": .number(width), "height": .number(height)]
            for quality in [85, 70, 55, 40] {
                var smaller = parameters
                smaller["format"] = .string("jpeg")
                smaller["quality"] = .number(Double(quality))
                smaller["clip"] = .object(clip.merging(["scale": .number((clip["scale"]?.numberValue ?? 1) * scale)]) { _, new in new })
                let again = try connection.call("Page.captureScreenshot", smaller, session: session, timeoutMs: request.deadline.remaining)
                data = again["data"]?.stringValue
                fileExtension = "jpg"
                if let data, Self.decodedSize(base64: data) <= Self.maxScreenshotBytes { break }
            }
        }
        let path = try saveMedia(data, extension: fileExtension)
        return .object(["ok": .bool(true), "path": .string(path), "targetId": .string(tab.targetId),
                        "url": .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))])
    }

    static let maxScreenshotSide = 2000.0
    static let maxScreenshotBytes = 5 * 1024 * 1024

    /// Pixel size of a capture: the clip it was taken with, else the PNG header.
    static func imageSize(base64: String, clip: JSONValue?) -> (Double, Double)? {
        if let width = clip?["width"]?.numberValue, let height = clip?["height"]?.numberValue {
            let scale = clip?["scale"]?.numberValue ?? 1
            return (width * scale, height * scale)
        }
        guard let head = Data(base64Encoded: String(base64.prefix(44))), head.count >= 24,
              head.starts(with: [0x89, 0x50, 0x4E, 0x47]) else { return nil }
        let bytes = Array(head)
        func be32(_ at: Int) -> Double { Double(UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])) }
        return (be32(16), be32(20))
    }

    static func decodedSize(base64: String) -> Int { base64.utf8.count / 4 * 3 }

    static func needsNormalizing(base64: String, width: Double, height: Double) -> Bool {
        max(width, height) > maxScreenshotSide || decodedSize(base64: base64) > maxScreenshotBytes
    }

    func pdf(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (profile, tab, connection, session) = try page(request)
        let printed = try connection.call("Page.printToPDF", ["printBackground": .bool(true)], session: session,
                                          timeoutMs: request.deadline.remaining)
        let path = try saveMedia(printed["data"]?.stringValue, extension: "pdf")
        return .object(["ok": .bool(true), "path": .string(path), "targetId": .string(tab.targetId),
                        "url": .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))])
    }

    /// Decodes CDP's base64 and writes it to a new file in the media directory.
    func saveMedia(_ base64: String?, extension fileExtension: String) throws(BrowserError) -> String {
        guard let base64, let data = Data(base64Encoded: base64) else { throw BrowserError("Chromium returned no image data") }
        if mkdir(mediaDir, 0o700) != 0, errno != EEXIST {
            throw BrowserError("cannot create \(mediaDir): \(String(cString: strerror(errno)))")
        }
        let name = (0..<16).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        let path = "\(mediaDir)/\(name).\(fileExtension)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw BrowserError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw BrowserError("cannot write \(path): short write") }
        return path
    }

    // MARK: Console (§5.7)

    static let levels = ["debug": 0, "log": 1, "info": 1, "warning": 2, "warn": 2, "error": 3]

    func consoleMessages(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, _, _) = try page(request)
        var messages = service.console.withLock { $0[tab.targetId] ?? [] }
        if let level = request.query["level"]?.lowercased(), let minimum = Self.levels[level] {
            messages = messages.filter { Self.levels[$0["type"]?.stringValue ?? "log"] ?? 1 >= minimum }
        }
        return .object(["ok": .bool(true), "messages": .array(messages), "targetId": .string(tab.targetId)])
    }

    /// `GET /errors`: uncaught page errors since the tab was first seen; `clear` empties the list.
    func pageErrors(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, _, _) = try page(request)
        let clear = request.queryBool("clear") ?? false
        let errors = service.pageErrors.withLock { buffers in
            defer { if clear { buffers[tab.targetId] = [] } }
            return buffers[tab.targetId] ?? []
        }
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId), "errors": .array(errors)])
    }

    /// `GET /requests`: the tab's requests (`filter`: URL substring; `clear` empties the list).
    func networkRequests(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, _, _) = try page(request)
        let clear = request.queryBool("clear") ?? false
        var list = service.requests.withLock { logs in
            defer { if clear { logs[tab.targetId] = nil } }
            return logs[tab.targetId]?.list ?? []
        }
        if let filter = request.query["filter"], !filter.isEmpty {
            list = list.filter { $0["url"]?.stringValue?.contains(filter) ?? false }
        }
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId), "requests": .array(list)])
    }

    /// `POST /hooks/dialog`: how to answer the tab's next alert, confirm or prompt (within
    /// `timeoutMs`, default 2 minutes); the answer is given from the dialog's CDP event.
    func armDialog(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let accept = request.bool("accept") else { throw BrowserError("accept is required", status: 400) }
        let (_, tab, _, _) = try page(request)
        let window = UInt64(min(max(request.int("timeoutMs") ?? 120_000, 1), 600_000))
        let answer = BrowserService.DialogAnswer(accept: accept, promptText: request.rawString("promptText"),
                                                 untilMs: NodeSupport.Clock.monotonicMs() + window)
        service.dialogAnswers.withLock { $0[tab.targetId] = answer }
        return .object(["ok": .bool(true)])
    }

    /// `POST /highlight`: outlines the ref's element for about two seconds.
    func highlight(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let ref = request.string("ref") else { throw BrowserError("ref is required", status: 400) }
        let (profile, tab, connection, session) = try page(request)
        let node = try backendNode(profile, tab.targetId, ref: ref)
        let object = try objectId(connection, session, node: node, deadline: request.deadline)
        try connection.call("Runtime.callFunctionOn", [
            "objectId": .string(object),
            "functionDeclaration": .string("""
                function() { const el = this; const before = el.style.outline;
                  el.style.outline = "3px solid #FF4500"; setTimeout(() => { el.style.outline = before; }, 2000); }
                """),
        ], session: session, timeoutMs: request.deadline.remaining)
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId)])
    }

    // MARK: Helpers over CDP

    /// `Runtime.evaluate` by value, awaiting promises; page exceptions become errors.
    func evaluate(_ connection: CDPConnection, _ session: String, _ expression: String, deadline: Deadline) throws(BrowserError) -> JSONValue {
        let result = try connection.call("Runtime.evaluate", ["expression": .string(expression), "returnByValue": .bool(true),
                                                               "awaitPromise": .bool(true)],
                                         session: session, timeoutMs: max(deadline.remaining, 1))
        if let exception = result["exceptionDetails"] { throw BrowserError(Self.exceptionText(exception)) }
        return result["result"]?["value"] ?? .null
    }

    static func exceptionText(_ details: JSONValue) -> String {
        details["exception"]?["description"]?.stringValue ?? details["text"]?.stringValue ?? "evaluation failed"
    }

    /// The ref's DOM node, or an error telling the caller to take a new snapshot.
    func backendNode(_ profile: BrowserService.Profile, _ targetId: String, ref raw: String) throws(BrowserError) -> Int {
        let ref = Snapshot.normalizeRef(raw)
        guard let entry = profile.refs[targetId]?[ref] else {
            throw BrowserError("Unknown ref \"\(ref)\". Run a new snapshot and use a ref from that snapshot.", status: 400)
        }
        guard let node = entry.backendNodeId else {
            throw BrowserError("ref \"\(ref)\" has no DOM node; take a new snapshot", status: 400)
        }
        return node
    }

    /// The ref's remote object id (for `Runtime.callFunctionOn`).
    func objectId(_ connection: CDPConnection, _ session: String, node: Int, deadline: Deadline) throws(BrowserError) -> String {
        let resolved: Object
        do {
            resolved = try connection.call("DOM.resolveNode", ["backendNodeId": .number(Double(node))], session: session,
                                           timeoutMs: deadline.remaining)
        } catch {
            throw BrowserError("element is no longer in the page; take a new snapshot (\(error.message))", status: 400)
        }
        guard let id = resolved["object"]?["objectId"]?.stringValue else { throw BrowserError("element has no remote object") }
        return id
    }

    struct Box {
        var x: Double
        var y: Double
        var width: Double
        var height: Double
        var center: (Double, Double) { (x + width / 2, y + height / 2) }
    }

    /// Scrolls the ref into view and returns its box in viewport CSS pixels.
    func elementBox(_ profile: BrowserService.Profile, _ targetId: String, _ connection: CDPConnection, _ session: String,
                    ref: String, deadline: Deadline) throws(BrowserError) -> Box {
        let node = try backendNode(profile, targetId, ref: ref)
        let nodeParameter: Object = ["backendNodeId": .number(Double(node))]
        do {
            try connection.call("DOM.scrollIntoViewIfNeeded", nodeParameter, session: session, timeoutMs: deadline.remaining)
        } catch {
            throw BrowserError("element \(ref) cannot be scrolled into view; take a new snapshot (\(error.message))", status: 400)
        }
        let quads = try connection.call("DOM.getContentQuads", nodeParameter, session: session, timeoutMs: deadline.remaining)
        guard let quad = quads["quads"]?.arrayValue?.first?.arrayValue?.compactMap(\.numberValue), quad.count == 8 else {
            throw BrowserError("element \(ref) is not visible", status: 400)
        }
        let xs = stride(from: 0, to: 8, by: 2).map { quad[$0] }, ys = stride(from: 1, to: 8, by: 2).map { quad[$0] }
        let minX = xs.min()!, minY = ys.min()!
        return Box(x: minX, y: minY, width: xs.max()! - minX, height: ys.max()! - minY)
    }
}
