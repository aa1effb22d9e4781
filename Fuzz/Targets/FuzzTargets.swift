import CFuzzDriver
import Glibc

// The targets reach internals of the node's modules (`@testable`), which only a debug build
// exposes: scripts/fuzz builds in debug; a release build (`swift build -c release`, the .deb)
// gets a stub that says so.
#if DEBUG
@testable import BrowserWorkerCore
import GatewayProtocol
import NIOCore
import NodeSupport
@testable import OpenClawIPC
@testable import SupervisorCore

/// Every parser that sees bytes from another process or the network, as libFuzzer targets
/// (issue 14). Each takes arbitrary bytes, must never crash or hang, and checks the
/// invariants its parser promises (round trips, idempotence). One binary holds them all;
/// `FUZZ_TARGET` picks one (`scripts/fuzz` sets it).
enum FuzzTargets {
    static let all: [String: ([UInt8]) -> Void] = [
        "ipc-frames": ipcFrames,
        "ipc-messages": ipcMessages,
        "json": json,
        "gateway-frames": gatewayFrames,
        "system-run-request": systemRunRequest,
        "shell-analysis": shellAnalysis,
        "approvals-file": approvalsFile,
        "cdp": cdp,
        "mcp": mcp,
    ]

    /// The IPC frame splitter over arbitrary bytes, in arbitrary chunks, then every body it
    /// yields through each message decoder.
    static func ipcFrames(_ bytes: [UInt8]) {
        var splitter = FrameSplitter(maxBody: 1 << 16)
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        splitter.append(contentsOf: bytes[..<cut])
        splitter.append(contentsOf: bytes[cut...])
        var frames = 0
        while frames < 64, let body = try? splitter.next() {
            frames += 1
            decodeAll(body)
        }
        _ = try? splitter.finish()
    }

    /// One message body through the direct reader and the `Codable` path of every message
    /// family; what decodes re-encodes to a body that decodes to the same message.
    static func ipcMessages(_ bytes: [UInt8]) {
        decodeAll(ByteBuffer(bytes: bytes))
    }

    static func decodeAll(_ body: ByteBuffer) {
        roundTrip(body, NetToSupervisor.self)
        roundTrip(body, SupervisorToNet.self)
        roundTrip(body, ExecToSupervisor.self)
        roundTrip(body, SupervisorToExec.self)
        roundTrip(body, BrowserToSupervisor.self)
        roundTrip(body, SupervisorToBrowser.self)
        roundTrip(body, McpToSupervisor.self)
        roundTrip(body, SupervisorToMcp.self)
    }

    static func roundTrip<M: IPCMessage & Equatable>(_ body: ByteBuffer, _ type: M.Type) {
        // The direct reader and the `Codable` path read the same message from the same text
        // (canonical text: the two disagree on duplicate keys by design).
        if let value = try? JSONValue.parse(Array(body.readableBytesView)) {
            let canonical = value.serialized()
            if let direct = IPCCodec.decodeDirect(canonical, as: M.self), let codable = try? IPCCodec.decodeCodable(canonical, as: M.self),
               direct != codable {
                fatalError("the direct reader and Codable disagree on a \(M.self): \(direct) vs \(codable)")
            }
        }
        guard let message = try? IPCCodec.decode(body, as: M.self) else { return }
        guard let again = try? IPCCodec.encode(message) else { fatalError("a decoded \(M.self) does not encode") }
        let reread = try? IPCCodec.decode(again, as: M.self)
        // Messages carrying ±Infinity (read as JavaScript does) come back with null there.
        if reread != message, "\(message)".contains("inf") == false {
            fatalError("\(M.self) does not survive a round trip: \(message) vs \(String(describing: reread))")
        }
    }

    /// The JSON reader and writer: serialising is idempotent, and the `Codable` path agrees
    /// with the direct reader on whether a text is JSON.
    static func json(_ bytes: [UInt8]) {
        guard let value = try? JSONValue.parse(bytes) else { return }
        let text = value.serialized()
        guard let reread = try? JSONValue.parse(text) else { fatalError("the writer produced unreadable JSON: \(text)") }
        guard reread.serialized() == text else { fatalError("serialising is not idempotent") }
    }

