import Dispatch
import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC
import Synchronization

/// The browser-control runtime of this worker: profiles, their Chromium, tabs and per-tab
/// state (refs of the last snapshot, console messages).
///
/// Routes run one at a time on the worker's request queue, so the profile state needs no
/// lock; only the console buffers are also written by the CDP reader thread.
final class BrowserService {
    typealias Object = [String: JSONValue]

    /// What a snapshot ref points at.
    struct RefEntry {
        var role: String
        var name: String
        var nth: Int?
        var backendNodeId: Int?
    }

    final class Profile {
        let config: BrowserConfiguration.Profile
        let isImplicit: Bool
        var chromium: ChromiumProcess?
        var connection: CDPConnection?
        /// targetId → flattened CDP session.
        var sessions: [String: String] = [:]
        var lastTargetId: String?
        /// §4.4 [newer]: targetId → `t1`, `t2`, … (numbers never reused in this runtime).
        var tabHandles: [String: String] = [:]
        var nextTabNumber = 1
        /// targetId → label (unique per profile).
        var labels: [String: String] = [:]
        var refs: [String: [String: RefEntry]] = [:]
        /// The one-shot headless choice of the last `POST /start?headless=`.
        var headlessOverride: Bool?
        var launchedHeadless: Bool?

        init(config: BrowserConfiguration.Profile, isImplicit: Bool) {
            self.config = config
            self.isImplicit = isImplicit
        }

        var cdpHost: String { config.cdpUrl.flatMap { CDPEndpoint(httpURL: $0)?.host } ?? "127.0.0.1" }
        var cdpPort: Int? { config.cdpUrl.flatMap { CDPEndpoint(httpURL: $0)?.port } ?? config.cdpPort }
        var cdpUrl: String? { config.cdpUrl ?? cdpPort.map { "http://127.0.0.1:\($0)" } }
        var isRemote: Bool { config.cdpUrl != nil && !["127.0.0.1", "localhost"].contains(cdpHost) }
    }

    let configuration: BrowserConfiguration
    private(set) var profiles: [Profile]
    let console = Mutex<[String: [JSONValue]]>([:])
    /// How to answer the next JavaScript dialog of a tab (`POST /hooks/dialog`), until `untilMs`
    /// (monotonic). A dialog nobody armed for is dismissed, as Playwright does, so that it
    /// never blocks the tab.
    let dialogAnswers = Mutex<[String: DialogAnswer]>([:])

    struct DialogAnswer: Sendable {
        var accept: Bool
        var promptText: String?
        var untilMs: UInt64
    }

    /// The files for a tab's next file chooser (`POST /hooks/file-chooser` without an input),
    /// until `untilMs` (monotonic); Chromium asks through `Page.fileChooserOpened`.
    let fileChooserArms = Mutex<[String: FileChooserArm]>([:])

    struct FileChooserArm: Sendable {
        var files: [String]
        var untilMs: UInt64
    }

    /// Uncaught page errors per tab (`GET /errors`), newest last.
    let pageErrors = Mutex<[String: [JSONValue]]>([:])
    /// Network requests per tab (`GET /requests`), by CDP request id, in the order first seen.
    let requests = Mutex<[String: RequestLog]>([:])

    /// A tab's requests: entries in arrival order, indexed by CDP request id.
    struct RequestLog {
        var order: [String] = []
        var entries: [String: Object] = [:]

        mutating func update(_ id: String, _ change: (inout Object) -> Void) {
            guard var entry = entries[id] else { return }
            change(&entry)
            entries[id] = entry
        }

        mutating func add(_ id: String, _ entry: Object, limit: Int) {
            if entries[id] == nil { order.append(id) }
            entries[id] = entry
            while order.count > limit { entries[order.removeFirst()] = nil }
        }

        var list: [JSONValue] { order.compactMap { entries[$0].map(JSONValue.object) } }
    }
    /// sessionId → targetId, written on the request queue, read by the CDP reader.
    let sessionTargets = Mutex<[String: String]>([:])

