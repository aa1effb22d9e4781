import NodeSupport
import OpenClawIPC

/// What the node publishes with `node.pluginTools.update` for its MCP servers (upstream's
/// `buildNodeMcpToolDescriptors`): one descriptor per callable tool, named
/// `<server>_<tool>` within 64 characters, ordered by server then tool, at most 128 and
/// 10 MiB (1 MiB each).
public enum McpCatalog {
    public static let pluginId = "node-mcp"
    public static let command = "mcp.tools.call.v1"
    static let maxDescriptors = 128
    static let maxDescriptorBytes = 1024 * 1024
    static let maxCatalogBytes = 10 * 1024 * 1024

    public struct Descriptor: Equatable, Sendable {
        public var name: String
        public var description: String
        public var parameters: JSONValue
        public var server: String
        public var tool: String

        /// Keys in upstream's order: pluginId, name, description, parameters, command, mcp.
        public var json: String {
            func quoted(_ text: String) -> String { (try? JSONText.encode(JSONValue.string(text))) ?? "\"\"" }
            return #"{"pluginId":"\#(McpCatalog.pluginId)","name":\#(quoted(name)),"description":\#(quoted(description)),"#
                + #""parameters":\#((try? JSONText.encode(parameters)) ?? "{}"),"command":"\#(McpCatalog.command)","#
                + #""mcp":{"server":\#(quoted(server)),"tool":\#(quoted(tool))}}"#
        }
    }

    /// The callable tools of one server's listing: names trimmed, every copy of a duplicated
    /// name dropped, `taskSupport: required` hidden, the filter applied.
    public static func callable(_ tools: [McpTool], filter: McpToolFilter) -> [McpTool] {
        var counts: [String: Int] = [:]
        for tool in tools { counts[tool.name.trimmingWhitespace(), default: 0] += 1 }
        return tools.compactMap { tool in
            let name = tool.name.trimmingWhitespace()
            guard !name.isEmpty, counts[name] == 1, !tool.taskRequired, filter.allows(name) else { return nil }
            var kept = tool
            kept.name = name
            return kept
        }
    }

    /// The descriptors of all servers' callable tools; `bounded` is set when some were left out.
    public static func descriptors(_ tools: [(server: String, tool: McpTool)]) -> (descriptors: [Descriptor], listed: Int) {
        var used: Set<String> = []
        var descriptors: [Descriptor] = []
        var bytes = 0
        let sorted = tools.sorted { left, right in
            left.server != right.server ? localeLess(left.server, right.server) : localeLess(left.tool.name, right.tool.name)
        }
        for (server, tool) in sorted {
            let descriptor = Descriptor(
                name: reserve(baseName(server: server, tool: tool.name), &used),
                description: truncateUTF16(sanitizeMetadata(tool.description) ?? sanitizeMetadata(tool.name) ?? "MCP tool", 1024),
                parameters: normalizedSchema(tool.inputSchema), server: server, tool: tool.name)
            let size = descriptor.json.utf8.count
            if size > maxDescriptorBytes || bytes + size > maxCatalogBytes { continue }
            descriptors.append(descriptor)
            bytes += size
            if descriptors.count >= maxDescriptors { break }
        }
        return (descriptors, tools.count)
    }

    /// `{"tools":[…]}`: the node's plugin tools (none but MCP's here), sorted by pluginId, name.
    public static func paramsJSON(_ descriptors: [Descriptor]) -> String {
        #"{"tools":["# + descriptors.sorted { localeLess($0.name, $1.name) }.map(\.json).joined(separator: ",") + "]}"
    }

    static func normalizedSchema(_ schema: JSONValue?) -> JSONValue {
        if case .object? = schema { return schema! }
        return .object(["type": .string("object"), "properties": .object([:]), "additionalProperties": .bool(true)])
    }

