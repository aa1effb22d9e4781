import OpenClawIPC

/// Snapshots of a page's accessibility tree (`browser.md` §6), from
/// `Accessibility.getFullAXTree`: pure functions of the CDP answer, so they are unit-tested.
enum Snapshot {
    typealias Object = [String: JSONValue]

    /// One AX node, reduced to what the formats use.
    struct Node {
        var id: String
        var role: String
        var name: String
        var value: String?
        var description: String?
        var backendNodeId: Int?
        var ignored: Bool
        var children: [String]
        /// A link's resolved `href`, filled in only for `urls` (§6.2 step 4).
        var url: String? = nil
        /// Why a non-native element looks clickable (§6.2 step 2), e.g. `["cursor:pointer", "onclick"]`.
        var cursorReasons: [String]? = nil
    }

    /// A cursor-interactive element found by the page script (`BrowserRoutes.cursorScript`).
    struct CursorHit: Equatable {
        var reasons: [String]
        var text: String
    }

    /// The reasons a suffix may name: the page script runs in the page's own JavaScript, so
    /// anything else it returns is dropped rather than printed into the snapshot.
    static let cursorReasonWords: Set<String> = [
        "cursor:pointer", "onclick", "tabindex", "contenteditable", "hidden-radio", "hidden-checkbox",
    ]

    /// Marks the AX nodes of cursor-interactive elements: they get a ref and a suffix, and an
    /// unnamed one takes the element's text as its name.
    static func markCursorInteractive(_ nodes: [Node], hits: [Int: CursorHit]) -> [Node] {
        guard !hits.isEmpty else { return nodes }
        return nodes.map { node in
            guard let backend = node.backendNodeId, let hit = hits[backend] else { return node }
            let reasons = hit.reasons.filter(cursorReasonWords.contains)
            guard !reasons.isEmpty else { return node }
            var node = node
            node.cursorReasons = reasons
            if node.name.isEmpty { node.name = hit.text }
            return node
        }
    }

    static let interactiveRoles: Set<String> = [
        "button", "checkbox", "combobox", "link", "listbox", "menuitem", "menuitemcheckbox", "menuitemradio", "option", "radio",
        "searchbox", "slider", "spinbutton", "switch", "tab", "textbox", "treeitem",
    ]
    static let contentRoles: Set<String> = [
        "article", "cell", "columnheader", "gridcell", "heading", "listitem", "main", "navigation", "region", "rowheader",
    ]
    static let structuralRoles: Set<String> = [
        "application", "directory", "document", "generic", "grid", "group", "ignored", "list", "menu", "menubar", "none",
        "presentation", "row", "rowgroup", "table", "tablist", "toolbar", "tree", "treegrid",
    ]

    /// The `.value` of an AX value object, numbers and booleans as text.
    static func text(_ value: JSONValue?) -> String? {
        switch value?["value"] {
        case let .string(text)?: return text
        case let .number(number)?: return number.javaScriptString
        case let .bool(flag)?: return String(flag)
        default: return nil
        }
    }

    static func nodes(from result: Object) -> [Node] {
        (result["nodes"]?.arrayValue ?? []).compactMap { entry in
            guard let id = entry["nodeId"]?.stringValue else { return nil }
            let role = text(entry["role"]) ?? ""
            return Node(id: id, role: role, name: text(entry["name"]) ?? "", value: text(entry["value"]),
                        description: text(entry["description"]), backendNodeId: entry["backendDOMNodeId"]?.intValue,
                        ignored: entry["ignored"]?.boolValue ?? false,
                        children: (entry["childIds"]?.arrayValue ?? []).compactMap(\.stringValue))
        }
    }

