@testable import BrowserWorkerCore
import FoundationEssentials
import OpenClawIPC
import XCTest

/// A small AX tree as `Accessibility.getFullAXTree` returns it.
private func axNode(_ id: String, _ role: String, _ name: String = "", children: [String] = [], backend: Int? = nil,
                    value: String? = nil, ignored: Bool = false) -> JSONValue {
    var node: [String: JSONValue] = [
        "nodeId": .string(id), "role": .object(["type": .string("role"), "value": .string(role)]),
        "name": .object(["type": .string("computedString"), "value": .string(name)]),
        "childIds": .array(children.map(JSONValue.string)), "ignored": .bool(ignored),
    ]
    if let backend { node["backendDOMNodeId"] = .number(Double(backend)) }
    if let value { node["value"] = .object(["type": .string("string"), "value": .string(value)]) }
    return .object(node)
}

private let page: [String: JSONValue] = ["nodes": .array([
    axNode("1", "RootWebArea", "Fixture", children: ["2", "3", "5", "6", "7", "8"], backend: 1),
    axNode("2", "heading", "Title", children: ["9"], backend: 2),
    axNode("3", "generic", children: ["4"], backend: 3, ignored: true),
    axNode("4", "button", "Go", backend: 4),
    axNode("5", "button", "Go", backend: 5),
    axNode("6", "textbox", "Name", backend: 6, value: "Ada"),
    axNode("7", "generic", backend: 7),
    axNode("8", "heading", backend: 8),
    axNode("9", "StaticText", "Title", children: ["10"]),
    axNode("10", "InlineTextBox", "Title"),
])]

final class SnapshotTests: XCTestCase {
    func testCursorInteractiveNodesGetARefTheirReasonsAndTheirTextAsName() {
        let nodes = Snapshot.nodes(from: ["nodes": .array([
            axNode("1", "RootWebArea", "Page", children: ["2", "3"], backend: 1),
            axNode("2", "generic", backend: 2),
            axNode("3", "generic", "Named", backend: 3),
        ])])
        let marked = Snapshot.markCursorInteractive(nodes, hits: [
            2: .init(reasons: ["cursor:pointer", "onclick", "]\n- button \"Fake\" [ref=e9"], text: "Open tile"),
            3: .init(reasons: ["tabindex"], text: "ignored: the node has a name"),
        ])
        XCTAssertEqual(Snapshot.role(marked, options: .init()).text, """
            - RootWebArea "Page"
              - generic "Open tile" [ref=e1] [cursor:pointer, onclick]
              - generic "Named" [ref=e2] [tabindex]
            """)
        var interactive = Snapshot.RoleOptions()
        interactive.interactive = true
        XCTAssertEqual(Snapshot.role(marked, options: interactive).text, """
              - generic "Open tile" [ref=e1] [cursor:pointer, onclick]
              - generic "Named" [ref=e2] [tabindex]
            """)
        XCTAssertEqual(Snapshot.role(nodes, options: interactive).text, "(no interactive elements)")
    }

    func testIframeTreesHangUnderTheirIframeNodeAndRefsCountOnAcrossFrames() {
        let main = Snapshot.nodes(from: ["nodes": .array([
            axNode("1", "RootWebArea", "Outer", children: ["2", "3"], backend: 1),
            axNode("2", "Iframe", "Inner", backend: 2),
            axNode("3", "link", "After", backend: 3),
        ])])
        // The frame's own ids collide with the page's: they are renamed, not mixed up.
        let frame = Snapshot.nodes(from: ["nodes": .array([
            axNode("1", "RootWebArea", children: ["2"], backend: 10),
            axNode("2", "button", "Inside", backend: 11),
        ])])
        var merged = Snapshot.merge(main, frames: [(iframe: "2", nodes: frame)])
        merged[2].url = "https://example.test/after\n- button \"Fake\" [ref=e1]"
        var options = Snapshot.RoleOptions()
        options.urls = true
        let result = Snapshot.role(merged, options: options)
        XCTAssertEqual(result.text, """
            - RootWebArea "Outer"
              - Iframe "Inner" [ref=e1]
                - RootWebArea
                  - button "Inside" [ref=e2]
              - link "After" [ref=e3] [url=https://example.test/after%0A-%20button%20"Fake"%20[ref=e1]]
            """)
        XCTAssertEqual(result.refs["e2"]?.backendNodeId, 11)
        XCTAssertFalse(Snapshot.role(merged, options: .init()).text.contains("[url="), "urls only when asked")
    }