    init(configuration: BrowserConfiguration) {
        self.configuration = configuration
        var profiles = configuration.profiles.map { Profile(config: $0, isImplicit: false) }
        if !profiles.contains(where: { $0.config.name == configuration.defaultProfile }) {
            let used = Set(profiles.compactMap(\.config.cdpPort))
            let port = (BrowserDefaults.cdpPortRange).first { !used.contains($0) } ?? BrowserDefaults.cdpPortRange.lowerBound
            profiles.insert(Profile(config: .init(name: configuration.defaultProfile, cdpPort: port, cdpUrl: nil, attachOnly: false,
                                                  color: BrowserDefaults.color, headless: nil, executablePath: nil),
                                    isImplicit: true), at: 0)
        }
        self.profiles = profiles
    }

    func profile(named name: String) throws(BrowserError) -> Profile {
        if let profile = profiles.first(where: { $0.config.name == name }) { return profile }
        let names = profiles.map(\.config.name)
        throw BrowserError("Profile \"\(name)\" not found. Available profiles: \(names.isEmpty ? "(none)" : names.joined(separator: ", "))",
                           status: 404)
    }

    // MARK: Lifecycle

    /// Whether the profile's CDP HTTP endpoint answers (`cdpHttp`).
    func cdpHTTPReachable(_ profile: Profile, timeoutMs: Int) -> Bool {
        guard let port = profile.cdpPort else { return false }
        return (try? LoopbackHTTP.get(host: profile.cdpHost, port: port, path: "/json/version", timeoutMs: timeoutMs))?.status == 200
    }

    /// Whether we hold a working browser WebSocket (`cdpReady`).
    func cdpReady(_ profile: Profile) -> Bool {
        guard let connection = profile.connection, !connection.isClosed else { return false }
        return (try? connection.call("Browser.getVersion", timeoutMs: 600)) != nil
    }

    func headless(for profile: Profile) throws(BrowserError) -> (Bool, source: String) {
        if let override = profile.headlessOverride { return (override, "request") }
        if let value = profile.config.headless { return (value, "profile") }
        if let value = configuration.headless { return (value, "config") }
        if let value = getenv("OPENCLAW_BROWSER_HEADLESS").map({ String(cString: $0) }), value == "1" || value == "0" {
            return (value == "1", "env")
        }
        return configuration.displayPresent ? (false, "default") : (true, "linux-display-fallback")
    }

    /// Connects to the profile's browser, launching it first when it is ours to launch (§4.1).
    func ensureRunning(_ profile: Profile, deadline: Deadline) throws(BrowserError) -> CDPConnection {
        if let connection = profile.connection, !connection.isClosed { return connection }
        profile.connection = nil
        profile.sessions = [:]
        guard configuration.enabled else { throw BrowserError("browser control disabled", status: 503) }
        guard let port = profile.cdpPort else { throw BrowserError("Profile must set cdpPort or cdpUrl", status: 400) }
        if !cdpHTTPReachable(profile, timeoutMs: 300) {
            if profile.config.attachOnly {
                throw BrowserError("Browser attachOnly is enabled and CDP websocket for profile \"\(profile.config.name)\" is not reachable.", status: 409)
            }
            if profile.config.cdpUrl != nil, profile.isRemote {
                throw BrowserError("Remote CDP websocket for profile \"\(profile.config.name)\" is not reachable.", status: 409)
            }
            try launch(profile, port: port, deadline: deadline)
        }
        let version = try LoopbackHTTP.get(host: profile.cdpHost, port: port, path: "/json/version", timeoutMs: min(deadline.remaining, 3000))
        guard case let .object(info)? = try? JSONText.decode(JSONValue.self, fromBytes: version.body),
              let url = info["webSocketDebuggerUrl"]?.stringValue else {
            throw BrowserError("CDP /json/version on port \(port) has no webSocketDebuggerUrl", status: 500)
        }
        let connection = try CDPConnection(url: url, timeoutMs: min(max(deadline.remaining, 1), 8000))
        connection.onEvent = { [weak self, weak connection] method, params, session in
            self?.event(method, params, session: session, connection: connection)
        }
        profile.connection = connection
        return connection
    }

