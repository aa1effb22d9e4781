import OpenClawIPC

/// What an operator approves (node-host.md §4.2): the exact argv (argv[0] pinned to its
/// realpath where there is no shell or wrapper), the canonical cwd, and the hash of the
/// script the command would run. An approved `system.run` must carry the same plan.
public struct SystemRunPlan: Equatable, Sendable {
    public struct FileOperand: Equatable, Sendable {
        public var argvIndex: Int
        public var path: String
        public var sha256: String
    }

    public var argv: [String]
    public var cwd: String?
    public var commandText: String
    public var commandPreview: String?
    public var agentId: String?
    public var sessionKey: String?
    public var mutableFileOperand: FileOperand?

    /// Reads a plan sent back by the gateway; nil when it is not a usable plan.
    /// `rawCommand` is accepted as the older name of `commandText`.
    public init?(json: JSONValue) {
        guard case let .object(object) = json, case let .array(items)? = object["argv"], !items.isEmpty else { return nil }
        var argv: [String] = []
        for item in items {
            guard case let .string(text) = item else { return nil }
            argv.append(text)
        }
        guard let text = (object["commandText"] ?? object["rawCommand"])?.stringValue else { return nil }
        self.argv = argv
        commandText = text
        cwd = object["cwd"]?.trimmedNonEmpty
        commandPreview = object["commandPreview"]?.trimmedNonEmpty
        agentId = object["agentId"]?.trimmedNonEmpty
        sessionKey = object["sessionKey"]?.trimmedNonEmpty
        if case let .object(operand)? = object["mutableFileOperand"] {
            guard let index = operand["argvIndex"]?.intValue, let path = operand["path"]?.stringValue,
                  let sha = operand["sha256"]?.stringValue, argv.indices.contains(index), !path.isEmpty, !sha.isEmpty
            else { return nil }
            mutableFileOperand = FileOperand(argvIndex: index, path: path, sha256: sha)
        }
    }

    init(argv: [String], cwd: String?, commandPreview: String?, agentId: String?, sessionKey: String?,
         mutableFileOperand: FileOperand?) {
        self.argv = argv
        self.cwd = cwd
        commandText = ExecCommandText.format(argv)
        self.commandPreview = commandPreview == commandText ? nil : commandPreview
        self.agentId = agentId
        self.sessionKey = sessionKey
        self.mutableFileOperand = mutableFileOperand
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "argv": .array(argv.map(JSONValue.string)),
            "cwd": cwd.map(JSONValue.string) ?? .null,
            "commandText": .string(commandText),
            "commandPreview": commandPreview.map(JSONValue.string) ?? .null,
            "agentId": agentId.map(JSONValue.string) ?? .null,
            "sessionKey": sessionKey.map(JSONValue.string) ?? .null,
        ]
        if let operand = mutableFileOperand {
            object["mutableFileOperand"] = .object([
                "argvIndex": .number(Double(operand.argvIndex)), "path": .string(operand.path), "sha256": .string(operand.sha256),
            ])
        }
        return .object(object)
    }
}
