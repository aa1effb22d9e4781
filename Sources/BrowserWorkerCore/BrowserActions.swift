import Glibc
import OpenClawIPC

/// `POST /act` over raw CDP (`browser.md` §5.4, §5.5, §7): the upstream request fields,
/// response shapes and error strings, with Input/DOM/Runtime calls instead of Playwright.
extension BrowserRoutes {
    static let actKinds: Set<String> = [
        "click", "type", "press", "hover", "scrollIntoView", "drag", "select", "fill", "resize", "wait", "evaluate", "close",
    ]
    static let modifierBits = ["Alt": 1, "Control": 2, "ControlOrMeta": 2, "Meta": 4, "Shift": 8]
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
        let (profile, tab, connection, session) = try page(request)
        let interaction = Deadline(ms: min(min(max(request.int("timeoutMs") ?? 8000, 500), 60000), request.deadline.remaining))
        let long = Deadline(ms: min(min(max(request.int("timeoutMs") ?? 20000, 500), 120_000), request.deadline.remaining))
        var body: [String: JSONValue] = ["ok": .bool(true), "targetId": .string(tab.targetId)]
        func box(_ ref: String, _ deadline: Deadline) throws(BrowserError) -> Box {
            try elementBox(profile, tab.targetId, connection, session, ref: ref, deadline: deadline)
        }
        func element(_ ref: String, _ deadline: Deadline) throws(BrowserError) -> String {
            try objectId(connection, session, node: backendNode(profile, tab.targetId, ref: ref), deadline: deadline)
        }
        let input = InputDriver(connection: connection, session: session)

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
                try fillText(connection, session, objectId: element(ref, interaction), text: text, input: input, deadline: interaction)
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
            let result = try callFunction(connection, session, objectId: element(request.string("ref")!, interaction), Self.selectScript,
                                          arguments: [.array(values.map(JSONValue.string))], deadline: interaction)
            if result == .bool(false) { throw BrowserError("no option matches \(values)", status: 400) }
        case "fill":
            for field in request.body["fields"]?.arrayValue ?? [] {
                guard let ref = field["ref"]?.stringValue else { throw Self.invalid("ref is required") }
                let type = field["type"]?.stringValue ?? "text"
                let object = try element(ref, interaction)
                if type == "checkbox" || type == "radio" {
                    let checked = RouteRequest.bool(field["value"]) ?? true
                    _ = try callFunction(connection, session, objectId: object, Self.checkScript, arguments: [.bool(checked)],
                                         deadline: interaction)
                } else {
                    let value: String
                    switch field["value"] {
                    case let .string(text)?: value = text
                    case let .number(number)?: value = number.javaScriptString
                    case let .bool(flag)?: value = String(flag)
                    default: value = ""
                    }
                    try fillText(connection, session, objectId: object, text: value, input: input, deadline: interaction)
                }
            }
        case "resize":
            let width = request.int("width")!, height = request.int("height")!
            try connection.call("Emulation.setDeviceMetricsOverride", ["width": .number(Double(width)), "height": .number(Double(height)),
                                                                       "deviceScaleFactor": .number(1), "mobile": .bool(false)],
                                session: session, timeoutMs: interaction.remaining)
            body["url"] = .string(service.currentURL(profile, tab.targetId, deadline: interaction))
        case "wait":
            try wait(request, connection, session, deadline: long)
        case "evaluate":
            let source = request.rawString("fn") ?? ""
            let value: JSONValue
            if let ref = request.string("ref") {
                value = try callFunction(connection, session, objectId: element(ref, long),
                                         "async function(el) { const f = (\(source)); return typeof f === 'function' ? await f(el) : f; }",
                                         arguments: [], passSelf: true, deadline: long)
            } else {
                value = try evaluateSource(connection, session, source, deadline: long)
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
            guard let name = entry.stringValue, let bit = modifierBits[name] else {
                throw invalid("modifiers must be Alt|Control|ControlOrMeta|Meta|Shift")
            }
            bits |= bit
        }
        return bits
    }

    // MARK: Page scripts

    static let clearScript = """
        function() {
          this.focus();
          if (this.isContentEditable) { this.textContent = ''; }
          else if ('value' in this) { this.value = ''; }
          this.dispatchEvent(new Event('input', {bubbles: true}));
        }
        """
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

    /// Replaces an input's value with `text` (fill semantics), as typed input.
    func fillText(_ connection: CDPConnection, _ session: String, objectId: String, text: String, input: InputDriver,
                  deadline: Deadline) throws(BrowserError) {
        _ = try callFunction(connection, session, objectId: objectId, Self.clearScript, arguments: [], deadline: deadline)
        if !text.isEmpty {
            try connection.call("Input.insertText", ["text": .string(text)], session: session, timeoutMs: deadline.remaining)
        }
        _ = try callFunction(connection, session, objectId: objectId,
                             "function() { this.dispatchEvent(new Event('change', {bubbles: true})); }", arguments: [], deadline: deadline)
    }

    /// `Runtime.callFunctionOn` with `this` = the element (and optionally as first argument).
    func callFunction(_ connection: CDPConnection, _ session: String, objectId: String, _ declaration: String, arguments: [JSONValue],
                      passSelf: Bool = false, deadline: Deadline) throws(BrowserError) -> JSONValue {
        var callArguments: [JSONValue] = arguments.map { .object(["value": $0]) }
        if passSelf { callArguments.insert(.object(["objectId": .string(objectId)]), at: 0) }
        let result = try connection.call("Runtime.callFunctionOn", [
            "objectId": .string(objectId), "functionDeclaration": .string(declaration), "arguments": .array(callArguments),
            "returnByValue": .bool(true), "awaitPromise": .bool(true),
        ], session: session, timeoutMs: max(deadline.remaining, 1))
        if let exception = result["exceptionDetails"] { throw BrowserError(Self.exceptionText(exception), status: 500) }
        return result["result"]?["value"] ?? .null
    }

    /// `fn` as a function (called), an expression, or [newer] a statement body.
    func evaluateSource(_ connection: CDPConnection, _ session: String, _ source: String, deadline: Deadline) throws(BrowserError) -> JSONValue {
        let asExpression = "(async () => { const f = (\(source)\n); return typeof f === 'function' ? await f() : f; })()"
        do {
            return try evaluate(connection, session, asExpression, deadline: deadline)
        } catch where error.message.hasPrefix("SyntaxError") {
            return try evaluate(connection, session, "(async () => {\n\(source)\n})()", deadline: deadline)
        }
    }

    func wait(_ request: RouteRequest, _ connection: CDPConnection, _ session: String, deadline: Deadline) throws(BrowserError) {
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
                if try evaluate(connection, session, expression, deadline: deadline) == .bool(true) { break }
                guard deadline.remaining > 150 else { throw BrowserError("wait for \(label) timed out", status: 408) }
                usleep(150_000)
            }
        }
    }
}

