

/// upstream's `boundMcpToolResultPayload`: what of an MCP tool result crosses `node.invoke`.
/// Content blocks pass as the server sent them (objects only); a text block that only mirrors
/// `structuredContent` is dropped; text is cut at 1 MB in all (with upstream's marker); the
/// whole payload at 20 MB (`structuredContent` first, then the blocks that still fit, and a
/// marker when anything was left out); `isError: true` is kept (the gateway maps it).
public enum McpResultShaping {
    static let maxTextBytes = 1024 * 1024
    static let textMarker = "\n[truncated: MCP text content exceeded 1 MB]"
    static let maxPayloadBytes = 20 * 1024 * 1024
    static let payloadMarker: JSONValue = .object(["type": .string("text"), "text": .string("[truncated: MCP result exceeded 20 MB]")])

    public static func payload(_ result: JSONValue) -> JSONValue {
        let reserved = bytes(payloadMarker) + 1
        let isError = result["isError"] == .bool(true)
        var used = isError ? #"{"content":[],"isError":true}"#.utf8.count : #"{"content":[]}"#.utf8.count
        var truncated = false
        var structured: JSONValue?
        if let content = result["structuredContent"], JSONValue.isTruthy(content) {
            let prefix = #","structuredContent":"#.utf8.count
            let size = bytes(content)
            if size <= max(0, maxPayloadBytes - used - prefix - reserved) {
                structured = content
                used += prefix + size
            } else {
                truncated = true
            }
        }
        let blocks = (result["content"]?.arrayValue ?? []).filter { block in
            guard case .object = block else { return false }
            guard let structured, block["type"] == .string("text"), let text = block["text"]?.stringValue else { return true }
            return !mirrors(text, structured)
        }
        let textBytes = blocks.reduce(0) { total, block in
            total + (block["type"] == .string("text") ? block["text"]?.stringValue?.utf8.count ?? 0 : 0)
        }
        var remaining = textBytes > maxTextBytes ? maxTextBytes - textMarker.utf8.count : maxTextBytes
        var marked = false
        var bounded: [JSONValue] = []
        for block in blocks {
            guard block["type"] == .string("text"), let text = block["text"]?.stringValue, textBytes > maxTextBytes else {
                bounded.append(block)
                continue
            }
            if marked { continue }
            let kept = prefix(text, bytes: remaining)
            remaining -= kept.utf8.count
            let cut = kept.utf8.count < text.utf8.count
            if !kept.isEmpty || cut, case var .object(fields) = block {
                fields["text"] = .string(cut ? kept + textMarker : kept)
                bounded.append(.object(fields))
            }
            if cut || remaining == 0 {
                if !cut { bounded.append(.object(["type": .string("text"), "text": .string(String(textMarker.dropFirst()))])) }
                marked = true
            }
        }
        var content: [JSONValue] = []
        for block in bounded {
            let separator = content.isEmpty ? 0 : 1
            let size = bytes(block)
            guard size <= max(0, maxPayloadBytes - used - separator - reserved) else {
                truncated = true
                continue
            }
            content.append(block)
            used += size + separator
        }
        if truncated { content.append(payloadMarker) }
        var payload: [String: JSONValue] = ["content": .array(content)]
        if let structured { payload["structuredContent"] = structured }
        if isError { payload["isError"] = .bool(true) }
        return .object(payload)
    }

    static func bytes(_ value: JSONValue) -> Int { (try? JSONText.encode(value))?.utf8.count ?? Int.max / 2 }

    /// The text is `JSON.stringify(structuredContent, null, 2)`: pretty JSON of the same value.
    static func mirrors(_ text: String, _ structured: JSONValue) -> Bool {
        guard text.hasPrefix("{") || text.hasPrefix("["), text.contains("\n") || text == "{}" || text == "[]",
              let parsed = try? JSONText.decode(JSONValue.self, from: text) else { return false }
        return parsed == structured
    }

    /// The longest prefix of at most `bytes` UTF-8 bytes, whole characters only.
    static func prefix(_ text: String, bytes limit: Int) -> String {
        guard limit > 0 else { return "" }
        var count = 0
        var kept = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let size = String(scalar).utf8.count
            if count + size > limit { break }
            kept.append(scalar)
            count += size
        }
        return String(kept)
    }
}