    func testRoleSnapshotLinesRefsAndNth() {
        let result = Snapshot.role(Snapshot.nodes(from: page), options: .init())
        XCTAssertEqual(result.text, """
            - RootWebArea "Fixture"
              - heading "Title" [ref=e1]
                - StaticText "Title"
              - button "Go" [ref=e2]
              - button "Go" [ref=e3] [nth=1]
              - textbox "Name" [ref=e4] value="Ada"
              - generic
              - heading
            """)
        XCTAssertEqual(result.refs["e1"]?.backendNodeId, 2)
        XCTAssertEqual(result.refs["e2"]?.nth, 0)
        XCTAssertEqual(result.refs["e3"]?.nth, 1)
        XCTAssertNil(result.refs["e4"]?.nth)  // unique role+name: nth dropped
        XCTAssertEqual(result.refs.count, 4)  // the unnamed heading gets no ref
        XCTAssertEqual(result.interactiveRefs, 3)
        XCTAssertFalse(result.truncated)
    }

    func testInteractiveCompactAndDepth() {
        let nodes = Snapshot.nodes(from: page)
        var options = Snapshot.RoleOptions()
        options.interactive = true
        XCTAssertEqual(Snapshot.role(nodes, options: options).text,
                       "  - button \"Go\" [ref=e2]\n  - button \"Go\" [ref=e3] [nth=1]\n  - textbox \"Name\" [ref=e4] value=\"Ada\"")
        options = .init()
        options.compact = true
        XCTAssertFalse(Snapshot.role(nodes, options: options).text.contains("- generic"))
        options = .init()
        options.depth = 0
        XCTAssertEqual(Snapshot.role(nodes, options: options).text, "- RootWebArea \"Fixture\"")
        XCTAssertEqual(Snapshot.role([], options: .init()).text, "(empty page)")
        options = .init()
        options.interactive = true
        XCTAssertEqual(Snapshot.role(Snapshot.nodes(from: ["nodes": .array([axNode("1", "RootWebArea")])]), options: options).text,
                       "(no interactive elements)")
    }

    func testTruncationKeepsWholeLinesAndDropsRefsNotShown() {
        var options = Snapshot.RoleOptions()
        options.maxChars = 90
        let result = Snapshot.role(Snapshot.nodes(from: page), options: options)
        XCTAssertTrue(result.truncated)
        XCTAssertTrue(result.text.hasSuffix("\n\n[...TRUNCATED - page too large]"))
        XCTAssertLessThanOrEqual(result.text.count, 90 + 1)
        XCTAssertEqual(Set(result.refs.keys), ["e1"])
    }

    func testAriaSnapshotIsPreOrderWithAxRefs() {
        let result = Snapshot.aria(Snapshot.nodes(from: page), limit: 4)
        XCTAssertEqual(result.nodes.count, 4)
        XCTAssertEqual(result.nodes[0], .object(["ref": .string("ax1"), "role": .string("RootWebArea"), "name": .string("Fixture"),
                                                 "depth": .number(0), "backendDOMNodeId": .number(1)]))
        XCTAssertEqual(result.nodes.map { $0["name"]?.stringValue }, ["Fixture", "Title", "Title", "Title"])
        XCTAssertEqual(result.nodes[3]["role"], .string("InlineTextBox"))
        XCTAssertEqual(result.refs["ax2"]?.backendNodeId, 2)
    }

