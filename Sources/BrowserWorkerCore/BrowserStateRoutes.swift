import OpenClawIPC

/// §5.8 state and emulation over raw CDP (upstream serves them through Playwright): cookies
/// of the browser, a tab's local/session storage, and per-tab network and emulation
/// overrides. Validation, messages and answers follow upstream's routes; each answers
/// `{ok: true, targetId}` unless it returns data.
///
/// Upstream applies overrides to the whole browser context; here they apply to the tab's
/// DevTools session (the tab the request names, or the default tab).
extension BrowserRoutes {
    static let stateTable: [(method: String, pattern: String, route: StateRoute)] = [
        ("GET", "/cookies", .cookies), ("POST", "/cookies/set", .setCookie), ("POST", "/cookies/clear", .clearCookies),
        ("GET", "/storage/:kind", .storage), ("POST", "/storage/:kind/set", .setStorage),
        ("POST", "/storage/:kind/clear", .clearStorage), ("POST", "/set/offline", .offline), ("POST", "/set/headers", .headers),
        ("POST", "/set/geolocation", .geolocation), ("POST", "/set/media", .media), ("POST", "/set/timezone", .timezone),
        ("POST", "/set/locale", .locale),
    ]

    enum StateRoute {
        case cookies, setCookie, clearCookies, storage, setStorage, clearStorage
        case offline, headers, geolocation, media, timezone, locale
    }

    func handle(_ route: StateRoute, _ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        switch route {
        case .cookies, .setCookie, .clearCookies: return try cookies(route, &request)
        case .storage, .setStorage, .clearStorage: return try storage(route, &request)
        case .offline, .headers, .geolocation, .media, .timezone, .locale: return try emulation(route, &request)
        }
    }

    private func done(_ targetId: String) -> JSONValue {
        .object(["ok": .bool(true), "targetId": .string(targetId)])
    }

    // MARK: Cookies (the browser's, like Playwright's context cookies)

    private func cookies(_ route: StateRoute, _ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        var cookie: Object?
        if route == .setCookie {
            guard case let .object(fields)? = request.body["cookie"] else { throw BrowserError("cookie is required", status: 400) }
            cookie = fields
        }
        let (_, tab, connection, _) = try page(request)
        let timeout = request.deadline.remaining
        switch route {
        case .cookies:
            let answer = try connection.call("Storage.getCookies", timeoutMs: timeout)
            let cookies = (answer["cookies"]?.arrayValue ?? []).map(Self.playwrightCookie)
            return .object(["ok": .bool(true), "targetId": .string(tab.targetId), "cookies": .array(cookies)])
        case .setCookie:
            try connection.call("Storage.setCookies", ["cookies": .array([try Self.cookieParam(cookie ?? [:])])], timeoutMs: timeout)
        default:
            try connection.call("Storage.clearCookies", timeoutMs: timeout)
        }
        return done(tab.targetId)
    }

    /// A CDP cookie as Playwright reports it.
    static func playwrightCookie(_ cookie: JSONValue) -> JSONValue {
        var out: Object = [:]
        for key in ["name", "value", "domain", "path", "expires", "httpOnly", "secure"] {
            if let value = cookie[key] { out[key] = value }
        }
        if cookie["session"]?.boolValue == true { out["expires"] = .number(-1) }
        out["sameSite"] = cookie["sameSite"] ?? .string("Lax")
        return .object(out)
    }

    /// Upstream's rules for a cookie to set: name and value, and a url or a domain and path.
    static func cookieParam(_ cookie: Object) throws(BrowserError) -> JSONValue {
        func text(_ key: String) -> String? { RouteRequest.text(cookie[key]) }
        guard let name = text("name"), cookie["value"] != nil else {
            throw BrowserError("cookie name and value are required", status: 500)
        }
        var param: Object = ["name": .string(name), "value": .string(text("value") ?? "")]
        if let url = text("url") {
            param["url"] = .string(url)
        } else if let domain = text("domain"), let path = text("path") {
            param["domain"] = .string(domain)
            param["path"] = .string(path)
        } else {
            throw BrowserError("cookie requires url, or domain+path", status: 500)
        }
        if case let .number(expires)? = cookie["expires"] { param["expires"] = .number(expires) }
        for flag in ["httpOnly", "secure"] {
            if let value = RouteRequest.bool(cookie[flag]) { param[flag] = .bool(value) }
        }
        if let sameSite = text("sameSite"), ["Lax", "None", "Strict"].contains(sameSite) { param["sameSite"] = .string(sameSite) }
        return .object(param)
    }

