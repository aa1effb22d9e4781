import OpenClawIPC

/// A `system.run` / `system.run.prepare` request after validation (node-host.md §3.1).
///
/// `command` is authoritative; `rawCommand`, when present, has already been checked to be
/// its canonical text. Optional strings are trimmed and empty counts as absent.
public struct SystemRunRequest: Equatable, Sendable {
    public enum ApprovalDecision: String, Sendable {
        case allowOnce = "allow-once"
        case allowAlways = "allow-always"
    }

    public var command: [String]
    /// `formatExecCommand(command)`: what an approval plan binds.
    public var commandText: String
    /// What events and the audit log show: `rawCommand` when sent, else the shell payload when
    /// it may stand for the command (`ShellWrapper.bindablePayload`), else `commandText`.
    public var displayText: String
    public var cwd: String?
    public var env: [String: String]
    public var timeoutMs: Int?
    public var needsScreenRecording: Bool
    public var agentId: String?
    /// `sessionKey` as sent (trimmed, empty = absent); events use `sessionKey`.
    public var requestedSessionKey: String?
    public var sessionKey: String { requestedSessionKey ?? "node" }
    public var runId: String
    public var approved: Bool
    public var approvalDecision: ApprovalDecision?
    /// `approvalSource: "ask-fallback"`: the gateway's ask timed out and its fallback applies.
    public var askFallback: Bool
    public var plan: SystemRunPlan?
    /// Present but not a usable plan.
    public var planInvalid: Bool
    public var suppressNotifyOnExit: Bool?
    /// Routing hints (`system.run.execution-context.v1`); no authority.
    public var executionContext: ExecutionContext? = nil

    /// "A human or the fallback approved this" (`approvedByAsk`).
    public var approvedByAsk: Bool { approved || approvalDecision != nil }

