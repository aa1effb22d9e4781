import OpenClawIPC

/// §5.8 state and emulation over raw CDP (upstream serves them through Playwright): cookies
/// of the browser, a tab's local/session storage, and per-tab network and emulation
/// overrides. Validation, messages and answers follow upstream's routes; each answers
/// `{ok: true, targetId}` unless it returns data.
///
/// Upstream applies overrides to the whole browser context; here they apply to the tab's
/// DevTools session (the tab the request names, or the default tab).
extension BrowserRoutes {
    private func done(_ targetId: String) -> JSONValue {
        .object(["ok": .bool(true), "targetId": .string(targetId)])
    }

    // MARK: Cookies (the browser's, like Playwright's context cookies)

    func listCookies(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, page) = try targetPage(request)
        let answer = try page.connection.call("Storage.getCookies", timeoutMs: request.deadline.remaining)
        let cookies = (answer["cookies"]?.arrayValue ?? []).map(Self.playwrightCookie)
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId), "cookies": .array(cookies)])
    }

    func setCookie(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard case let .object(cookie)? = request.body["cookie"] else { throw BrowserError("cookie is required", status: 400) }
        let (_, tab, page) = try targetPage(request)
        let timeout = request.deadline.remaining
        try page.connection.call("Storage.setCookies", ["cookies": .array([try Self.cookieParam(cookie)])], timeoutMs: timeout)
        return done(tab.targetId)
    }

    func clearCookies(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, page) = try targetPage(request)
        try page.connection.call("Storage.clearCookies", timeoutMs: request.deadline.remaining)
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

    /// The page's store named by the `:kind` path parameter.
    private func storageObject(_ request: RouteRequest) throws(BrowserError) -> String {
        let kind = request.pathParameters["kind"] ?? ""
        guard kind == "local" || kind == "session" else { throw BrowserError("kind must be local|session", status: 400) }
        return kind == "session" ? "window.sessionStorage" : "window.localStorage"
    }

    func storageValues(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let store = try storageObject(request)
        let (_, tab, page) = try targetPage(request)
        let only = request.query["key"].map { $0.trimmed() } ?? ""
        let script = """
            (() => { const store = \(store); const key = \(Snapshot.jsonString(only)); const out = {};
              if (key) { const value = store.getItem(key); if (value !== null) out[key] = value; return out; }
              for (let i = 0; i < store.length; i += 1) { const k = store.key(i); if (!k) continue;
                const v = store.getItem(k); if (v !== null) out[k] = v; }
              return out; })()
            """
        let values = try page.evaluate(script, deadline: request.deadline)
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId),
                        "values": values.objectValue.map(JSONValue.object) ?? .object([:])])
    }

    func setStorage(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let store = try storageObject(request)
        guard let key = request.string("key") else { throw BrowserError("key is required", status: 400) }
        let (_, tab, page) = try targetPage(request)
        let value = request.rawString("value") ?? ""
        _ = try page.evaluate("\(store).setItem(\(Snapshot.jsonString(key)), \(Snapshot.jsonString(value)))", deadline: request.deadline)
        return done(tab.targetId)
    }

    func clearStorage(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let store = try storageObject(request)
        let (_, tab, page) = try targetPage(request)
        _ = try page.evaluate("\(store).clear()", deadline: request.deadline)
        return done(tab.targetId)
    }

    // MARK: Network and emulation overrides of the tab

    func setOffline(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let offline = request.bool("offline") else { throw BrowserError("offline is required", status: 400) }
        return try applyOverride(request, "Network.emulateNetworkConditions", [
            "offline": .bool(offline), "latency": .number(0), "downloadThroughput": .number(-1), "uploadThroughput": .number(-1),
        ], enablesNetwork: true)
    }

    func setHeaders(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard case let .object(headers)? = request.body["headers"] else { throw BrowserError("headers is required", status: 400) }
        return try applyOverride(request, "Network.setExtraHTTPHeaders", ["headers": .object(headers.filter { $0.value.stringValue != nil })],
                                 enablesNetwork: true)
    }

    func setGeolocation(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        if request.bool("clear") ?? false {
            return try applyOverride(request, "Emulation.clearGeolocationOverride", [:])
        }
        guard case let .number(latitude)? = request.body["latitude"], case let .number(longitude)? = request.body["longitude"] else {
            throw BrowserError("latitude and longitude are required", status: 400)
        }
        var params: Object = ["latitude": .number(latitude), "longitude": .number(longitude), "accuracy": .number(0)]
        if case let .number(accuracy)? = request.body["accuracy"] { params["accuracy"] = .number(accuracy) }
        return try applyOverride(request, "Emulation.setGeolocationOverride", params)
    }

    func setMedia(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let scheme = request.string("colorScheme") ?? ""
        guard ["dark", "light", "no-preference", "none"].contains(scheme) else {
            throw BrowserError("colorScheme must be dark|light|no-preference|none", status: 400)
        }
        let feature: JSONValue = .object(["name": .string("prefers-color-scheme"), "value": .string(scheme == "none" ? "" : scheme)])
        return try applyOverride(request, "Emulation.setEmulatedMedia", ["features": .array([feature])])
    }

    func setTimezone(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let timezone = request.string("timezoneId") else { throw BrowserError("timezoneId is required", status: 400) }
        return try applyOverride(request, "Emulation.setTimezoneOverride", ["timezoneId": .string(timezone)])
    }

    func setLocale(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let locale = request.string("locale") else { throw BrowserError("locale is required", status: 400) }
        return try applyOverride(request, "Emulation.setLocaleOverride", ["locale": .string(locale)])
    }

    /// Sends one override to the tab's session; the Network domain is enabled first for the
    /// network ones.
    private func applyOverride(_ request: RouteRequest, _ method: String, _ params: Object,
                               enablesNetwork: Bool = false) throws(BrowserError) -> JSONValue {
        let (_, tab, page) = try targetPage(request)
        if enablesNetwork {
            try page.call("Network.enable", timeoutMs: request.deadline.remaining)
        }
        try page.call(method, params, timeoutMs: request.deadline.remaining)
        return done(tab.targetId)
    }
}
