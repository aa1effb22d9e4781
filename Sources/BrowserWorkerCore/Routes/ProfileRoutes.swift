import OpenClawIPC

/// Status and lifecycle (`browser.md` §5.1): `GET /`, `POST /start`, `POST /stop`, `GET /profiles`.
extension BrowserRoutes {
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
}
