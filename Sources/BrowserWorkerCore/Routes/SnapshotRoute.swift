import OpenClawIPC

/// `GET /snapshot` (`browser.md` §5.3, §6): the page's accessibility tree as the `ai` role
/// snapshot or the `aria` node list, with same-process iframes expanded, cursor-interactive
/// elements and (on request) link targets and a labelled screenshot. The refs it hands out
/// are what `/act`, `/highlight` and element screenshots act on.
extension BrowserRoutes {
    func snapshot(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let efficient = request.query["mode"] == "efficient"
        let labels = request.queryBool("labels") ?? false
        let format = request.query["format"] ?? "ai"
        guard format == "ai" || format == "aria" else { throw BrowserError("format must be aria or ai", status: 400) }
        if format == "aria", labels || efficient { throw BrowserError("labels/mode=efficient require format=ai", status: 400) }
        if request.query["refs"] == "aria", format == "ai" { throw BrowserError(Self.unsupportedMessage("aria refs"), status: 501) }
        let (profile, tab, page) = try targetPage(request)
        try page.call("Accessibility.enable", timeoutMs: request.deadline.remaining)
        let tree = try page.call("Accessibility.getFullAXTree", timeoutMs: request.deadline.remaining)
        var nodes = Snapshot.nodes(from: tree)
        let url = service.currentURL(profile, tab.targetId, deadline: request.deadline)
        if format == "aria" {
            let limit = min(max(request.queryInt("limit") ?? 500, 1), 2000)
            let result = Snapshot.aria(nodes, limit: limit)
            profile.refs[tab.targetId] = result.refs
            return .object(["ok": .bool(true), "format": .string("aria"), "targetId": .string(tab.targetId), "url": .string(url),
                            "nodes": .array(result.nodes)])
        }
        nodes = Snapshot.markCursorInteractive(nodes, hits: cursorInteractive(page, deadline: request.deadline))
        nodes = expandFrames(nodes, page, deadline: request.deadline)
        var options = Snapshot.RoleOptions()
        options.urls = request.queryBool("urls") ?? false
        if options.urls { nodes = resolveLinkTargets(nodes, page, deadline: request.deadline) }
        options.interactive = request.queryBool("interactive") ?? efficient
        options.compact = request.queryBool("compact") ?? efficient
        options.depth = request.queryInt("depth") ?? (efficient ? 6 : nil)
        let maxChars = request.queryInt("maxChars") ?? (efficient ? 8000 : 40000)
        options.maxChars = maxChars == 0 ? nil : maxChars
        let result = Snapshot.role(nodes, options: options)
        profile.refs[tab.targetId] = result.refs
        var refs: Object = [:]
        for (ref, entry) in result.refs {
            var object: Object = ["role": .string(entry.role), "name": .string(entry.name)]
            if let nth = entry.nth { object["nth"] = .number(Double(nth)) }
            refs[ref] = .object(object)
        }
        var body: Object = [
            "ok": .bool(true), "format": .string("ai"), "targetId": .string(tab.targetId), "url": .string(url),
            "snapshot": .string(result.text), "refs": .object(refs),
            "stats": .object(["lines": .number(Double(result.lines)), "chars": .number(Double(result.text.count)),
                              "refs": .number(Double(result.refs.count)), "interactive": .number(Double(result.interactiveRefs))]),
        ]
        if result.truncated { body["truncated"] = .bool(true) }
        if labels {
            let drawn = try labelledScreenshot(result.refs, page, deadline: request.deadline)
            body["labels"] = .bool(true)
            body["labelsCount"] = .number(Double(drawn.count))
            body["labelsSkipped"] = .number(Double(drawn.skipped))
            body["imagePath"] = .string(drawn.path)
            body["imageType"] = .string("png")
        }
        return .object(body)
    }