    /// Parses params; the error is the `INVALID_REQUEST` message.
    public static func parse(_ params: [String: JSONValue], newRunId: () -> String) -> Result<SystemRunRequest, WireError> {
        func invalid(_ message: String) -> Result<SystemRunRequest, WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: message))
        }
        let command: [String]
        switch params["command"] {
        case let .array(items)?: command = items.map(\.jsCoercedString)
        case nil, .null?: command = []
        default: return invalid("command required")
        }
        // execve takes C strings: a NUL would end an argument, the cwd or a variable early, and
        // what ran would not be the text that was approved and logged. Upstream's runtime
        // refuses such strings too.
        for (index, word) in command.enumerated() where word.utf8.contains(0) {
            return invalid("INVALID_REQUEST: command[\(index)] contains a NUL character")
        }
        if params["rawCommand"]?.stringValue?.utf8.contains(0) == true {
            return invalid("INVALID_REQUEST: rawCommand contains a NUL character")
        }
        if params["cwd"]?.stringValue?.utf8.contains(0) == true {
            return invalid("INVALID_REQUEST: cwd contains a NUL character")
        }
        let rawCommand = params["rawCommand"]?.stringValue?.trimmingWhitespace() ?? ""
        guard !command.isEmpty else {
            return invalid(rawCommand.isEmpty ? "command required" : "rawCommand requires params.command")
        }
        let commandText = ExecCommandText.format(command)
        let payload = ShellWrapper.bindablePayload(command)
        if !rawCommand.isEmpty, rawCommand != commandText, rawCommand != payload {
            return invalid("INVALID_REQUEST: rawCommand does not match command")
        }
        var env: [String: String] = [:]
        switch params["env"] {
        case nil, .null?: break
        case let .object(object)?:
            for key in object.keys.sorted() {
                guard case let .string(text) = object[key]! else { return invalid("INVALID_REQUEST: env values must be strings (\(key))") }
                if key.utf8.contains(0) { return invalid("INVALID_REQUEST: env key contains a NUL character") }
                if text.utf8.contains(0) { return invalid("INVALID_REQUEST: env.\(key) contains a NUL character") }
                env[key] = text
            }
        default: return invalid("INVALID_REQUEST: env must be an object")
        }
        var timeoutMs: Int?
        switch params["timeoutMs"] {
        case nil, .null?: break
        case let .number(value)?:
            guard value.isFinite else { return invalid("INVALID_REQUEST: timeoutMs must be a number") }
            if value > 0 { timeoutMs = Int(min(value, 7 * 24 * 3_600_000)) }
        default: return invalid("INVALID_REQUEST: timeoutMs must be a number")
        }
        let decision = params["approvalDecision"]?.stringValue.flatMap(ApprovalDecision.init(rawValue:))
        let approved = params["approved"]?.boolValue ?? false
        let askFallback = params["approvalSource"]?.stringValue == "ask-fallback"
        if askFallback, approved || decision != nil {
            return invalid("INVALID_REQUEST: approvalSource cannot be combined with approved or approvalDecision")
        }
        var executionContext: ExecutionContext?
        if let raw = params["executionContext"] {
            guard let context = ExecutionContext(raw) else { return invalid(ExecutionContext.invalidMessage) }
            executionContext = context
        }
        var plan: SystemRunPlan?
        var planInvalid = false
        if let raw = params["systemRunPlan"], raw != .null {
            plan = SystemRunPlan(json: raw)
            planInvalid = plan == nil
        }
        return .success(SystemRunRequest(
            command: command, commandText: commandText, displayText: rawCommand.isEmpty ? payload ?? commandText : rawCommand,
            cwd: params["cwd"]?.trimmedNonEmpty, env: env, timeoutMs: timeoutMs,
            needsScreenRecording: params["needsScreenRecording"]?.boolValue ?? false,
            agentId: params["agentId"]?.trimmedNonEmpty,
            requestedSessionKey: params["sessionKey"]?.trimmedNonEmpty,
            runId: params["runId"]?.trimmedNonEmpty ?? newRunId(),
            approved: approved, approvalDecision: decision, askFallback: askFallback,
            plan: plan, planInvalid: planInvalid,
            suppressNotifyOnExit: params["suppressNotifyOnExit"]?.boolValue,
            executionContext: executionContext
        ))
    }

    /// `executionContext` (`system.run.execution-context.v1`): routing hints of the gateway's
    /// channel (who asked, in which chat, whether a subagent runs it). A closed object with no
    /// authority: it only sets `OPENCLAW_CHANNEL_CONTEXT` / `OPENCLAW_SUBAGENT_EXEC` for the child.
    public struct ExecutionContext: Equatable, Sendable {
        public static let capability = "system.run.execution-context.v1"
        public static let invalidMessage = "executionContext invalid or unsupported"

        public var senderId: String?
        public var chatId: String?
        public var subagent: Bool

        /// upstream's schema: only `senderId`, `chatId` (non-empty strings) and `subagent: true`.
        init?(_ value: JSONValue) {
            guard case let .object(object) = value, Set(object.keys).isSubset(of: ["senderId", "chatId", "subagent"]) else { return nil }
            func text(_ key: String) -> String?? {
                guard let field = object[key] else { return .some(nil) }
                guard let string = field.stringValue, !string.isEmpty else { return nil }
                return .some(string)
            }
            guard let sender = text("senderId"), let chat = text("chatId") else { return nil }
            if let flag = object["subagent"], flag != .bool(true) { return nil }
            senderId = sender
            chatId = chat
            subagent = object["subagent"] != nil
        }

        /// What the child gets (upstream's `buildExecRoutingEnv`); inherited copies are dropped.
        var environment: [String: String] {
            var env: [String: String] = [:]
            var parts: [String] = []
            func quoted(_ text: String) -> String { (try? JSONText.encode(JSONValue.string(text))) ?? "\"\"" }
            if let senderId { parts.append(#""sender":{"id":\#(quoted(senderId))}"#) }
            if let chatId { parts.append(#""chat":{"id":\#(quoted(chatId))}"#) }
            if !parts.isEmpty { env["OPENCLAW_CHANNEL_CONTEXT"] = "{" + parts.joined(separator: ",") + "}" }
            if subagent { env["OPENCLAW_SUBAGENT_EXEC"] = "1" }
            return env
        }
    }

    /// An explicit approval must carry the plan it approved, and the request must be that plan
    /// (node-host.md §4.3 step 5): a forged `approved: true` cannot run anything else.
    public func checkApprovalBinding() -> WireError? {
        guard approvedByAsk else { return nil }
        guard let plan, !planInvalid else { return WireError(code: "INVALID_REQUEST", message: "systemRunPlan invalid") }
        let matches = plan.argv == command && plan.commandText == commandText
            && plan.cwd == cwd && plan.agentId == agentId && plan.sessionKey == requestedSessionKey
        return matches ? nil : WireError(code: "INVALID_REQUEST", message: "explicit approval requires matching systemRunPlan")
    }
}

extension JSONValue {
    /// JavaScript `String(x)` for the scalars a caller may put in `command`.
    var jsCoercedString: String {
        switch self {
        case let .string(text): return text
        case let .number(value): return value.javaScriptString
        case let .bool(flag): return flag ? "true" : "false"
        case .null: return "null"
        case .array(let items): return items.map(\.jsCoercedString).joined(separator: ",")
        case .object: return "[object Object]"
        }
    }

    var trimmedNonEmpty: String? {
        guard let text = stringValue?.trimmingWhitespace(), !text.isEmpty else { return nil }
        return text
    }
}