    /// A gateway frame as the NetWorker reads it: parse, classify, and for invokes the
    /// coercion (and the id recovery for frames that are not JSON).
    static func gatewayFrames(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let frame = try? JSONValue.parse(Array(text.utf8)) else {
            if let (id, _) = GatewayFrames.unreadableInvoke(text), id.isEmpty { fatalError("an empty id was recovered") }
            return
        }
        switch GatewayFrames.invokeRequest(from: frame["payload"]) {
        case let .success(request):
            if request.id.isEmpty || request.nodeId.isEmpty || request.command.isEmpty { fatalError("an invoke without ids passed") }
            if let timeout = request.timeoutMs, timeout < 0 { fatalError("negative timeout") }
        case let .failure(rejection):
            if !rejection.message.hasPrefix("INVALID_REQUEST: ") { fatalError("rejection without a code: \(rejection.message)") }
        }
        _ = GatewayFrames.rejection(from: frame["error"])
    }

    /// `paramsJSON` → `SystemRunRequest`, the plan reader and the approval binding.
    static func systemRunRequest(_ bytes: [UInt8]) {
        let invoke = InvokeRequest(id: "f", nodeId: "n", command: "system.run", paramsJSON: String(decoding: bytes, as: UTF8.self),
                                   timeoutMs: nil, idempotencyKey: nil)
        guard case let .success(params) = InvokeParams.object(invoke),
              case let .success(request) = SystemRunRequest.parse(params, newRunId: { "run" }) else { return }
        if request.command.contains(where: { $0.utf8.contains(0) }) || request.cwd?.utf8.contains(0) == true
            || request.env.contains(where: { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }) {
            fatalError("a NUL byte reached a parsed request")
        }
        _ = request.checkApprovalBinding()
        _ = ExecEnvironment.inspect(request.env)
        if let plan = request.plan { _ = SystemRunPlan(json: plan.json) }
    }

    /// A shell payload through the parser and the allowlist analysis; argv words through the
    /// wrapper and interpreter recognisers. Parsed payloads render back to the same commands.
    static func shellAnalysis(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if case let .success(segments) = ShellPayloadParser.analyze(text) {
            let rendered = ShellPayloadParser.render(segments)
            guard case let .success(again) = ShellPayloadParser.analyze(rendered), again.map(\.argv) == segments.map(\.argv) else {
                fatalError("a parsed payload does not render back to itself: \(text)")
            }
            for segment in segments { _ = ShellBuiltins.refusal(segment) }
            // The binding reader reads at least what the strict one does, and the same commands.
            guard case let .success(commands) = ShellPayloadParser.analyzeCommands(text),
                  commands.map(\.argv) == segments.map(\.argv) else {
                fatalError("the binding reader disagrees with the strict one on: \(text)")
            }
        }
        _ = ScriptOperand.payloadNeedsNoBinding(text, cwd: "/nonexistent", pathEnv: "/nonexistent")
        let words = text.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
        _ = DispatchWrappers.unwrap(words)
        _ = ShellWrapper.analyze(words)
        _ = ShellWrapper.bindablePayload(words)
        _ = InlineEval.detect(words)
        _ = ScriptOperand.program(of: words, cwd: "/nonexistent", pathEnv: "/nonexistent")
        _ = AllowlistGlob.matches(pattern: words.first ?? "", path: words.last ?? "", home: "/home/u")
        _ = AllowlistEvaluation.evaluate(argv: ["/bin/sh", "-c", text], cwd: nil, pathEnv: "/usr/bin:/bin", home: nil,
                                         allowlist: ["/usr/bin/*"], safeBins: SafeBinPolicy(), skillBins: [])
    }

    /// `exec-approvals.json` (and a `system.execApprovals.set` payload): normalising what was
    /// normalised changes nothing.
    static func approvalsFile(_ bytes: [UInt8]) {
        guard let json = try? JSONValue.parse(bytes) else { return }
        var counter = 0
        let makeID = { () -> String in counter += 1; return "id-\(counter)" }
        let file = ExecApprovalsFile(normalizing: json, requireVersion: true, makeID: makeID)
        let again = ExecApprovalsFile(normalizing: file.jsonValue, requireVersion: true, makeID: makeID)
        guard again == file else { fatalError("normalising is not idempotent") }
        _ = ExecApprovalsFile(normalizing: json, requireVersion: false, makeID: makeID)
    }

    /// What the BrowserWorker reads from Chromium: WebSocket frames, and snapshots built from
    /// accessibility trees a page controls.
    static func cdp(_ bytes: [UInt8]) {
        var decoder = CDPWebSocketFrame.Decoder()
        decoder.append(bytes)
        var count = 0
        while count < 64, let frame = try? decoder.next() {
            count += 1
            guard case let .text(payload) = frame, case let .object(message)? = try? JSONValue.parse(payload) else { continue }
            let nodes = Snapshot.nodes(from: message["result"]?.objectValue ?? message)
            _ = Snapshot.aria(nodes, limit: 50)
            _ = Snapshot.role(nodes, options: Snapshot.RoleOptions(interactive: bytes.count % 2 == 0, urls: true, compact: true,
                                                                 depth: 4, maxChars: 2000))
        }
    }
}