    /// `labels=1`: a viewport screenshot with a badge naming each ref at its element's box.
    /// Refs whose element is not in the viewport (or has no box) are counted as skipped. The
    /// badges are a fixed overlay removed again right after the capture.
    func labelledScreenshot(_ refs: [String: BrowserService.RefEntry], _ page: PageSession,
                            deadline: Deadline) throws(BrowserError) -> (count: Int, skipped: Int, path: String) {
        let viewport = try page.evaluate("[innerWidth, innerHeight]", deadline: deadline)
        let width = viewport.arrayValue?.first?.numberValue ?? 0, height = viewport.arrayValue?.last?.numberValue ?? 0
        var badges: [JSONValue] = []
        var skipped = 0
        let ordered = refs.sorted { (Int($0.key.dropFirst()) ?? 0) < (Int($1.key.dropFirst()) ?? 0) }
        for (ref, entry) in ordered {
            guard let node = entry.backendNodeId, deadline.remaining > 500,
                  let quads = try? page.call("DOM.getContentQuads", ["backendNodeId": .number(Double(node))],
                                             timeoutMs: deadline.remaining),
                  let quad = quads["quads"]?.arrayValue?.first?.arrayValue?.compactMap(\.numberValue), quad.count == 8 else {
                skipped += 1
                continue
            }
            let xs = stride(from: 0, to: 8, by: 2).map { quad[$0] }, ys = stride(from: 1, to: 8, by: 2).map { quad[$0] }
            guard xs.max()! > 0, ys.max()! > 0, xs.min()! < width, ys.min()! < height else {
                skipped += 1
                continue
            }
            badges.append(.object(["ref": .string(ref), "x": .number(max(0, xs.min()!)), "y": .number(max(0, ys.min()!))]))
        }
        let overlay = "__openclaw_node_labels"
        let list = String(decoding: JSONValue.array(badges).serialized(), as: UTF8.self)
        // Removed whatever happens next, with its own short deadline (the request's may be spent).
        defer { _ = try? page.evaluate("document.getElementById('\(overlay)')?.remove()", deadline: Deadline(ms: 2000)) }
        _ = try page.evaluate("""
            (() => { const box = document.createElement("div"); box.id = "\(overlay)";
              box.style.cssText = "position:fixed;left:0;top:0;width:0;height:0;z-index:2147483647;pointer-events:none";
              for (const badge of \(list)) { const tag = document.createElement("span"); tag.textContent = badge.ref;
                tag.style.cssText = "position:fixed;left:" + badge.x + "px;top:" + badge.y + "px;background:#FF4500;color:#fff;" +
                  "font:bold 11px monospace;padding:1px 3px;border-radius:3px;line-height:1.2;white-space:nowrap";
                box.appendChild(tag); }
              document.documentElement.appendChild(box);
              // Painted before the capture; a hidden tab runs no animation frames, hence the timer.
              return new Promise((done) => { requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
                                            setTimeout(() => done(true), 200); }); })()
            """, deadline: deadline)
        let shot = try page.call("Page.captureScreenshot", ["format": .string("png")], timeoutMs: deadline.remaining)
        return (badges.count, skipped, try saveMedia(shot["data"]?.stringValue, extension: "png"))
    }

    /// Hangs the tree of every same-process iframe under its `Iframe` node, frames inside
    /// frames too (up to 3 levels and 50 frames). The frame comes from `DOM.describeNode` of
    /// the iframe element; a frame this page session cannot read (an out-of-process,
    /// cross-site iframe) stays an `Iframe` line without children.
    func expandFrames(_ nodes: [Snapshot.Node], _ page: PageSession, deadline: Deadline) -> [Snapshot.Node] {
        var frames: [(iframe: String, nodes: [Snapshot.Node])] = []
        var pending = nodes.filter { $0.role.lowercased() == "iframe" }.map { ($0, "", 1) }
        while let (iframe, prefix, level) = pending.first, frames.count < 50, deadline.remaining > 200 {
            pending.removeFirst()
            guard let backend = iframe.backendNodeId,
                  let described = try? page.call("DOM.describeNode", ["backendNodeId": .number(Double(backend))],
                                                 timeoutMs: deadline.remaining),
                  let frameId = described["node"]?["frameId"]?.stringValue,
                  let tree = try? page.call("Accessibility.getFullAXTree", ["frameId": .string(frameId)],
                                            timeoutMs: deadline.remaining) else { continue }
            let frameNodes = Snapshot.nodes(from: tree)
            frames.append((prefix + iframe.id, frameNodes))
            if level < 3 {
                let framePrefix = "f\(frames.count):"
                // `merge` renames frame k's nodes `f<k>:…`: that is how its iframes are found again.
                pending += frameNodes.filter { $0.role.lowercased() == "iframe" }.map { ($0, framePrefix, level + 1) }
            }
        }
        return frames.isEmpty ? nodes : Snapshot.merge(nodes, frames: frames)
    }

    /// The attribute the cursor script marks elements with, removed again afterwards.
    static let cursorMark = "data-openclaw-node-ci"

    /// §6.2 step 2: elements that are not native controls and have no interactive role, are
    /// visible, and look clickable (cursor:pointer not inherited from the parent, an onclick,
    /// a tabindex other than -1, contenteditable); a hidden radio or checkbox inside one is
    /// named too. Each is marked with its index; the script returns their reasons and text.
    static let cursorScript = """
        (() => {
          const mark = "\(cursorMark)";
          const nativeTags = ["a", "button", "input", "select", "textarea", "details", "summary"];
          const roles = [\(Snapshot.interactiveRoles.sorted().map { "\"\($0)\"" }.joined(separator: ","))];
          document.querySelectorAll("[" + mark + "]").forEach((element) => element.removeAttribute(mark));
          const found = [];
          const all = document.body ? document.body.querySelectorAll("*") : [];
          for (const element of all) {
            if (!(element instanceof HTMLElement) || element.closest("[hidden],[aria-hidden='true']")) continue;
            if (nativeTags.includes(element.tagName.toLowerCase())) continue;
            if (roles.includes((element.getAttribute("role") || "").toLowerCase())) continue;
            const pointer = getComputedStyle(element).cursor === "pointer";
            const onclick = element.hasAttribute("onclick") || element.onclick !== null;
            const tabindex = element.hasAttribute("tabindex") && element.getAttribute("tabindex") !== "-1";
            const editable = ["", "true"].includes(element.getAttribute("contenteditable"));
            if (!pointer && !onclick && !tabindex && !editable) continue;
            if (pointer && !onclick && !tabindex && !editable && element.parentElement &&
                getComputedStyle(element.parentElement).cursor === "pointer") continue;
            const box = element.getBoundingClientRect();
            if (!(box.width > 0 && box.height > 0)) continue;
            const reasons = [];
            if (pointer) reasons.push("cursor:pointer");
            if (onclick) reasons.push("onclick");
            if (tabindex) reasons.push("tabindex");
            if (editable) reasons.push("contenteditable");
            const choice = element.querySelector("input[type=radio],input[type=checkbox]");
            if (choice && (choice.hidden || ["none"].includes(getComputedStyle(choice).display) ||
                           getComputedStyle(choice).visibility === "hidden")) reasons.push("hidden-" + choice.type);
            element.setAttribute(mark, String(found.length));
            found.push({ reasons, text: Array.from((element.textContent || "").replace(/\\s+/g, " ").trim()).slice(0, 100).join("") });
          }
          return found;
        })()
        """

