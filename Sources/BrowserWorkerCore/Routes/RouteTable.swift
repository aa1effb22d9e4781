import FoundationEssentials
import NodeSupport
import OpenClawIPC

/// The browser-control routes (`browser.md` §9 tier 1, PDF, and the §5.8 state routes),
/// answering like upstream's dispatcher: 404 `Not Found` for a route not in `routes`, 501 for
/// the Playwright-only ones.
///
/// Every route is one row of `routes`; each family of routes is an extension in its own file
/// (`ProfileRoutes.swift`, `TabRoutes.swift`, `SnapshotRoute.swift`, `CaptureRoutes.swift`,
/// `DiagnosticsRoutes.swift`, `ActRoutes.swift`, `StateRoutes.swift`). Routes run one at a
/// time on the worker's route queue.
final class BrowserRoutes {
    typealias Object = [String: JSONValue]

    let service: BrowserService
    let mediaDir: String

    init(service: BrowserService) {
        self.service = service
        mediaDir = "\(service.configuration.dataDir)/media"
    }
}

/// The file a route's handler lives in; for a Playwright-only route, the feature its 501 names.
enum RouteFamily: Equatable {
    case profiles, tabs, snapshot, capture, diagnostics, act, state
    case unsupported(String)
}

/// One row of the route table: the method, the path pattern and what answers it.
struct RouteEntry {
    /// Answers the route with status 200 and its body, or fails with the error's status and body.
    typealias Handler = (BrowserRoutes, inout RouteRequest) throws(BrowserError) -> JSONValue

    let method: String
    /// `/`-separated segments; a `:name` segment matches one percent-decoded path segment.
    let pattern: String
    let family: RouteFamily
    let handler: Handler

    init(_ method: String, _ pattern: String, _ family: RouteFamily, _ handler: @escaping Handler) {
        self.method = method
        self.pattern = pattern
        self.family = family
        self.handler = handler
    }

    /// A route upstream serves through Playwright that this port does not implement (§9): it
    /// answers 501 with `BrowserRoutes.unsupportedMessage(feature)`.
    static func unsupported(_ method: String, _ pattern: String, feature: String) -> RouteEntry {
        RouteEntry(method, pattern, .unsupported(feature)) { _, _ throws(BrowserError) in
            throw BrowserError(BrowserRoutes.unsupportedMessage(feature), status: 501)
        }
    }
}