    /// The page's tree with each same-process iframe's tree hung under its `Iframe` node
    /// (§6.2 step 4): frame node ids are prefixed so they cannot collide with the page's, and
    /// the frame's roots become the iframe node's children. `frames` maps an iframe node id
    /// to the nodes of `Accessibility.getFullAXTree {frameId}` for its document.
    static func merge(_ nodes: [Node], frames: [(iframe: String, nodes: [Node])]) -> [Node] {
        var merged = nodes
        for (index, frame) in frames.enumerated() {
            let prefix = "f\(index + 1):"
            let renamed = frame.nodes.map { node -> Node in
                var node = node
                node.id = prefix + node.id
                node.children = node.children.map { prefix + $0 }
                return node
            }
            let frameRoots = roots(renamed).map(\.id)
            if let position = merged.firstIndex(where: { $0.id == frame.iframe }) {
                merged[position].children += frameRoots
            }
            merged += renamed
        }
        return merged
    }

    /// Roots: nodes no other node lists as a child (else the first node).
    static func roots(_ nodes: [Node]) -> [Node] {
        let childIds = Set(nodes.flatMap(\.children))
        let roots = nodes.filter { !childIds.contains($0.id) }
        return roots.isEmpty ? Array(nodes.prefix(1)) : roots
    }

    // MARK: format=aria (§6.1)

    struct AriaResult {
        var nodes: [JSONValue]
        var refs: [String: BrowserService.RefEntry]
    }

    static func aria(_ nodes: [Node], limit: Int) -> AriaResult {
        let byId = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let root = roots(nodes).first
        var output: [JSONValue] = []
        var refs: [String: BrowserService.RefEntry] = [:]
        var stack: [(String, Int)] = root.map { [($0.id, 0)] } ?? []
        var seen = Set<String>()
        while let (id, depth) = stack.popLast(), output.count < limit {
            guard let node = byId[id], seen.insert(id).inserted else { continue }
            let ref = "ax\(output.count + 1)"
            var entry: Object = ["ref": .string(ref), "role": .string(node.role.isEmpty ? "unknown" : node.role),
                                 "name": .string(node.name), "depth": .number(Double(depth))]
            if let value = node.value, !value.isEmpty { entry["value"] = .string(value) }
            if let description = node.description, !description.isEmpty { entry["description"] = .string(description) }
            if let backend = node.backendNodeId { entry["backendDOMNodeId"] = .number(Double(backend)) }
            output.append(.object(entry))
            refs[ref] = .init(role: node.role, name: node.name, nth: nil, backendNodeId: node.backendNodeId)
            for child in node.children.reversed() { stack.append((child, depth + 1)) }
        }
        return AriaResult(nodes: output, refs: refs)
    }

    // MARK: format=ai (§6.2)

    struct RoleOptions {
        var interactive = false
        /// Append each link's target: ` [url=<href>]`.
        var urls = false
        var compact = false
        var depth: Int?
        var maxChars: Int? = 40000
    }

    struct RoleResult {
        var text: String
        var refs: [String: BrowserService.RefEntry]
        var truncated: Bool
        var lines: Int
        var interactiveRefs: Int
    }

    static let truncationMarker = "[...TRUNCATED - page too large]"

