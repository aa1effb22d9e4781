import OpenClawIPC

/// Tabs and navigation (`browser.md` §5.2, §5.3): list, open, focus, close and act on tabs,
/// navigate one; and the tab a page route acts on.
extension BrowserRoutes {
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
    func targetPage(_ request: RouteRequest) throws(BrowserError) -> (BrowserService.Profile, BrowserService.Tab, PageSession) {
        let profile = try selectedProfile(request)
        _ = try service.ensureRunning(profile, deadline: request.deadline)
        let tab = try service.resolveTab(profile, request.targetId, deadline: request.deadline)
        let (connection, session) = try service.session(profile, tab.targetId, deadline: request.deadline)
        return (profile, tab, PageSession(connection: connection, session: session))
    }

    func navigate(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let url = request.string("url") else { throw BrowserError("url is required", status: 400) }
        let timeout = min(max(request.int("timeoutMs") ?? 20000, 1000), 120_000)
        let (profile, tab, page) = try targetPage(request)
        let deadline = Deadline(ms: min(timeout, request.deadline.remaining))
        let result = try page.call("Page.navigate", ["url": .string(url)], timeoutMs: deadline.remaining)
        if let error = result["errorText"]?.stringValue, !error.isEmpty {
            throw BrowserError("navigation to \(url) failed: \(error)", status: 500)
        }
        try page.waitForLoad(deadline: deadline)
        profile.refs[tab.targetId] = nil
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId),
                        "url": .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))])
    }
}