    private func launch(_ profile: Profile, port: Int, deadline: Deadline) throws(BrowserError) {
        guard let executable = profile.config.executablePath ?? configuration.executablePath else {
            throw BrowserError("No supported browser found (Chrome/Brave/Edge/Chromium on macOS, Linux, or Windows).", status: 500)
        }
        let (headless, source) = try headless(for: profile)
        if !headless, !configuration.displayPresent {
            throw BrowserError("profile \"\(profile.config.name)\" is headed but this machine has no display", status: 409,
                               extra: ["reason": .string("no_display_for_headed_profile"),
                                       "details": .object(["profile": .string(profile.config.name), "requestedHeadless": .bool(false),
                                                           "headlessSource": .string(source), "displayPresent": .bool(false)])])
        }
        profile.headlessOverride = nil
        profile.chromium?.stop()
        profile.chromium = try ChromiumProcess.launch(
            executable: executable, profile: profile.config.name, port: port, dataDir: configuration.dataDir,
            headless: headless, noSandbox: configuration.noSandbox, extraArgs: configuration.extraArgs, deadline: deadline
        )
        profile.launchedHeadless = headless
    }

    /// Stops a Chromium we launched; for an attached browser only drops the connection.
    func stop(_ profile: Profile) -> Bool {
        profile.connection?.close()
        profile.connection = nil
        profile.sessions = [:]
        profile.refs = [:]
        guard let chromium = profile.chromium else { return false }
        chromium.stop()
        profile.chromium = nil
        return true
    }

    func stopAll() {
        for profile in profiles { _ = stop(profile) }
    }

    // MARK: Tabs

    struct Tab {
        var targetId: String
        var title: String
        var url: String
        var wsUrl: String?
        var type: String
        var tabId: String?
        var label: String?

        var json: JSONValue {
            var object: Object = ["targetId": .string(targetId), "title": .string(title), "url": .string(url), "type": .string(type)]
            if let wsUrl { object["wsUrl"] = .string(wsUrl) }
            if let tabId { object["tabId"] = .string(tabId) }
            if let label { object["label"] = .string(label) }
            if let suggested = label ?? tabId { object["suggestedTargetId"] = .string(suggested) }
            return .object(object)
        }
    }