    static func role(_ nodes: [Node], options: RoleOptions) -> RoleResult {
        let byId = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        struct Line {
            var depth: Int
            var node: Node
            var ref: String?
        }
        var lines: [Line] = []
        var refs: [String: BrowserService.RefEntry] = [:]
        var counter = 0
        var pairCounts: [String: Int] = [:]
        var seen = Set<String>()

        func visit(_ id: String, depth: Int) {
            guard let node = byId[id], seen.insert(id).inserted else { return }
            let lower = node.role.lowercased()
            // Ignored nodes and text-box fragments are not lines; their children move up.
            if node.ignored || lower == "inlinetextbox" {
                for child in node.children { visit(child, depth: depth) }
                return
            }
            let interactive = interactiveRoles.contains(lower)
            let cursor = node.cursorReasons != nil
            let wantsRef = interactive || (contentRoles.contains(lower) && !node.name.isEmpty) || lower == "iframe" || cursor
            var ref: String?
            if wantsRef {
                counter += 1
                ref = "e\(counter)"
                let key = "\(lower):\(node.name)"
                let nth = pairCounts[key, default: 0]
                pairCounts[key] = nth + 1
                refs[ref!] = .init(role: node.role, name: node.name, nth: nth, backendNodeId: node.backendNodeId)
            }
            var keep = true
            if let limit = options.depth, depth > limit { keep = false }
            if options.interactive, !(interactive || lower == "iframe" || cursor) { keep = false }
            if options.compact, structuralRoles.contains(lower), node.name.isEmpty, ref == nil {
                keep = false
            }
            if keep { lines.append(Line(depth: depth, node: node, ref: ref)) }
            if let limit = options.depth, depth >= limit { return }
            for child in node.children { visit(child, depth: depth + 1) }
        }
        for root in roots(nodes) { visit(root.id, depth: 0) }

        // nth is kept only for role+name pairs that occur more than once.
        for (ref, entry) in refs where pairCounts["\(entry.role.lowercased()):\(entry.name)", default: 0] < 2 {
            refs[ref]?.nth = nil
        }
        var rendered: [(text: String, ref: String?)] = lines.map { line in
            var text = String(repeating: "  ", count: line.depth) + "- " + line.node.role
            if !line.node.name.isEmpty { text += " " + jsonString(line.node.name) }
            if let ref = line.ref {
                text += " [ref=\(ref)]"
                if let nth = refs[ref]?.nth, nth > 0 { text += " [nth=\(nth)]" }
            }
            if let value = line.node.value, !value.isEmpty { text += " value=" + jsonString(value) }
            if options.urls, let url = line.node.url, !url.isEmpty { text += " [url=\(lineSafe(url))]" }
            if let reasons = line.node.cursorReasons { text += " [" + reasons.joined(separator: ", ") + "]" }
            return (text, line.ref)
        }
        if rendered.isEmpty {
            rendered = [(options.interactive ? "(no interactive elements)" : "(empty page)", nil)]
        }
        var truncated = false
        if let budget = options.maxChars, budget > 0, rendered.map(\.text.count).reduce(0, +) + max(rendered.count - 1, 0) > budget {
            truncated = true
            var kept: [(text: String, ref: String?)] = []
            var length = 0
            for line in rendered {
                let added = (kept.isEmpty ? 0 : 1) + line.text.count
                if length + added + 2 + truncationMarker.count > budget { break }
                kept.append(line)
                length += added
            }
            let keptRefs = Set(kept.compactMap(\.ref))
            refs = refs.filter { keptRefs.contains($0.key) }
            let marker = budget < truncationMarker.count ? "…" : truncationMarker
            rendered = kept + [("", nil), (marker, nil)]
        }
        let interactiveCount = refs.values.filter { interactiveRoles.contains($0.role.lowercased()) }.count
        return RoleResult(text: rendered.map(\.text).joined(separator: "\n"), refs: refs, truncated: truncated,
                          lines: rendered.count, interactiveRefs: interactiveCount)
    }

    /// `text` with spaces and control characters percent-encoded: a resolved href never has
    /// them, and a page that fakes one cannot start a line of its own.
    static func lineSafe(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value <= 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}" || scalar == "\u{85}" {
                for byte in String(scalar).utf8 { out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true) }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func jsonString(_ text: String) -> String {
        (try? JSONText.encode(JSONValue.string(text))) ?? "\"\""
    }

    /// Accepted ref spellings: `e12`, `@e12`, `ref=e12`, `12`, `ax12`.
    static func normalizeRef(_ raw: String) -> String {
        var ref = raw.trimmed()
        if ref.hasPrefix("@") { ref.removeFirst() }
        if ref.hasPrefix("ref=") { ref.removeFirst(4) }
        if !ref.isEmpty, ref.allSatisfy(\.isNumber) { ref = "e" + ref }
        return ref
    }
}