/// Mouse and keyboard through `Input.dispatch*Event` on one tab.
struct InputDriver {
    let connection: CDPConnection
    let session: String

    func mouse(_ type: String, _ point: (Double, Double), button: String = "none", count: Int = 0, modifiers: Int = 0,
               deadline: Deadline) throws(BrowserError) {
        try connection.call("Input.dispatchMouseEvent", [
            "type": .string(type), "x": .number(point.0), "y": .number(point.1), "button": .string(button),
            "clickCount": .number(Double(count)), "modifiers": .number(Double(modifiers)),
        ], session: session, timeoutMs: max(deadline.remaining, 1))
    }

    func move(_ point: (Double, Double), deadline: Deadline) throws(BrowserError) {
        try mouse("mouseMoved", point, deadline: deadline)
    }

    func click(_ point: (Double, Double), button: String = "left", count: Int = 1, modifiers: Int = 0, deadline: Deadline) throws(BrowserError) {
        try move(point, deadline: deadline)
        for click in 1...count {
            try mouse("mousePressed", point, button: button, count: click, modifiers: modifiers, deadline: deadline)
            try mouse("mouseReleased", point, button: button, count: click, modifiers: modifiers, deadline: deadline)
        }
    }

    func drag(from start: (Double, Double), to end: (Double, Double), deadline: Deadline) throws(BrowserError) {
        try move(start, deadline: deadline)
        try mouse("mousePressed", start, button: "left", count: 1, deadline: deadline)
        for step in 1...5 {
            let fraction = Double(step) / 5
            try mouse("mouseMoved", (start.0 + (end.0 - start.0) * fraction, start.1 + (end.1 - start.1) * fraction), button: "left",
                      deadline: deadline)
        }
        try mouse("mouseReleased", end, button: "left", count: 1, deadline: deadline)
    }

