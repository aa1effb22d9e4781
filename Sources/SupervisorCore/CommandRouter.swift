import FoundationEssentials
import Glibc
import OpenClawIPC

/// What answering one invoke produced: `node.event`s to send first, then the result.
public struct InvokeOutput: Equatable, Sendable {
    public var events: [NodeEvent]
    public var result: InvokeResult

    public init(events: [NodeEvent] = [], result: InvokeResult) {
        self.events = events
        self.result = result
    }
}

/// One invoke's cancellation, as its handler sees it. The gateway cancelled it
/// (`node.invoke.cancel`), a redelivery of its id replaced it, or the connection it came on is
/// gone (upstream's `cancelAll`). A handler registers what stops its work (a queued or running
/// command); what it produces afterwards is not published.
public final class InvokeCancellation {
    public private(set) var isCancelled = false
    private var actions: [() -> Void] = []

    public init() {}

    /// Runs `action` on cancellation (at once when already cancelled).
    public func onCancel(_ action: @escaping () -> Void) {
        if isCancelled { action() } else { actions.append(action) }
    }

    public func cancel() {
        guard !isCancelled else { return }
        isCancelled = true
        let pending = actions
        actions = []
        for action in pending { action() }
    }
}

/// A command the node implements.
public protocol CommandHandler: AnyObject {
    /// The wire names this handler answers (`system.which`, …), known without an instance
    /// (the surface `doctor` shows).
    static var wireCommands: [String] { get }
    /// Caps the handler adds beyond its role's, each with the command that carries it
    /// (`system.run.execution-context.v1` with `system.run`).
    static var commandCaps: [(cap: String, command: String)] { get }
    /// Handles one invoke; calls `completion` exactly once (after a cancellation too: the
    /// caller drops what it says).
    func handle(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void)
}

/// What the node advertises in `connect`: its commands in the order `run` registers their
/// handlers, and its caps. `status` and `doctor` show it; `run` logs it once at start.
public struct CommandSurface: Codable, Equatable, Sendable {
    public var commands: [String]
    public var caps: [String]

    public init(commands: [String], caps: [String]) {
        self.commands = commands
        self.caps = caps
    }

    /// The surface of a node whose `browser.proxy` is advertised or not (`doctor`, without a
    /// running node to ask).
    public static func configured(browserProxy: Bool) -> CommandSurface {
        CommandSurface(
            commands: WhichHandler.wireCommands + SystemRunHandler.wireCommands + ExecApprovalsHandler.wireCommands
                + (browserProxy ? BrowserProxyHandler.wireCommands : []) + FilesHandler.wireCommands + McpToolsHandler.wireCommands,
            caps: ["system"] + SystemRunHandler.commandCaps.map(\.cap) + (browserProxy ? ["browser"] : []) + ["mcp"])
    }

    /// upstream's refusal of a `--commands` allowlist that keeps none of `available` (nil: it
    /// keeps some).
    public static func emptyRestriction(_ ids: [String], available: [String]) -> String? {
        guard !ids.contains(where: available.contains) else { return nil }
        let requested = ids.isEmpty ? "(empty allowlist)" : ids.sorted().joined(separator: ", ")
        return "Node command allowlist retained no available commands. Unknown or unavailable ids: \(requested). "
            + "Check --commands and enable the plugin that provides each command."
    }

    /// Upstream's start-up line.
    public var logLine: String { "node-host: advertised commands: \(commands.joined(separator: ", "))" }
}

extension CommandHandler {
    var commands: [String] { Self.wireCommands }
    public static var commandCaps: [(cap: String, command: String)] { [] }
}

/// Dispatches invokes to handlers by command name; unknown commands get upstream's answer.
public final class CommandRouter {
    private var handlers: [String: CommandHandler] = [:]
    private var order: [String] = []
    public private(set) var caps: [String] = ["system"]
    /// The advertised commands each cap stands for (a restricted surface keeps a cap only
    /// with one of them).
    private var capCommands: [String: [String]] = [:]
    /// `--commands`: the only commands advertised and served (nil: the full surface).
    public private(set) var allowlist: Set<String>?

    public init() {}

    /// Adds `handler`; `advertised: false` answers its commands without announcing them in
    /// `connect` (a disabled `browser.proxy` still answers why). `cap` is announced with it.
    public func register(_ handler: CommandHandler, advertised: Bool = true, cap: String? = nil) {
        for command in handler.commands where handlers[command] == nil {
            if advertised {
                order.append(command)
                capCommands[cap ?? "system", default: []].append(command)
            }
            handlers[command] = handler
        }
        if advertised, let cap, !caps.contains(cap) { caps.append(cap) }
        for (cap, command) in type(of: handler).commandCaps where advertised && !caps.contains(cap) {
            caps.append(cap)
            capCommands[cap, default: []].append(command)
        }
    }

