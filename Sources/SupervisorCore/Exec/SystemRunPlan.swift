import Crypto
import Glibc
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
            guard let index = operand["argvIndex"]?.numberValue, let path = operand["path"]?.stringValue,
                  let sha = operand["sha256"]?.stringValue, index >= 0, Int(index) < argv.count else { return nil }
            mutableFileOperand = FileOperand(argvIndex: Int(index), path: path, sha256: sha)
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

    /// `system.run.prepare`: builds the plan for `request`, or the `INVALID_REQUEST` message.
    public static func prepare(_ request: SystemRunRequest, pathEnv: String) -> Result<SystemRunPlan, WireError> {
        func denied(_ message: String) -> Result<SystemRunPlan, WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: message))
        }
        var cwd: String?
        if let requested = request.cwd {
            switch CanonicalDirectory.resolve(requested) {
            case let .success(directory): cwd = directory.path
            case let .failure(denial): return denied(denial.message)
            }
        }
        let shell = ShellWrapper.detect(request.command)
        var argv = request.command
        switch ExecutablePin.pin(argv, cwd: cwd, pathEnv: pathEnv) {
        case let .success(pinned): argv = pinned
        case let .failure(denial): return denied(denial.message)
        }
        let operand: FileOperand?
        switch ScriptOperand.bind(argv, cwd: cwd, pathEnv: pathEnv) {
        case let .success(bound): operand = bound
        case let .failure(denial): return denied(denial.message)
        }
        return .success(SystemRunPlan(
            argv: argv, cwd: cwd, commandPreview: shell?.payload.trimmingWhitespace(),
            agentId: request.agentId, sessionKey: request.requestedSessionKey,
            mutableFileOperand: operand
        ))
    }
}

/// Why an approval cannot bind to what the request names (an `INVALID_REQUEST` message).
public struct ApprovalDenial: Error, Equatable {
    public var message: String
    init(_ message: String) { self.message = message }
}

/// A cwd an approval may bind to: an existing directory reached without symlinks, whose
/// identity (device, inode) is the same however it is looked up (§3.5 approval hardening).
public enum CanonicalDirectory {
    public struct Resolved: Equatable {
        public var path: String
        public var identity: FileIdentity
    }

    public static func resolve(_ requested: String) -> Result<Resolved, ApprovalDenial> {
        var linkInfo = stat()
        guard lstat(requested, &linkInfo) == 0 else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing canonical cwd"))
        }
        if (linkInfo.st_mode & S_IFMT) == S_IFLNK {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink cwd)"))
        }
        guard (linkInfo.st_mode & S_IFMT) == S_IFDIR else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires cwd to be a directory"))
        }
        if hasWritableSymlinkComponent(requested) {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink path components)"))
        }
        var info = stat()
        guard let real = ExecutableResolver.realpath(requested), stat(requested, &info) == 0 else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing canonical cwd"))
        }
        var realInfo = stat()
        guard lstat(real, &realInfo) == 0,
              linkInfo.st_dev == info.st_dev, linkInfo.st_ino == info.st_ino,
              realInfo.st_dev == info.st_dev, realInfo.st_ino == info.st_ino else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval cwd identity mismatch"))
        }
        return .success(Resolved(path: real, identity: FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))))
    }

    /// A symlink on the way whose parent we could rewrite could be retargeted after approval.
    static func hasWritableSymlinkComponent(_ path: String) -> Bool {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + component
            var info = stat()
            if lstat(prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK, access(parent, W_OK) == 0 {
                return true
            }
        }
        return false
    }
}

/// Replaces argv[0] by the realpath of the executable it names, when nothing (shell,
/// dispatch wrapper) stands between the approval and the program that runs.
enum ExecutablePin {
    static func pin(_ argv: [String], cwd: String?, pathEnv: String) -> Result<[String], ApprovalDenial> {
        guard ShellWrapper.detect(argv) == nil, case let .plain(inner, wrappers, _) = DispatchWrappers.unwrap(argv),
              wrappers.isEmpty, inner == argv else {
            return .success(argv)
        }
        guard let found = ExecutableResolver.resolve(argv[0], cwd: cwd, pathEnv: pathEnv),
              let real = ExecutableResolver.realpath(found) else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a stable executable path"))
        }
        var pinned = argv
        pinned[0] = real
        return .success(pinned)
    }
}