    /// backendNodeId → what the cursor script found there (best effort: empty on any failure).
    func cursorInteractive(_ page: PageSession, deadline: Deadline) -> [Int: Snapshot.CursorHit] {
        guard case let .array(found)? = try? page.evaluate(Self.cursorScript, deadline: deadline), !found.isEmpty else {
            return [:]
        }
        defer {
            _ = try? page.evaluate("document.querySelectorAll('[\(Self.cursorMark)]').forEach((e) => e.removeAttribute('\(Self.cursorMark)'))",
                                   deadline: Deadline(ms: 2000))
        }
        guard let document = try? page.call("DOM.getDocument", ["depth": .number(0)], timeoutMs: deadline.remaining),
              let root = document["root"]?["nodeId"]?.numberValue,
              let marked = try? page.call("DOM.querySelectorAll", ["nodeId": .number(root), "selector": .string("[\(Self.cursorMark)]")],
                                          timeoutMs: deadline.remaining) else { return [:] }
        var hits: [Int: Snapshot.CursorHit] = [:]
        for nodeId in marked["nodeIds"]?.arrayValue ?? [] where deadline.remaining > 100 {
            guard let described = try? page.call("DOM.describeNode", ["nodeId": nodeId], timeoutMs: deadline.remaining),
                  let backend = described["node"]?["backendNodeId"]?.intValue,
                  let attributes = described["node"]?["attributes"]?.arrayValue?.compactMap(\.stringValue),
                  let at = attributes.firstIndex(of: Self.cursorMark), at + 1 < attributes.count,
                  let index = Int(attributes[at + 1]), found.indices.contains(index),
                  let reasons = found[index]["reasons"]?.arrayValue?.compactMap(\.stringValue) else { continue }
            hits[backend] = Snapshot.CursorHit(reasons: reasons, text: found[index]["text"]?.stringValue ?? "")
        }
        return hits
    }

    /// Each link's `href` as the page resolves it (`DOM.resolveNode` + `Runtime.callFunctionOn`);
    /// the remote objects are released together afterwards.
    func resolveLinkTargets(_ nodes: [Snapshot.Node], _ page: PageSession, deadline: Deadline) -> [Snapshot.Node] {
        let group = "openclaw-node-urls"
        defer { _ = try? page.call("Runtime.releaseObjectGroup", ["objectGroup": .string(group)], timeoutMs: 2000) }
        return nodes.map { node in
            guard node.role.lowercased() == "link", let backend = node.backendNodeId, deadline.remaining > 200,
                  let resolved = try? page.call("DOM.resolveNode", ["backendNodeId": .number(Double(backend)), "objectGroup": .string(group)],
                                                timeoutMs: deadline.remaining),
                  let objectId = resolved["object"]?["objectId"]?.stringValue,
                  let answer = try? page.call("Runtime.callFunctionOn", [
                      "objectId": .string(objectId), "returnByValue": .bool(true),
                      "functionDeclaration": .string("function() { return typeof this.href === 'string' ? this.href : (this.href && this.href.baseVal) || ''; }"),
                  ], timeoutMs: deadline.remaining),
                  let href = answer["result"]?["value"]?.stringValue else { return node }
            var node = node
            node.url = href
            return node
        }
    }

    /// The ref's DOM node, or an error telling the caller to take a new snapshot.
    func backendNode(_ profile: BrowserService.Profile, _ targetId: String, ref raw: String) throws(BrowserError) -> Int {
        let ref = Snapshot.normalizeRef(raw)
        guard let entry = profile.refs[targetId]?[ref] else {
            throw BrowserError("Unknown ref \"\(ref)\". Run a new snapshot and use a ref from that snapshot.", status: 400)
        }
        guard let node = entry.backendNodeId else {
            throw BrowserError("ref \"\(ref)\" has no DOM node; take a new snapshot", status: 400)
        }
        return node
    }
}
