import Glibc
import NodeSupport
import OpenClawIPC

/// `POST /act` over raw CDP (`browser.md` §5.4, §5.5, §7): the upstream request fields,
/// response shapes and error strings, with Input/DOM/Runtime calls instead of Playwright; and
/// `POST /highlight` and `POST /hooks/dialog`, which act on a ref or a tab the same way.
extension BrowserRoutes {
    static let actKinds: Set<String> = [
        "click", "type", "press", "hover", "scrollIntoView", "drag", "select", "fill", "resize", "wait", "evaluate", "close",
    ]
    static let evaluateDocs = "\nDocs: /gateway/configuration#browser-openclaw-managed-browser"

    static func invalid(_ message: String) -> BrowserError {
        BrowserError(message, status: 400, extra: ["code": .string("ACT_INVALID_REQUEST")])
    }

    func act(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let kind = request.string("kind") else {
            throw BrowserError("kind is required", status: 400, extra: ["code": .string("ACT_KIND_REQUIRED")])
        }
        guard Self.actKinds.contains(kind) else {
            if ["batch", "clickCoords", "dragCoords"].contains(kind) {
                throw BrowserError(Self.unsupportedMessage("act:\(kind)"), status: 501)
            }
            throw Self.invalid("unknown kind: \(kind)")
        }
        if request.body["selector"] != nil, kind != "wait" {
            throw BrowserError("Error: 'selector' is not supported. Use 'ref' from snapshot instead.\n\nExample workflow:\n"
                               + "1. snapshot action to get page state with refs\n2. act with ref: \"e123\" to interact with element",
                               status: 400, extra: ["code": .string("ACT_SELECTOR_UNSUPPORTED")])
        }
        try validate(kind, request)
        let (profile, tab, page) = try targetPage(request)
        let interaction = Deadline(ms: min(min(max(request.int("timeoutMs") ?? 8000, 500), 60000), request.deadline.remaining))
        let long = Deadline(ms: min(min(max(request.int("timeoutMs") ?? 20000, 500), 120_000), request.deadline.remaining))
        var body: [String: JSONValue] = ["ok": .bool(true), "targetId": .string(tab.targetId)]
        func box(_ ref: String, _ deadline: Deadline) throws(BrowserError) -> ElementBox {
            try page.elementBox(node: backendNode(profile, tab.targetId, ref: ref), ref: ref, deadline: deadline)
        }
        func element(_ ref: String, _ deadline: Deadline) throws(BrowserError) -> String {
            try page.objectId(node: backendNode(profile, tab.targetId, ref: ref), deadline: deadline)
        }
        let input = InputDriver(page: page)

        switch kind {
        case "click":
            let modifiers = try Self.modifiers(request)
            let point = try box(request.string("ref")!, interaction).center
            if let delay = request.int("delayMs"), delay > 0 {
                try input.move(point, deadline: interaction)
                usleep(useconds_t(min(delay, 5000)) * 1000)
            }
            try input.click(point, button: request.string("button") ?? "left", count: request.bool("doubleClick") == true ? 2 : 1,
                            modifiers: modifiers, deadline: interaction)
        case "type":
            let ref = request.string("ref")!
            let text = request.rawString("text") ?? ""
            if request.bool("slowly") == true {
                try input.click(try box(ref, interaction).center, deadline: interaction)
                for character in text {
                    try input.typeCharacter(String(character), deadline: interaction)
                    usleep(75_000)
                }
            } else {
                try page.fillText(objectId: element(ref, interaction), text: text, deadline: interaction)
            }
            if request.bool("submit") == true { try input.press("Enter", deadline: interaction) }
        case "press":
            try input.press(request.string("key")!, holdMs: request.int("delayMs") ?? 0, deadline: interaction)
        case "hover":
            try input.move(try box(request.string("ref")!, interaction).center, deadline: interaction)
        case "scrollIntoView":
            _ = try box(request.string("ref")!, long)
        case "drag":
            let start = try box(request.string("startRef")!, interaction).center
            let end = try box(request.string("endRef")!, interaction).center
            try input.drag(from: start, to: end, deadline: interaction)
        case "select":
            let values = (request.body["values"]?.arrayValue ?? []).compactMap { $0.stringValue ?? $0.intValue.map { String($0) } }
            let result = try page.callFunction(objectId: element(request.string("ref")!, interaction), Self.selectScript,
                                               arguments: [.array(values.map(JSONValue.string))], deadline: interaction)
            if result == .bool(false) { throw BrowserError("no option matches \(values)", status: 400) }
        case "fill":
            for field in request.body["fields"]?.arrayValue ?? [] {
                guard let ref = field["ref"]?.stringValue else { throw Self.invalid("ref is required") }
                let type = field["type"]?.stringValue ?? "text"
                let object = try element(ref, interaction)
                if type == "checkbox" || type == "radio" {
                    let checked = RouteRequest.bool(field["value"]) ?? true
                    _ = try page.callFunction(objectId: object, Self.checkScript, arguments: [.bool(checked)], deadline: interaction)
                } else {
                    let value: String
                    switch field["value"] {
                    case let .string(text)?: value = text
                    case let .number(number)?: value = number.javaScriptString
                    case let .bool(flag)?: value = String(flag)
                    default: value = ""
                    }
                    try page.fillText(objectId: object, text: value, deadline: interaction)
                }
            }
        case "resize":
            let width = request.int("width")!, height = request.int("height")!
            try page.call("Emulation.setDeviceMetricsOverride", ["width": .number(Double(width)), "height": .number(Double(height)),
                                                                 "deviceScaleFactor": .number(1), "mobile": .bool(false)],
                          timeoutMs: interaction.remaining)
            body["url"] = .string(service.currentURL(profile, tab.targetId, deadline: interaction))
        case "wait":
            try wait(request, page, deadline: long)
        case "evaluate":
            let source = request.rawString("fn") ?? ""
            let value: JSONValue
            if let ref = request.string("ref") {
                value = try page.callFunction(objectId: element(ref, long),
                                              "async function(el) { const f = (\(source)); return typeof f === 'function' ? await f(el) : f; }",
                                              arguments: [], passSelf: true, deadline: long)
            } else {
                value = try page.evaluateSource(source, deadline: long)
            }
            body["result"] = value
            body["url"] = .string(service.currentURL(profile, tab.targetId, deadline: long))
        case "close":
            try service.closeTab(profile, tab.targetId, deadline: interaction)
            return .object(body)
        default:
            break
        }
        if kind == "click" || kind == "type" {
            body["url"] = .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))
        }
        return .object(body)
    }

    /// Required fields per kind, with the core-era messages (§5.5).
    func validate(_ kind: String, _ request: RouteRequest) throws(BrowserError) {
        switch kind {
        case "click", "hover", "scrollIntoView":
            guard request.string("ref") != nil else { throw Self.invalid("ref is required") }
            if kind == "click" {
                if let button = request.string("button"), !["left", "right", "middle"].contains(button) {
                    throw Self.invalid("button must be left|right|middle")
                }
                _ = try Self.modifiers(request)
            }
        case "type":
            guard request.string("ref") != nil else { throw Self.invalid("ref is required") }
            guard request.body["text"]?.stringValue != nil else { throw Self.invalid("text is required") }
        case "press":
            guard request.string("key") != nil else { throw Self.invalid("key is required") }
        case "drag":
            guard request.string("startRef") != nil, request.string("endRef") != nil else { throw Self.invalid("startRef and endRef are required") }
        case "select":
            guard request.string("ref") != nil, let values = request.body["values"]?.arrayValue, !values.isEmpty else {
                throw Self.invalid("ref and values are required")
            }
        case "fill":
            guard let fields = request.body["fields"]?.arrayValue, !fields.isEmpty else { throw Self.invalid("fields are required") }
        case "resize":
            guard let width = request.int("width"), let height = request.int("height") else {
                throw Self.invalid("width and height are required")
            }
            guard width > 0, height > 0, width <= 8192, height <= 8192 else { throw Self.invalid("resize requires positive width and height") }
        case "wait":
            let keys = ["timeMs", "text", "textGone", "selector", "url", "loadState", "fn"]
            guard keys.contains(where: { request.body[$0] != nil && request.body[$0] != .null }) else {
                throw Self.invalid("wait requires at least one of: timeMs, text, textGone, selector, url, loadState, fn")
            }
            if request.body["fn"] != nil, !service.configuration.evaluateEnabled {
                throw BrowserError("wait --fn is disabled by config (browser.evaluateEnabled=false)." + Self.evaluateDocs, status: 403,
                                   extra: ["code": .string("ACT_EVALUATE_DISABLED")])
            }
        case "evaluate":
            guard service.configuration.evaluateEnabled else {
                throw BrowserError("act:evaluate is disabled by config (browser.evaluateEnabled=false)." + Self.evaluateDocs, status: 403,
                                   extra: ["code": .string("ACT_EVALUATE_DISABLED")])
            }
            guard request.rawString("fn")?.trimmed().isEmpty == false else { throw Self.invalid("fn is required") }
        default:
            break
        }
    }

    static func modifiers(_ request: RouteRequest) throws(BrowserError) -> Int {
        guard let list = request.body["modifiers"]?.arrayValue else { return 0 }
        var bits = 0
        for entry in list {
            guard let name = entry.stringValue, let bit = InputDriver.modifierBits[name] else {
                throw invalid("modifiers must be Alt|Control|ControlOrMeta|Meta|Shift")
            }
            bits |= bit
        }
        return bits
    }

    // MARK: Page scripts

    static let selectScript = """
        function(values) {
          if (!(this instanceof HTMLSelectElement)) throw new Error('element is not a <select>');
          let matched = false;
          for (const option of this.options) {
            const hit = values.includes(option.value) || values.includes(option.label) || values.includes(option.textContent.trim());
            if (hit) matched = true;
            if (this.multiple) option.selected = hit; else if (hit) { option.selected = true; }
          }
          if (!matched) return false;
          this.dispatchEvent(new Event('input', {bubbles: true}));
          this.dispatchEvent(new Event('change', {bubbles: true}));
          return true;
        }
        """
    static let checkScript = """
        function(checked) {
          if (this.checked !== checked) { this.click(); }
          if (this.checked !== checked) { this.checked = checked; this.dispatchEvent(new Event('input', {bubbles: true}));
            this.dispatchEvent(new Event('change', {bubbles: true})); }
          return this.checked;
        }
        """

    func wait(_ request: RouteRequest, _ page: PageSession, deadline: Deadline) throws(BrowserError) {
        if let time = request.int("timeMs") { usleep(useconds_t(min(max(time, 0), 30000)) * 1000) }
        var conditions: [(String, String)] = []
        func literal(_ text: String) -> String { Snapshot.jsonString(text) }
        if let text = request.rawString("text") { conditions.append(("text \(text)", "document.body && document.body.innerText.includes(\(literal(text)))")) }
        if let text = request.rawString("textGone") {
            conditions.append(("text gone \(text)", "!(document.body && document.body.innerText.includes(\(literal(text))))"))
        }
        if let selector = request.rawString("selector") {
            conditions.append(("selector \(selector)", """
                (() => { const e = document.querySelector(\(literal(selector))); if (!e) return false; const r = e.getBoundingClientRect();
                  const s = getComputedStyle(e); return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; })()
                """))
        }
        if let pattern = request.rawString("url") {
            conditions.append(("url \(pattern)", "(() => { const g = \(literal(pattern)); const re = new RegExp('^' + g.replace(/[.+^${}()|[\\]\\\\]/g, '\\\\$&').replace(/\\*\\*/g, '\\u0000').replace(/\\*/g, '[^/]*').replace(/\\u0000/g, '.*').replace(/\\?/g, '.') + '$'); return re.test(location.href); })()"))
        }
        if let state = request.rawString("loadState") {
            let check = state == "domcontentloaded" ? "document.readyState !== 'loading'" : "document.readyState === 'complete'"
            conditions.append(("load state \(state)", check))
        }
        if let source = request.rawString("fn") {
            conditions.append(("fn", "(async () => { const f = (\(source)\n); return !!(typeof f === 'function' ? await f() : f); })()"))
        }
        for (label, expression) in conditions {
            while true {
                if try page.evaluate(expression, deadline: deadline) == .bool(true) { break }
                guard deadline.remaining > 150 else { throw BrowserError("wait for \(label) timed out", status: 408) }
                usleep(150_000)
            }
        }
    }

    // MARK: Highlight and dialogs

    /// `POST /hooks/dialog`: how to answer the tab's next alert, confirm or prompt (within
    /// `timeoutMs`, default 2 minutes); the answer is given from the dialog's CDP event.
    func armDialog(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let accept = request.bool("accept") else { throw BrowserError("accept is required", status: 400) }
        let (_, tab, _) = try targetPage(request)
        let window = UInt64(min(max(request.int("timeoutMs") ?? 120_000, 1), 600_000))
        let answer = BrowserService.DialogAnswer(accept: accept, promptText: request.rawString("promptText"),
                                                 untilMs: NodeSupport.Clock.monotonicMs() + window)
        service.dialogAnswers.withLock { $0[tab.targetId] = answer }
        return .object(["ok": .bool(true)])
    }

    /// `POST /hooks/file-chooser` (`browser.md` §5.6): `paths` from the uploads folder only.
    /// With `inputRef` or `element` the files are set on that `<input type=file>` at once;
    /// otherwise the tab's next file chooser (within `timeoutMs`, default 2 minutes) is
    /// answered with them, and `ref` is clicked to open it.
    func fileChooser(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let paths = (request.body["paths"]?.arrayValue ?? []).compactMap(\.stringValue)
        guard !paths.isEmpty else { throw BrowserError("paths are required", status: 400) }
        let ref = request.string("ref"), inputRef = request.string("inputRef"), element = request.string("element")
        let (profile, tab, page) = try targetPage(request)
        let files: [String]
        switch ProxyUploads.resolve(paths, dataDir: service.configuration.dataDir) {
        case let .success(resolved): files = resolved
        case let .failure(error): throw BrowserError(error.text, status: 400)
        }
        let deadline = Deadline(ms: min(min(max(request.int("timeoutMs") ?? 20_000, 500), 120_000), request.deadline.remaining))
        if inputRef != nil || element != nil {
            if ref != nil { throw BrowserError("ref cannot be combined with inputRef/element", status: 400) }
            let node: Int
            if let inputRef {
                node = try backendNode(profile, tab.targetId, ref: inputRef)
            } else {
                node = try page.backendNode(selector: element ?? "", deadline: deadline)
            }
            try page.call("DOM.setFileInputFiles", ["files": .array(files.map(JSONValue.string)), "backendNodeId": .number(Double(node))],
                          timeoutMs: deadline.remaining)
            return .object(["ok": .bool(true)])
        }
        let window = UInt64(min(max(request.int("timeoutMs") ?? 120_000, 1), 600_000))
        service.fileChooserArms.withLock { $0[tab.targetId] = .init(files: files, untilMs: NodeSupport.Clock.monotonicMs() + window) }
        try page.call("Page.setInterceptFileChooserDialog", ["enabled": .bool(true)], timeoutMs: deadline.remaining)
        if let ref {
            let point = try page.elementBox(node: backendNode(profile, tab.targetId, ref: ref), ref: ref, deadline: deadline).center
            try InputDriver(page: page).click(point, deadline: deadline)
        }
        return .object(["ok": .bool(true)])
    }

    /// `POST /highlight`: outlines the ref's element for about two seconds.
    func highlight(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        guard let ref = request.string("ref") else { throw BrowserError("ref is required", status: 400) }
        let (profile, tab, page) = try targetPage(request)
        let node = try backendNode(profile, tab.targetId, ref: ref)
        let object = try page.objectId(node: node, deadline: request.deadline)
        try page.call("Runtime.callFunctionOn", [
            "objectId": .string(object),
            "functionDeclaration": .string("""
                function() { const el = this; const before = el.style.outline;
                  el.style.outline = "3px solid #FF4500"; setTimeout(() => { el.style.outline = before; }, 2000); }
                """),
        ], timeoutMs: request.deadline.remaining)
        return .object(["ok": .bool(true), "targetId": .string(tab.targetId)])
    }
}
