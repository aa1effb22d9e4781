import Glibc
import OpenClawIPC

/// One tab's flattened DevTools session (`Target.attachToTarget {flatten: true}`) and the CDP
/// page helpers every route uses through it. A page exception is a `BrowserError` with the
/// page's own description; an element that is gone asks for a new snapshot (400).
struct PageSession {
    typealias Object = [String: JSONValue]

    let connection: CDPConnection
    /// The tab's CDP `sessionId`.
    let session: String

    /// `method` on the tab's session.
    @discardableResult
    func call(_ method: String, _ params: Object = [:], timeoutMs: Int) throws(BrowserError) -> Object {
        try connection.call(method, params, session: session, timeoutMs: timeoutMs)
    }

    /// `Runtime.evaluate` by value, awaiting promises; page exceptions become errors.
    func evaluate(_ expression: String, deadline: Deadline) throws(BrowserError) -> JSONValue {
        let result = try call("Runtime.evaluate", ["expression": .string(expression), "returnByValue": .bool(true),
                                                   "awaitPromise": .bool(true)],
                              timeoutMs: max(deadline.remaining, 1))
        if let exception = result["exceptionDetails"] { throw BrowserError(Self.exceptionText(exception)) }
        return result["result"]?["value"] ?? .null
    }

    static func exceptionText(_ details: JSONValue) -> String {
        details["exception"]?["description"]?.stringValue ?? details["text"]?.stringValue ?? "evaluation failed"
    }

    /// `fn` as a function (called), an expression, or [newer] a statement body.
    func evaluateSource(_ source: String, deadline: Deadline) throws(BrowserError) -> JSONValue {
        let asExpression = "(async () => { const f = (\(source)\n); return typeof f === 'function' ? await f() : f; })()"
        do {
            return try evaluate(asExpression, deadline: deadline)
        } catch where error.message.hasPrefix("SyntaxError") {
            return try evaluate("(async () => {\n\(source)\n})()", deadline: deadline)
        }
    }

    /// `Runtime.callFunctionOn` with `this` = the element (and optionally as first argument).
    func callFunction(objectId: String, _ declaration: String, arguments: [JSONValue], passSelf: Bool = false,
                      deadline: Deadline) throws(BrowserError) -> JSONValue {
        var callArguments: [JSONValue] = arguments.map { .object(["value": $0]) }
        if passSelf { callArguments.insert(.object(["objectId": .string(objectId)]), at: 0) }
        let result = try call("Runtime.callFunctionOn", [
            "objectId": .string(objectId), "functionDeclaration": .string(declaration), "arguments": .array(callArguments),
            "returnByValue": .bool(true), "awaitPromise": .bool(true),
        ], timeoutMs: max(deadline.remaining, 1))
        if let exception = result["exceptionDetails"] { throw BrowserError(Self.exceptionText(exception), status: 500) }
        return result["result"]?["value"] ?? .null
    }

    /// Polls `document.readyState` until `complete`.
    func waitForLoad(deadline: Deadline) throws(BrowserError) {
        while true {
            if let state = try? evaluate("document.readyState", deadline: deadline), state == .string("complete") {
                return
            }
            guard deadline.remaining > 100 else { throw BrowserError("navigation timed out", status: 504) }
            usleep(50_000)
        }
    }

    /// The first element matching a CSS `selector` (a file chooser's `element`), as a node id.
    func backendNode(selector: String, deadline: Deadline) throws(BrowserError) -> Int {
        let expression = "document.querySelector(\(Snapshot.jsonString(selector)))"
        let found = try call("Runtime.evaluate", ["expression": .string(expression)], timeoutMs: deadline.remaining)
        guard let object = found["result"]?["objectId"]?.stringValue else {
            throw BrowserError("element not found: \(selector)", status: 404)
        }
        let described = try call("DOM.describeNode", ["objectId": .string(object)], timeoutMs: deadline.remaining)
        guard let node = described["node"]?["backendNodeId"]?.intValue else { throw BrowserError("element not found: \(selector)", status: 404) }
        return node
    }

    /// The DOM node's remote object id (for `Runtime.callFunctionOn`).
    func objectId(node: Int, deadline: Deadline) throws(BrowserError) -> String {
        let resolved: Object
        do {
            resolved = try call("DOM.resolveNode", ["backendNodeId": .number(Double(node))], timeoutMs: deadline.remaining)
        } catch {
            throw BrowserError("element is no longer in the page; take a new snapshot (\(error.message))", status: 400)
        }
        guard let id = resolved["object"]?["objectId"]?.stringValue else { throw BrowserError("element has no remote object") }
        return id
    }

    /// Scrolls the DOM node into view and returns its box in viewport CSS pixels; `ref` is the
    /// caller's name for it in the messages.
    func elementBox(node: Int, ref: String, deadline: Deadline) throws(BrowserError) -> ElementBox {
        let nodeParameter: Object = ["backendNodeId": .number(Double(node))]
        do {
            try call("DOM.scrollIntoViewIfNeeded", nodeParameter, timeoutMs: deadline.remaining)
        } catch {
            throw BrowserError("element \(ref) cannot be scrolled into view; take a new snapshot (\(error.message))", status: 400)
        }
        let quads = try call("DOM.getContentQuads", nodeParameter, timeoutMs: deadline.remaining)
        guard let quad = quads["quads"]?.arrayValue?.first?.arrayValue?.compactMap(\.numberValue), quad.count == 8 else {
            throw BrowserError("element \(ref) is not visible", status: 400)
        }
        let xs = stride(from: 0, to: 8, by: 2).map { quad[$0] }, ys = stride(from: 1, to: 8, by: 2).map { quad[$0] }
        let minX = xs.min()!, minY = ys.min()!
        return ElementBox(x: minX, y: minY, width: xs.max()! - minX, height: ys.max()! - minY)
    }

    /// Replaces an input's value with `text` (fill semantics), as typed input.
    func fillText(objectId: String, text: String, deadline: Deadline) throws(BrowserError) {
        _ = try callFunction(objectId: objectId, Self.clearScript, arguments: [], deadline: deadline)
        if !text.isEmpty {
            try call("Input.insertText", ["text": .string(text)], timeoutMs: deadline.remaining)
        }
        _ = try callFunction(objectId: objectId, "function() { this.dispatchEvent(new Event('change', {bubbles: true})); }",
                             arguments: [], deadline: deadline)
    }

    static let clearScript = """
        function() {
          this.focus();
          if (this.isContentEditable) { this.textContent = ''; }
          else if ('value' in this) { this.value = ''; }
          this.dispatchEvent(new Event('input', {bubbles: true}));
        }
        """
}

/// An element's box in viewport CSS pixels.
struct ElementBox {
    var x: Double
    var y: Double
    var width: Double
    var height: Double
    var center: (Double, Double) { (x + width / 2, y + height / 2) }
}