extension FuzzTargets {
    /// What an MCP server controls, as the Supervisor reads it: a `tools/call` result through
    /// upstream's bounds (the payload stays within 20 MB plus the marker, and bounding it
    /// again changes nothing), and a tool listing through the catalogue (provider-safe,
    /// unique names within 64 characters, at most 128); and any text as a server's error,
    /// through upstream's diagnostic redaction and cut (never more than 1024 UTF-16 units).
    static func mcp(_ bytes: [UInt8]) {
        let diagnostic = truncateUTF16(SecretRedaction.diagnostic(String(decoding: bytes, as: UTF8.self)), 1024)
        guard diagnostic.utf16.count <= 1024 else { fatalError("diagnostic over 1024 units") }
        guard let json = try? JSONValue.parse(bytes) else { return }
        let payload = McpResultShaping.payload(json)
        guard McpResultShaping.bytes(payload) <= McpResultShaping.maxPayloadBytes + 128 else { fatalError("payload over its bound") }
        guard McpResultShaping.payload(payload) == payload || payload["content"]?.arrayValue?.last == McpResultShaping.payloadMarker else {
            fatalError("bounding is not idempotent")
        }
        let tools = (json["tools"]?.arrayValue ?? []).compactMap { entry -> McpTool? in
            guard let name = entry["name"]?.stringValue else { return nil }
            return McpTool(name: name, description: entry["description"]?.stringValue, inputSchema: entry["inputSchema"],
                           taskRequired: entry["execution"]?["taskSupport"]?.stringValue == "required")
        }
        let callable = McpCatalog.callable(tools, filter: McpToolFilter(include: json["include"]?.arrayValue?.compactMap(\.stringValue) ?? []))
        let (descriptors, _) = McpCatalog.descriptors(callable.map { (server: json["server"]?.stringValue ?? "s", tool: $0) })
        var seen: Set<String> = []
        for descriptor in descriptors {
            let name = descriptor.name
            guard name.count <= 64, name.first.map({ $0.isASCII && $0.isLetter }) == true,
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }),
                  seen.insert(name.lowercased()).inserted else { fatalError("unsafe descriptor name \(name)") }
        }
        guard descriptors.count <= 128 else { fatalError("catalogue over 128") }
    }
}

/// libFuzzer's own `main` (linked with its runtime, unused: SwiftPM points `main` at ours)
/// names this symbol; it serves the same target as the driver's callback.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzMain.selected(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// `FUZZ_TARGET=<target> openclaw-fuzz [libFuzzer flags] [corpus dirs]` in the sanitizer build
/// (scripts/fuzz); in a plain build, `openclaw-fuzz <target> <file>…` replays files, which is
/// how the corpus and crash reproducers are re-run without sanitizers.
@main
struct FuzzMain {
    nonisolated(unsafe) static var selected: ([UInt8]) -> Void = { _ in }

    static func main() {
        if let name = getenv("FUZZ_TARGET").map({ String(cString: $0) }) {
            guard let target = FuzzTargets.all[name] else { usage() }
            selected = target
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            let status = openclaw_fuzz_run(&argc, &argv) { data, size in fuzzOneInput(data, size) }
            guard status >= 0 else {
                fputs("openclaw-fuzz: built without libFuzzer; use scripts/fuzz, or replay files: openclaw-fuzz <target> <file>...\n", stderr)
                exit(64)
            }
            exit(status)
        }
        replay(Array(CommandLine.arguments.dropFirst()))
    }

    static func usage() -> Never {
        fputs("usage: openclaw-fuzz <\(FuzzTargets.all.keys.sorted().joined(separator: "|"))> <file>...\n", stderr)
        exit(64)
    }

    static func replay(_ arguments: [String]) {
        guard let name = arguments.first, let target = FuzzTargets.all[name] else { usage() }
        var replayed = 0
        for path in arguments.dropFirst() {
            guard let file = fopen(path, "rb") else { fputs("cannot open \(path)\n", stderr); exit(66) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = fread(&chunk, 1, chunk.count, file)
                if count <= 0 { break }
                bytes += chunk[0..<count]
            }
            fclose(file)
            target(bytes)
            replayed += 1
        }
        print("\(name): replayed \(replayed) inputs")
    }
}
#else
@main
struct FuzzMain {
    static func main() {
        fputs("openclaw-fuzz is built in the debug configuration only: scripts/fuzz\n", stderr)
        exit(64)
    }
}
#endif