/// Binds a command to the one local file it would interpret (§4.2 `mutableFileOperand`), so
/// an approved script cannot be edited before it runs. Commands that could run code from
/// somewhere else (eval flags, module loaders, package runners) cannot be bound: fail closed.
enum ScriptOperand {
    static let interpreters: [String: (eval: Set<String>, unbindable: Set<String>, harmless: Set<String>)] = [
        "python": (["-c"], ["-m", "-X", "-W"], ["-u", "-B", "-E", "-I", "-O", "-OO", "-s", "-S", "-q", "-b", "-bb", "-v"]),
        "node": (["-e", "--eval", "-p", "--print"], ["-r", "--require", "--import", "--loader", "--experimental-loader"],
                 ["--no-warnings", "--trace-warnings", "--enable-source-maps"]),
        "perl": (["-e", "-E"], ["-M", "-I", "-m", "-x"], ["-w", "-W", "-X", "-T", "-t", "-l", "-s"]),
        "ruby": (["-e"], ["-r", "-I", "-x"], ["-w", "-W", "-v", "-d"]),
        "php": (["-r"], ["-d", "-c", "-B", "-R", "-F", "-E"], ["-n", "-q", "-f"]),
    ]
    static let runtimeRunners: Set<String> = ["bun", "deno", "tsx", "ts-node", "esno", "jiti", "vite-node", "npx", "pnpm", "npm", "yarn", "bunx"]

    static func family(_ name: String) -> String? {
        if name.hasPrefix("python"), name.dropFirst(6).allSatisfy({ $0.isNumber || $0 == "." }) { return "python" }
        if name == "nodejs" { return "node" }
        if ["node", "perl", "ruby", "php"].contains(name) { return name }
        return nil
    }

    static func bind(_ argv: [String], cwd: String?, pathEnv: String) -> Result<SystemRunPlan.FileOperand?, ApprovalDenial> {
        let cannotBind = ApprovalDenial("SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")
        if ShellWrapper.detect(argv) != nil { return .success(nil) }
        guard case let .plain(inner, _, _) = DispatchWrappers.unwrap(argv) else { return .failure(cannotBind) }
        let offset = argv.count - inner.count
        let name = ExecutableResolver.basename(inner[0])
        if runtimeRunners.contains(name) || name == "busybox" || name == "toybox" { return .failure(cannotBind) }
        var operandIndex: Int?
        if ShellWrapper.shells.contains(name) {
            // `sh script.sh`: the first non-option argument is the script.
            operandIndex = inner.indices.dropFirst().first { !inner[$0].hasPrefix("-") && !inner[$0].hasPrefix("+") }
        } else if let family = family(name), let rules = interpreters[family] {
            var index = 1
            while index < inner.count, inner[index].hasPrefix("-"), inner[index] != "-" {
                let flag = inner[index]
                if flag == "--" { index += 1; break }
                let key = flag.hasPrefix("--") ? String(flag.prefix { $0 != "=" }) : String(flag.prefix(2))
                if rules.eval.contains(key) || rules.unbindable.contains(key) || !rules.harmless.contains(flag) {
                    return .failure(cannotBind)
                }
                index += 1
            }
            if index < inner.count {
                guard inner[index] != "-" else { return .failure(cannotBind) }
                operandIndex = index
            }
        } else if let path = ExecutableResolver.resolve(inner[0], cwd: cwd, pathEnv: pathEnv), startsWithShebang(path) {
            // A script run directly is as mutable as one passed to its interpreter.
            operandIndex = 0
        }
        guard let found = operandIndex else { return .success(nil) }
        let token = inner[found]
        let path = token.hasPrefix("/") ? token : "\(cwd ?? ExecutableResolver.currentDirectory() ?? "/")/\(token)"
        let resolved = found == 0 ? ExecutableResolver.resolve(token, cwd: cwd, pathEnv: pathEnv) ?? path : path
        var info = stat()
        guard stat(resolved, &info) == 0 else { return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing script operand")) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a file script operand")) }
        guard let real = ExecutableResolver.realpath(resolved), let digest = FileDigest.sha256Hex(real) else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a stable script operand"))
        }
        return .success(SystemRunPlan.FileOperand(argvIndex: offset + found, path: real, sha256: digest))
    }


    static func startsWithShebang(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head: [UInt8] = [0, 0]
        return read(fd, &head, 2) == 2 && head == [0x23, 0x21]
    }

}

/// SHA-256 of a file's contents, read once (no size limit beyond a sanity cap).
public enum FileDigest {
    static let maxBytes = 256 << 20

    public static func sha256Hex(bytes: [UInt8]) -> String {
        Hex.encode(Array(SHA256.hash(data: bytes)))
    }

    public static func sha256Hex(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            total += count
            if total > maxBytes { return nil }
            hasher.update(data: buffer[0..<count])
        }
        return Hex.encode(Array(hasher.finalize()))
    }
}