extension BrowserRoutes {
    /// Every route the worker answers, in matching order: the first row with the request's
    /// method whose pattern matches the path answers. There is no 405: a known path under
    /// another method is `Not Found`.
    static let routes: [RouteEntry] = [
        // Status and lifecycle (§5.1): ProfileRoutes.swift
        RouteEntry("GET", "/", .profiles) { routes, request throws(BrowserError) in try routes.status(&request) },
        RouteEntry("POST", "/start", .profiles) { routes, request throws(BrowserError) in try routes.start(&request) },
        RouteEntry("POST", "/stop", .profiles) { routes, request throws(BrowserError) in try routes.stop(&request) },
        RouteEntry("GET", "/profiles", .profiles) { routes, request throws(BrowserError) in try routes.listProfiles(&request) },
        // Tabs and navigation (§5.2, §5.3): TabRoutes.swift
        RouteEntry("GET", "/tabs", .tabs) { routes, request throws(BrowserError) in try routes.listTabs(&request) },
        RouteEntry("POST", "/tabs/open", .tabs) { routes, request throws(BrowserError) in try routes.openTab(&request) },
        RouteEntry("POST", "/tabs/focus", .tabs) { routes, request throws(BrowserError) in try routes.focusTab(&request) },
        RouteEntry("DELETE", "/tabs/:targetId", .tabs) { routes, request throws(BrowserError) in try routes.deleteTab(&request) },
        RouteEntry("POST", "/tabs/action", .tabs) { routes, request throws(BrowserError) in try routes.tabAction(&request) },
        RouteEntry("POST", "/navigate", .tabs) { routes, request throws(BrowserError) in try routes.navigate(&request) },
        // Snapshot (§5.3, §6): SnapshotRoute.swift
        RouteEntry("GET", "/snapshot", .snapshot) { routes, request throws(BrowserError) in try routes.snapshot(&request) },
        // Screenshot and PDF (§5.3): CaptureRoutes.swift
        RouteEntry("POST", "/screenshot", .capture) { routes, request throws(BrowserError) in try routes.screenshot(&request) },
        RouteEntry("POST", "/pdf", .capture) { routes, request throws(BrowserError) in try routes.pdf(&request) },
        // Console, page errors, requests (§5.7): DiagnosticsRoutes.swift
        RouteEntry("GET", "/console", .diagnostics) { routes, request throws(BrowserError) in try routes.consoleMessages(&request) },
        RouteEntry("GET", "/errors", .diagnostics) { routes, request throws(BrowserError) in try routes.pageErrors(&request) },
        RouteEntry("GET", "/requests", .diagnostics) { routes, request throws(BrowserError) in try routes.networkRequests(&request) },
        // Highlight, dialogs, act (§5.4, §5.5, §7): ActRoutes.swift
        RouteEntry("POST", "/highlight", .act) { routes, request throws(BrowserError) in try routes.highlight(&request) },
        RouteEntry("POST", "/hooks/dialog", .act) { routes, request throws(BrowserError) in try routes.armDialog(&request) },
        RouteEntry("POST", "/hooks/file-chooser", .act) { routes, request throws(BrowserError) in try routes.fileChooser(&request) },
        RouteEntry("POST", "/act", .act) { routes, request throws(BrowserError) in try routes.act(&request) },
        // Cookies, storage, emulation (§5.8): StateRoutes.swift
        RouteEntry("GET", "/cookies", .state) { routes, request throws(BrowserError) in try routes.listCookies(&request) },
        RouteEntry("POST", "/cookies/set", .state) { routes, request throws(BrowserError) in try routes.setCookie(&request) },
        RouteEntry("POST", "/cookies/clear", .state) { routes, request throws(BrowserError) in try routes.clearCookies(&request) },
        RouteEntry("GET", "/storage/:kind", .state) { routes, request throws(BrowserError) in try routes.storageValues(&request) },
        RouteEntry("POST", "/storage/:kind/set", .state) { routes, request throws(BrowserError) in try routes.setStorage(&request) },
        RouteEntry("POST", "/storage/:kind/clear", .state) { routes, request throws(BrowserError) in try routes.clearStorage(&request) },
        RouteEntry("POST", "/set/offline", .state) { routes, request throws(BrowserError) in try routes.setOffline(&request) },
        RouteEntry("POST", "/set/headers", .state) { routes, request throws(BrowserError) in try routes.setHeaders(&request) },
        RouteEntry("POST", "/set/geolocation", .state) { routes, request throws(BrowserError) in try routes.setGeolocation(&request) },
        RouteEntry("POST", "/set/media", .state) { routes, request throws(BrowserError) in try routes.setMedia(&request) },
        RouteEntry("POST", "/set/timezone", .state) { routes, request throws(BrowserError) in try routes.setTimezone(&request) },
        RouteEntry("POST", "/set/locale", .state) { routes, request throws(BrowserError) in try routes.setLocale(&request) },
        // Served by upstream through Playwright only (§9): 501
        .unsupported("POST", "/trace/start", feature: "trace"),
        .unsupported("POST", "/trace/stop", feature: "trace"),
        .unsupported("POST", "/response/body", feature: "response body"),
        .unsupported("POST", "/download", feature: "download"),
        .unsupported("POST", "/wait/download", feature: "wait for download"),
        .unsupported("POST", "/set/device", feature: "device emulation"),
        .unsupported("POST", "/set/credentials", feature: "http credentials"),
        .unsupported("POST", "/permissions/grant", feature: "permissions"),
    ]

    static func unsupportedMessage(_ feature: String) -> String {
        "Playwright is not available in this gateway build; '\(feature)' is unsupported. This node host drives Chromium over "
            + "the DevTools protocol and does not implement this route.\nDocs: /tools/browser-control#playwright-requirement"
    }

    /// The first row for `method` whose pattern matches `path`, with the path parameters; nil
    /// when no row matches. A row's `:name` segment that is not percent-encoded UTF-8 fails the
    /// lookup with 400 when that row is tried.
    static func resolve(method: String, path: String) throws(BrowserError) -> (entry: RouteEntry, parameters: [String: String])? {
        for entry in routes where entry.method == method {
            if let parameters = try match(entry.pattern, path) { return (entry, parameters) }
        }
        return nil
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

    /// Runs one route; never throws (failures become error bodies).
    func dispatch(method: String, path: String, query: [String: String], body: JSONValue?, timeoutMs: Int) -> (Int, JSONValue) {
        var request = RouteRequest(method: method, path: path, query: query, body: body?.objectValue ?? [:],
                                   deadline: Deadline(ms: timeoutMs))
        do {
            guard let resolved = try Self.resolve(method: method, path: path) else {
                return (404, .object(["error": .string("Not Found")]))
            }
            request.pathParameters = resolved.parameters
            return (200, try resolved.entry.handler(self, &request))
        } catch {
            return (error.status, error.body)
        }
    }
}