    // MARK: localStorage / sessionStorage of the tab's page

    private func storage(_ route: StateRoute, _ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let kind = request.pathParameters["kind"] ?? ""
        guard kind == "local" || kind == "session" else { throw BrowserError("kind must be local|session", status: 400) }
        let store = kind == "session" ? "window.sessionStorage" : "window.localStorage"
        var key = ""
        if route == .setStorage {
            guard let name = request.string("key") else { throw BrowserError("key is required", status: 400) }
            key = name
        }
        let (_, tab, connection, session) = try page(request)
        switch route {
        case .storage:
            let only = request.query["key"].map { $0.trimmed() } ?? ""
            let script = """
                (() => { const store = \(store); const key = \(Snapshot.jsonString(only)); const out = {};
                  if (key) { const value = store.getItem(key); if (value !== null) out[key] = value; return out; }
                  for (let i = 0; i < store.length; i += 1) { const k = store.key(i); if (!k) continue;
                    const v = store.getItem(k); if (v !== null) out[k] = v; }
                  return out; })()
                """
            let values = try evaluate(connection, session, script, deadline: request.deadline)
            return .object(["ok": .bool(true), "targetId": .string(tab.targetId),
                            "values": values.objectValue.map(JSONValue.object) ?? .object([:])])
        case .setStorage:
            let value = request.rawString("value") ?? ""
            _ = try evaluate(connection, session, "\(store).setItem(\(Snapshot.jsonString(key)), \(Snapshot.jsonString(value)))",
                             deadline: request.deadline)
        default:
            _ = try evaluate(connection, session, "\(store).clear()", deadline: request.deadline)
        }
        return done(tab.targetId)
    }

    // MARK: Network and emulation overrides of the tab

    private func emulation(_ route: StateRoute, _ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let command: (method: String, params: Object)
        switch route {
        case .offline:
            guard let offline = request.bool("offline") else { throw BrowserError("offline is required", status: 400) }
            command = ("Network.emulateNetworkConditions", ["offline": .bool(offline), "latency": .number(0),
                                                            "downloadThroughput": .number(-1), "uploadThroughput": .number(-1)])
        case .headers:
            guard case let .object(headers)? = request.body["headers"] else { throw BrowserError("headers is required", status: 400) }
            command = ("Network.setExtraHTTPHeaders", ["headers": .object(headers.filter { $0.value.stringValue != nil })])
        case .geolocation:
            if request.bool("clear") ?? false {
                command = ("Emulation.clearGeolocationOverride", [:])
            } else {
                guard case let .number(latitude)? = request.body["latitude"], case let .number(longitude)? = request.body["longitude"] else {
                    throw BrowserError("latitude and longitude are required", status: 400)
                }
                var params: Object = ["latitude": .number(latitude), "longitude": .number(longitude), "accuracy": .number(0)]
                if case let .number(accuracy)? = request.body["accuracy"] { params["accuracy"] = .number(accuracy) }
                command = ("Emulation.setGeolocationOverride", params)
            }
        case .media:
            let scheme = request.string("colorScheme") ?? ""
            guard ["dark", "light", "no-preference", "none"].contains(scheme) else {
                throw BrowserError("colorScheme must be dark|light|no-preference|none", status: 400)
            }
            let feature: JSONValue = .object(["name": .string("prefers-color-scheme"), "value": .string(scheme == "none" ? "" : scheme)])
            command = ("Emulation.setEmulatedMedia", ["features": .array([feature])])
        case .timezone:
            guard let timezone = request.string("timezoneId") else { throw BrowserError("timezoneId is required", status: 400) }
            command = ("Emulation.setTimezoneOverride", ["timezoneId": .string(timezone)])
        default:
            guard let locale = request.string("locale") else { throw BrowserError("locale is required", status: 400) }
            command = ("Emulation.setLocaleOverride", ["locale": .string(locale)])
        }
        let (_, tab, connection, session) = try page(request)
        if route == .offline || route == .headers {
            try connection.call("Network.enable", session: session, timeoutMs: request.deadline.remaining)
        }
        try connection.call(command.method, command.params, session: session, timeoutMs: request.deadline.remaining)
        return done(tab.targetId)
    }
}