    /// Advertises and serves only `ids` (exact ids; unknown ones are dropped, as upstream):
    /// the commands sorted, each cap kept only with one of its commands. Every other command
    /// is refused, whoever sends it (`CommandSurface.emptyRestriction` refuses, before any
    /// worker starts, an allowlist that keeps nothing).
    public func restrict(to ids: [String]) {
        let kept = order.filter(ids.contains).sorted()
        allowlist = Set(kept)
        order = kept
        caps = caps.filter { capCommands[$0, default: []].contains(where: kept.contains) }
    }

    /// Whether a handler answers `command` (advertised or not).
    public func serves(_ command: String) -> Bool { handlers[command] != nil }

    /// The commands advertised in `connect`, in registration order.
    public var commands: [String] { order }

    public var surface: CommandSurface { CommandSurface(commands: commands, caps: caps) }

    public func route(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        if let allowlist, !allowlist.contains(request.command) {
            completion(InvokeOutput(result: .failure(request, code: "UNAVAILABLE", message: "command not advertised by this node")))
            return
        }
        guard let handler = handlers[request.command] else {
            completion(InvokeOutput(result: .failure(request, code: "UNAVAILABLE", message: "command not supported")))
            return
        }
        handler.handle(request, cancellation: cancellation, completion: completion)
    }
}

extension InvokeResult {
    public static func success(_ request: InvokeRequest, payloadJSON: String) -> InvokeResult {
        var result = InvokeResult(id: request.id, nodeId: request.nodeId, ok: true, payloadJSON: payloadJSON, error: nil)
        result.serial = request.serial
        return result
    }

    public static func failure(_ request: InvokeRequest, code: String, message: String) -> InvokeResult {
        var result = InvokeResult(id: request.id, nodeId: request.nodeId, ok: false, payloadJSON: nil,
                                  error: WireError(code: code, message: message))
        result.serial = request.serial
        return result
    }
}

/// Parses `paramsJSON` into an object, with upstream's error texts.
enum InvokeParams {
    static func object(_ request: InvokeRequest) -> Result<[String: JSONValue], WireError> {
        guard let text = request.paramsJSON else {
            return .failure(WireError(code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: paramsJSON required"))
        }
        guard let value = try? JSONText.decode(JSONValue.self, from: text) else {
            return .failure(WireError(code: "INVALID_REQUEST", message: "SyntaxError: paramsJSON is not valid JSON"))
        }
        guard case let .object(object) = value else {
            return .failure(WireError(code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: params must be an object"))
        }
        return .success(object)
    }

    /// The params object, or nil once `completion` has been answered with why there is none.
    static func object(_ request: InvokeRequest, orAnswer completion: (InvokeOutput) -> Void) -> [String: JSONValue]? {
        switch object(request) {
        case let .success(object):
            return object
        case let .failure(error):
            completion(InvokeOutput(result: .failure(request, code: error.code, message: error.message)))
            return nil
        }
    }
}

/// `system.which`: where each named program is on the node's PATH (node-host.md §6).
public final class WhichHandler: CommandHandler {
    public static let wireCommands = ["system.which"]
    let pathEnv: String

    public init(pathEnv: String) {
        self.pathEnv = pathEnv
    }

    public func handle(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        guard let params = InvokeParams.object(request, orAnswer: completion) else { return }
        guard case let .array(names)? = params["bins"] else {
            completion(InvokeOutput(result: .failure(request, code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: bins required")))
            return
        }
        var found: [String: String] = [:]
        for case let .string(raw) in names {
            let name = raw.trimmingWhitespace()
            // A NUL would end the name early in access(2): "sh\0x" must not be found as "sh".
            guard !name.isEmpty, !name.contains("/"), !name.contains("\\"), !name.utf8.contains(0) else { continue }
            if let path = Self.locate(name, in: pathEnv) { found[name] = path }
        }
        let payload = (try? JSONText.encode(["bins": found])) ?? "{\"bins\":{}}"
        completion(InvokeOutput(result: .success(request, payloadJSON: payload)))
    }

    /// The first `dir/name` that exists, PATH order (existence only, like upstream).
    static func locate(_ name: String, in pathEnv: String) -> String? {
        for directory in pathEnv.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, F_OK) == 0 { return candidate }
        }
        return nil
    }
}