    /// upstream's `sanitizeDescriptorFragment`.
    static func fragment(_ raw: String, fallback: String) -> String {
        var out = ""
        var inRun = false
        for scalar in raw.trimmingWhitespace().unicodeScalars {
            let allowed = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-")
            if allowed { out.unicodeScalars.append(scalar); inRun = false } else if !inRun { out.append("_"); inRun = true }
        }
        let trimmed = String(out.drop { $0 == "_" || $0 == "-" }.reversed().drop { $0 == "_" || $0 == "-" }.reversed())
        let normalized = trimmed.isEmpty ? fallback : trimmed
        return normalized.first.map { $0.isASCII && $0.isLetter } == true ? normalized : "\(fallback)_\(normalized)"
    }

    static func baseName(server: String, tool: String) -> String {
        let serverPart = String(fragment(server, fallback: "mcp").prefix(31))
        let budget = max(1, 64 - serverPart.count - 1)
        return "\(serverPart)_\(fragment(tool, fallback: "tool").prefix(budget))"
    }

    /// Unique case-insensitively: `_2`, `_3`, … within 64 characters.
    static func reserve(_ base: String, _ used: inout Set<String>) -> String {
        var index = 1
        while true {
            let suffix = index == 1 ? "" : "_\(index)"
            let candidate = String(base.prefix(64 - suffix.count)) + suffix
            if used.insert(candidate.lowercased()).inserted { return candidate }
            index += 1
        }
    }

    /// upstream's `sanitizeMcpMetadataText`: trimmed (nil when blank), prompt-injection phrases
    /// replaced, at most 1200 UTF-16 units and `...`.
    static func sanitizeMetadata(_ text: String?) -> String? {
        guard let trimmed = text?.trimmingWhitespace(), !trimmed.isEmpty else { return nil }
        var scrubbed = replaceInjections(trimmed)
        if scrubbed.utf16.count > 1200 { scrubbed = truncateUTF16(scrubbed, 1200) + "..." }
        return scrubbed
    }

    /// `/(ignore|disregard)\s+(?:all\s+)?(?:previous|prior|above)\s+instructions/gi`.
    static func replaceInjections(_ text: String) -> String {
        let marker = "[redacted MCP metadata instruction]"
        var words = Array(text)
        var result = ""
        var index = 0
        func matchWord(_ word: String, at start: Int) -> Int? {
            let chars = Array(word)
            guard start + chars.count <= words.count else { return nil }
            for offset in 0..<chars.count where words[start + offset].lowercased() != String(chars[offset]) { return nil }
            return start + chars.count
        }
        func spaces(at start: Int) -> Int? {
            var position = start
            while position < words.count, words[position].isWhitespace { position += 1 }
            return position > start ? position : nil
        }
        while index < words.count {
            var end: Int?
            for verb in ["ignore", "disregard"] {
                guard var position = matchWord(verb, at: index), let afterVerb = spaces(at: position) else { continue }
                position = afterVerb
                if let all = matchWord("all", at: position), let afterAll = spaces(at: all) { position = afterAll }
                for adjective in ["previous", "prior", "above"] {
                    if let afterAdjective = matchWord(adjective, at: position), let gap = spaces(at: afterAdjective),
                       let finish = matchWord("instructions", at: gap) {
                        end = finish
                        break
                    }
                }
                if end != nil { break }
            }
            if let end {
                result += marker
                index = end
            } else {
                result.append(words[index])
                index += 1
            }
        }
        words = []
        return result
    }

    /// An approximation of `localeCompare` (ICU, en): case-insensitive first, then lower
    /// before upper, then code units.
    static func localeLess(_ left: String, _ right: String) -> Bool {
        let (l, r) = (left.lowercased(), right.lowercased())
        if l != r { return l.unicodeScalars.lexicographicallyPrecedes(r.unicodeScalars) }
        if left != right { return !(left.unicodeScalars.lexicographicallyPrecedes(right.unicodeScalars)) }
        return false
    }
}