    /// Key names with their DOM code and Windows virtual key code.
    static let namedKeys: [String: (code: String, keyCode: Int, text: String?)] = [
        "Enter": ("Enter", 13, "\r"), "Tab": ("Tab", 9, "\t"), "Escape": ("Escape", 27, nil), "Backspace": ("Backspace", 8, nil),
        "Delete": ("Delete", 46, nil), "ArrowUp": ("ArrowUp", 38, nil), "ArrowDown": ("ArrowDown", 40, nil),
        "ArrowLeft": ("ArrowLeft", 37, nil), "ArrowRight": ("ArrowRight", 39, nil), "Home": ("Home", 36, nil), "End": ("End", 35, nil),
        "PageUp": ("PageUp", 33, nil), "PageDown": ("PageDown", 34, nil), "Space": ("Space", 32, " "), " ": ("Space", 32, " "),
        "Shift": ("ShiftLeft", 16, nil), "Control": ("ControlLeft", 17, nil), "Alt": ("AltLeft", 18, nil), "Meta": ("MetaLeft", 91, nil),
    ]
    /// [newer] aliases, per `+`-separated part, case-insensitive.
    static let aliases = ["esc": "Escape", "return": "Enter", "del": "Delete", "ctrl": "Control", "cmd": "Meta",
                          "controlormeta": "Control", "space": "Space"]

    static func canonical(_ part: String) -> String {
        if let alias = aliases[part.lowercased()] { return alias }
        if let named = namedKeys.keys.first(where: { $0.lowercased() == part.lowercased() }) { return named }
        return part
    }

    static func describe(_ key: String) -> (key: String, code: String, keyCode: Int, text: String?) {
        if let named = namedKeys[key] { return (key == "Space" ? " " : key, named.code, named.keyCode, named.text) }
        if key.count == 1, let scalar = key.unicodeScalars.first {
            let upper = key.uppercased()
            if scalar.properties.isAlphabetic, scalar.isASCII { return (key, "Key\(upper)", Int(upper.unicodeScalars.first!.value), key) }
            if ("0"..."9").contains(key) { return (key, "Digit\(key)", Int(scalar.value), key) }
            return (key, "", 0, key)
        }
        return (key, key, 0, nil)
    }

    func key(_ type: String, _ key: String, modifiers: Int, withText: Bool, deadline: Deadline) throws(BrowserError) {
        let info = Self.describe(key)
        var parameters: [String: JSONValue] = [
            "type": .string(type), "key": .string(info.key), "code": .string(info.code),
            "windowsVirtualKeyCode": .number(Double(info.keyCode)), "modifiers": .number(Double(modifiers)),
        ]
        if withText, let text = info.text, modifiers & ~8 == 0 {
            parameters["text"] = .string(text)
            parameters["unmodifiedText"] = .string(text)
        }
        try connection.call("Input.dispatchKeyEvent", parameters, session: session, timeoutMs: max(deadline.remaining, 1))
    }

    /// Presses a combination like `Control+a` (modifiers held, then the key, then released).
    func press(_ combination: String, holdMs: Int = 0, deadline: Deadline) throws(BrowserError) {
        let parts = combination.split(separator: "+", omittingEmptySubsequences: false).map { Self.canonical(String($0)) }
        let keys = parts.isEmpty ? [combination] : parts
        var modifiers = 0
        for modifier in keys.dropLast() {
            try key("rawKeyDown", modifier, modifiers: modifiers, withText: false, deadline: deadline)
            modifiers |= BrowserRoutes.modifierBits[modifier] ?? 0
        }
        let main = keys.last ?? combination
        try key("keyDown", main, modifiers: modifiers, withText: true, deadline: deadline)
        if holdMs > 0 { usleep(useconds_t(min(holdMs, 5000)) * 1000) }
        try key("keyUp", main, modifiers: modifiers, withText: false, deadline: deadline)
        for modifier in keys.dropLast().reversed() {
            modifiers &= ~(BrowserRoutes.modifierBits[modifier] ?? 0)
            try key("keyUp", modifier, modifiers: modifiers, withText: false, deadline: deadline)
        }
    }

    func typeCharacter(_ character: String, deadline: Deadline) throws(BrowserError) {
        try key("keyDown", character, modifiers: 0, withText: true, deadline: deadline)
        try key("keyUp", character, modifiers: 0, withText: false, deadline: deadline)
    }
}