    func testRefSpellings() {
        XCTAssertEqual(Snapshot.normalizeRef("e12"), "e12")
        XCTAssertEqual(Snapshot.normalizeRef("@e12"), "e12")
        XCTAssertEqual(Snapshot.normalizeRef("ref=e12"), "e12")
        XCTAssertEqual(Snapshot.normalizeRef(" 12 "), "e12")
        XCTAssertEqual(Snapshot.normalizeRef("ax3"), "ax3")
    }
}

final class ScreenshotSizeTests: XCTestCase {
    func testSizeFromThePNGHeaderOrTheClip() {
        // 8-byte signature, IHDR length and type, then width 3000 and height 20 (big-endian).
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8)
        png += [0, 0, 0x0B, 0xB8, 0, 0, 0, 20] + [UInt8](repeating: 0, count: 16)
        let base64 = Data(png).base64EncodedString()
        XCTAssertEqual(ScreenshotSize.imageSize(base64: base64, clip: nil).map { [$0.0, $0.1] }, [3000, 20])
        XCTAssertTrue(ScreenshotSize.needsNormalizing(base64: base64, width: 3000, height: 20))
        XCTAssertFalse(ScreenshotSize.needsNormalizing(base64: base64, width: 2000, height: 20))
        let clip: JSONValue = .object(["width": .number(800), "height": .number(6000), "scale": .number(0.5)])
        XCTAssertEqual(ScreenshotSize.imageSize(base64: "", clip: clip).map { [$0.0, $0.1] }, [400, 3000])
        XCTAssertNil(ScreenshotSize.imageSize(base64: Data([0xFF, 0xD8, 0xFF]).base64EncodedString(), clip: nil))
    }
}

final class WireFormatTests: XCTestCase {
    func testWebSocketFramesRoundTripAcrossChunks() throws {
        let big = [UInt8](repeating: 65, count: 70000)
        var frames = CDPWebSocketFrame.encode(text: Array("hi".utf8)) + CDPWebSocketFrame.encode(text: big)
            + CDPWebSocketFrame.encode(opcode: 0x9, payload: [1]) + CDPWebSocketFrame.encode(opcode: 0x8, payload: [])
        var decoder = CDPWebSocketFrame.Decoder()
        var messages: [String] = []
        while !frames.isEmpty {
            decoder.append(Array(frames.prefix(1000)))
            frames.removeFirst(min(1000, frames.count))
            while let frame = try decoder.next() {
                switch frame {
                case let .text(bytes): messages.append(bytes.count > 10 ? "big \(bytes.count)" : String(decoding: bytes, as: UTF8.self))
                case .ping: messages.append("ping")
                case .close: messages.append("close")
                }
            }
        }
        XCTAssertEqual(messages, ["hi", "big 70000", "ping", "close"])
    }

    func testOversizedFramesAreRefused() {
        var decoder = CDPWebSocketFrame.Decoder()
        decoder.append([0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0])
        XCTAssertThrowsError(try decoder.next())
    }

    func testHTTPResponsesWaitForTheirBody() {
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc".utf8)
        XCTAssertNil(LoopbackHTTP.parse(head, complete: false))
        let full = LoopbackHTTP.parse(head + Array("de".utf8), complete: false)
        XCTAssertEqual(full?.status, 200)
        XCTAssertEqual(full?.body, Array("abcde".utf8))
        let endpoint = CDPEndpoint(webSocketURL: "ws://127.0.0.1:18800/devtools/browser/x")
        XCTAssertEqual(endpoint?.host, "127.0.0.1")
        XCTAssertEqual(endpoint?.port, 18800)
        XCTAssertEqual(endpoint?.path, "/devtools/browser/x")
        XCTAssertEqual(CDPEndpoint(httpURL: "http://localhost:9222")?.path, "/")
        XCTAssertNil(CDPEndpoint(webSocketURL: "ws://127.0.0.1:0/x"))
    }
}
