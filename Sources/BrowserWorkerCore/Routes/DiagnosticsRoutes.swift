import OpenClawIPC

/// What a tab reported since it was first seen (`browser.md` §5.7): console messages, uncaught
/// page errors and network requests, collected from CDP events by `BrowserService`.
extension BrowserRoutes {
    static let levels = ["debug": 0, "log": 1, "info": 1, "warning": 2, "warn": 2, "error": 3]

    func consoleMessages(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, _) = try targetPage(request)
        var messages = service.console.withLock { $0[tab.targetId] ?? [] }
        if let level = request.query["level"]?.lowercased(), let minimum = Self.levels[level] {
            messages = messages.filter { Self.levels[$0["type"]?.stringValue ?? "log"] ?? 1 >= minimum }
        }
        return .object(["ok": .bool(true), "messages": .array(messages), "targetId": .string(tab.targetId)])
    }

    /// `GET /errors`: uncaught page errors since the tab was first seen; `clear` empties the list.
    func pageErrors(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, _) = try targetPage(request)
        let clear = request.queryBool("clear") ?? false
        let errors = service.pageErrors.withLock { buffers in
            defer { if clear { buffers[tab.targetId] = [] } }
            return buffers[tab.targetId] ?? []
        }
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId), "errors": .array(errors)])
    }

    /// `GET /requests`: the tab's requests (`filter`: URL substring; `clear` empties the list).
    func networkRequests(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (_, tab, _) = try targetPage(request)
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
}