    /// `^[A-Za-z0-9_.:-]{1,64}$`
    static func isValidLabel(_ label: String) -> Bool {
        (1...64).contains(label.utf8.count)
            && label.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
            }
    }

    /// Refuses a malformed label, one that would shadow a `tN` handle or a tab's id, or one
    /// another tab of the profile holds.
    func checkLabel(_ profile: Profile, _ label: String, for targetId: String?) throws(BrowserError) {
        guard Self.isValidLabel(label) else { throw BrowserError("label must match ^[A-Za-z0-9_.:-]{1,64}$", status: 400) }
        let looksLikeHandle = label.count > 1 && label.first == "t" && label.dropFirst().allSatisfy { $0.isASCII && $0.isNumber }
        if looksLikeHandle || profile.tabHandles[label] != nil {
            throw BrowserError("label \"\(label)\" would shadow a tab handle or id", status: 400)
        }
        if let holder = profile.labels.first(where: { $0.value == label && $0.key != targetId }) {
            throw BrowserError("label \"\(label)\" is already used by tab \(profile.tabHandles[holder.key] ?? holder.key)", status: 409)
        }
    }

    func setLabel(_ profile: Profile, _ targetId: String, _ label: String) throws(BrowserError) {
        try checkLabel(profile, label, for: targetId)
        profile.labels[targetId] = label
    }

    static let hiddenSchemes = ["chrome://", "chrome-untrusted://", "devtools://", "edge://", "brave://", "vivaldi://", "opera://"]

    /// `/json/list` as tabs (§4.4): pages only, internal URLs dropped.
    func tabs(_ profile: Profile, timeoutMs: Int) throws(BrowserError) -> [Tab] {
        guard let port = profile.cdpPort else { return [] }
        let response = try LoopbackHTTP.get(host: profile.cdpHost, port: port, path: "/json/list", timeoutMs: timeoutMs)
        guard response.status == 200, case let .array(entries)? = try? JSONText.decode(JSONValue.self, fromBytes: response.body) else {
            throw BrowserError("CDP /json/list failed (HTTP \(response.status))")
        }
        let tabs = entries.compactMap { entry -> Tab? in
            guard let id = entry["id"]?.stringValue, !id.isEmpty else { return nil }
            let type = entry["type"]?.stringValue ?? "page"
            let url = entry["url"]?.stringValue ?? ""
            guard type == "page", !Self.hiddenSchemes.contains(where: { url.hasPrefix($0) }) else { return nil }
            return Tab(targetId: id, title: entry["title"]?.stringValue ?? "", url: url,
                       wsUrl: entry["webSocketDebuggerUrl"]?.stringValue, type: type)
        }
        return assignHandles(profile, tabs)
    }

    /// Hands out `tN` to tabs seen for the first time (in listing order) and forgets the
    /// handles and labels of tabs that are gone.
    func assignHandles(_ profile: Profile, _ tabs: [Tab]) -> [Tab] {
        let live = Set(tabs.map(\.targetId))
        profile.tabHandles = profile.tabHandles.filter { live.contains($0.key) }
        profile.labels = profile.labels.filter { live.contains($0.key) }
        return tabs.map { tab in
            var tab = tab
            if profile.tabHandles[tab.targetId] == nil {
                profile.tabHandles[tab.targetId] = "t\(profile.nextTabNumber)"
                profile.nextTabNumber += 1
            }
            tab.tabId = profile.tabHandles[tab.targetId]
            tab.label = profile.labels[tab.targetId]
            return tab
        }
    }

    /// Resolves `targetId` (exact id, [newer] a `tN` handle or a label, else a unique
    /// case-insensitive prefix of the id), or the default tab.
    func resolveTab(_ profile: Profile, _ requested: String?, deadline: Deadline) throws(BrowserError) -> Tab {
        var tabs = try self.tabs(profile, timeoutMs: min(deadline.remaining, 3000))
        if let requested, !requested.isEmpty {
            // An id first, then a handle, then a label.
            if let exact = tabs.first(where: { $0.targetId == requested }) ?? tabs.first(where: { $0.tabId == requested })
                ?? tabs.first(where: { $0.label == requested }) {
                profile.lastTargetId = exact.targetId
                return exact
            }
            let matches = tabs.filter { $0.targetId.lowercased().hasPrefix(requested.lowercased()) }
            if matches.count > 1 { throw BrowserError("ambiguous target id prefix", status: 409) }
            guard let match = matches.first else { throw BrowserError("tab not found", status: 404) }
            profile.lastTargetId = match.targetId
            return match
        }
        if tabs.isEmpty {
            _ = try openTab(profile, url: "about:blank", deadline: deadline)
            tabs = try self.tabs(profile, timeoutMs: min(deadline.remaining, 3000))
        }
        let chosen = tabs.first { $0.targetId == profile.lastTargetId } ?? tabs.first { $0.type == "page" } ?? tabs.first
        guard let chosen else { throw BrowserError("tab not found", status: 404) }
        profile.lastTargetId = chosen.targetId
        return chosen
    }

    func openTab(_ profile: Profile, url: String, deadline: Deadline) throws(BrowserError) -> Tab {
        let connection = try ensureRunning(profile, deadline: deadline)
        let created = try connection.call("Target.createTarget", ["url": .string(url)], timeoutMs: deadline.remaining)
        guard let id = created["targetId"]?.stringValue else { throw BrowserError("Target.createTarget returned no targetId") }
        profile.lastTargetId = id
        for _ in 0..<20 {
            if let tab = try tabs(profile, timeoutMs: min(deadline.remaining, 3000)).first(where: { $0.targetId == id }) { return tab }
            usleep(50_000)
        }
        if profile.tabHandles[id] == nil {
            profile.tabHandles[id] = "t\(profile.nextTabNumber)"
            profile.nextTabNumber += 1
        }
        return Tab(targetId: id, title: "", url: url, wsUrl: "ws://127.0.0.1:\(profile.cdpPort ?? 0)/devtools/page/\(id)", type: "page",
                   tabId: profile.tabHandles[id])
    }

    func closeTab(_ profile: Profile, _ targetId: String, deadline: Deadline) throws(BrowserError) {
        guard let connection = profile.connection, !connection.isClosed else { throw BrowserError("browser not running", status: 409) }
        try connection.call("Target.closeTarget", ["targetId": .string(targetId)], timeoutMs: deadline.remaining)
        forget(profile, targetId)
    }

    func forget(_ profile: Profile, _ targetId: String) {
        if let session = profile.sessions.removeValue(forKey: targetId) {
            _ = sessionTargets.withLock { $0.removeValue(forKey: session) }
        }
        profile.refs[targetId] = nil
        profile.labels[targetId] = nil
        if profile.lastTargetId == targetId { profile.lastTargetId = nil }
        // A closed tab's buffers go with it (the next tab gets a new target id).
        console.withLock { $0[targetId] = nil }
        pageErrors.withLock { $0[targetId] = nil }
        requests.withLock { $0[targetId] = nil }
        dialogAnswers.withLock { $0[targetId] = nil }
    }

    /// The flattened CDP session of a tab (attached once; Page, Runtime and Network enabled).
    func session(_ profile: Profile, _ targetId: String, deadline: Deadline) throws(BrowserError) -> (CDPConnection, String) {
        let connection = try ensureRunning(profile, deadline: deadline)
        if let session = profile.sessions[targetId] { return (connection, session) }
        let attached = try connection.call("Target.attachToTarget", ["targetId": .string(targetId), "flatten": .bool(true)],
                                           timeoutMs: deadline.remaining)
        guard let session = attached["sessionId"]?.stringValue else { throw BrowserError("Target.attachToTarget returned no sessionId") }
        profile.sessions[targetId] = session
        sessionTargets.withLock { $0[session] = targetId }
        for method in ["Page.enable", "Runtime.enable", "Network.enable"] {
            try connection.call(method, session: session, timeoutMs: deadline.remaining)
        }
        return (connection, session)
    }

    /// The tab's current URL (after navigation Chromium reports it in the target info).
    func currentURL(_ profile: Profile, _ targetId: String, deadline: Deadline) -> String {
        guard let connection = profile.connection,
              let info = try? connection.call("Target.getTargetInfo", ["targetId": .string(targetId)], timeoutMs: min(deadline.remaining, 2000)),
              let url = info["targetInfo"]?["url"]?.stringValue else { return "" }
        return url
    }

    // MARK: Events

    static let consoleLimit = 500

    private func event(_ method: String, _ params: Object, session: String?, connection: CDPConnection?) {
        switch method {
        case "Runtime.consoleAPICalled":
            guard let session, let target = sessionTargets.withLock({ $0[session] }) else { return }
            let text = (params["args"]?.arrayValue ?? []).map(Self.describe).joined(separator: " ")
            var message: Object = [
                "type": .string(params["type"]?.stringValue ?? "log"), "text": .string(text),
                "timestamp": .string(Clock.isoTimestamp(ms: params["timestamp"]?.numberValue ?? 0)),
            ]
            if let frame = params["stackTrace"]?["callFrames"]?.arrayValue?.first {
                message["location"] = .object(["url": frame["url"] ?? .string(""), "lineNumber": frame["lineNumber"] ?? .number(0),
                                               "columnNumber": frame["columnNumber"] ?? .number(0)])
            }
            console.withLock { buffers in
                buffers[target, default: []].append(.object(message))
                if buffers[target]!.count > Self.consoleLimit { buffers[target]!.removeFirst() }
            }
        case "Runtime.exceptionThrown":
            guard let session, let target = sessionTargets.withLock({ $0[session] }), let details = params["exceptionDetails"] else { return }
            let entry = Self.pageError(details, timestampMs: params["timestamp"]?.numberValue ?? Clock.wallMs())
            pageErrors.withLock { buffers in
                buffers[target, default: []].append(entry)
                if buffers[target]!.count > Self.consoleLimit { buffers[target]!.removeFirst() }
            }
        case "Network.requestWillBeSent", "Network.responseReceived", "Network.loadingFailed":
            guard let session, let target = sessionTargets.withLock({ $0[session] }), let id = params["requestId"]?.stringValue else { return }
            requests.withLock { logs in
                switch method {
                case "Network.requestWillBeSent":
                    var entry: Object = [
                        "id": .string(id), "timestamp": .string(Clock.isoTimestamp(ms: (params["wallTime"]?.numberValue ?? 0) * 1000)),
                        "method": params["request"]?["method"] ?? .string("GET"), "url": params["request"]?["url"] ?? .string(""),
                    ]
                    if let type = params["type"]?.stringValue { entry["resourceType"] = .string(type.lowercased()) }
                    logs[target, default: RequestLog()].add(id, entry, limit: Self.consoleLimit)
                case "Network.responseReceived":
                    let status = params["response"]?["status"]?.numberValue ?? 0
                    logs[target]?.update(id) {
                        $0["status"] = .number(status)
                        $0["ok"] = .bool((200...299).contains(status.saturatingInt))
                    }
                default:
                    logs[target]?.update(id) {
                        $0["failureText"] = params["errorText"] ?? .string("failed")
                        $0["ok"] = .bool(false)
                    }
                }
            }
        case "Page.javascriptDialogOpening":
            guard let session, let connection else { return }
            let target = sessionTargets.withLock { $0[session] } ?? ""
            let armed = dialogAnswers.withLock { answers in answers.removeValue(forKey: target) }
            let answer = armed.flatMap { $0.untilMs >= Clock.monotonicMs() ? $0 : nil }
            var params: Object = ["accept": .bool(answer?.accept ?? false)]
            if let text = answer?.promptText { params["promptText"] = .string(text) }
            connection.post("Page.handleJavaScriptDialog", params, session: session)
        case "Page.fileChooserOpened":
            guard let session, let connection else { return }
            let target = sessionTargets.withLock { $0[session] } ?? ""
            let armed = fileChooserArms.withLock { arms in arms.removeValue(forKey: target) }
            // One chooser per arm: the next one is the page's own again.
            connection.post("Page.setInterceptFileChooserDialog", ["enabled": .bool(false)], session: session)
            guard let arm = armed, arm.untilMs >= Clock.monotonicMs(), let node = params["backendNodeId"]?.intValue else { return }
            connection.post("DOM.setFileInputFiles", ["files": .array(arm.files.map(JSONValue.string)), "backendNodeId": .number(Double(node))],
                            session: session)
        case "Page.frameNavigated":
            // Files armed for one page are never handed to the next one the tab shows.
            guard let session, params["frame"]?["parentId"] == nil, let target = sessionTargets.withLock({ $0[session] }) else { return }
            _ = fileChooserArms.withLock { arms in arms.removeValue(forKey: target) }
        case "Target.detachedFromTarget":
            if let session = params["sessionId"]?.stringValue { _ = sessionTargets.withLock { $0.removeValue(forKey: session) } }
        default:
            break
        }
    }

    /// An uncaught exception as Playwright's `pageerror` reports it: `message`, and for Error
    /// objects their `name` and `stack` (CDP's description of an Error is its stack).
    static func pageError(_ details: JSONValue, timestampMs: Double) -> JSONValue {
        var entry: Object = ["timestamp": .string(Clock.isoTimestamp(ms: timestampMs))]
        let exception = details["exception"]
        if exception?["subtype"]?.stringValue == "error", let stack = exception?["description"]?.stringValue {
            let name = exception?["className"]?.stringValue ?? "Error"
            let head = stack.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? stack
            entry["name"] = .string(name)
            entry["message"] = .string(head.hasPrefix(name + ": ") ? String(head.dropFirst(name.count + 2)) : head == name ? "" : head)
            entry["stack"] = .string(stack)
        } else if let exception {
            entry["message"] = .string(describe(exception))
        } else {
            entry["message"] = details["text"] ?? .string("")
        }
        return .object(entry)
    }

    /// A console argument as text (strings verbatim, others by value or description).
    static func describe(_ remote: JSONValue) -> String {
        if let value = remote["value"] {
            if case let .string(text) = value { return text }
            return (try? JSONText.encode(value)) ?? ""
        }
        return remote["description"]?.stringValue ?? remote["unserializableValue"]?.stringValue ?? remote["type"]?.stringValue ?? ""
    }
}

/// Upstream constants (`constants.ts`).
enum BrowserDefaults {
    static let color = "#FF4500"
    static let cdpPortRange = 18800...18899
}
