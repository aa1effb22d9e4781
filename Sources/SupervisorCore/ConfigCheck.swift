import FoundationEssentials
import Glibc
import OpenClawIPC

/// One problem in a config file: an error (a value the node refuses, applied fail-closed, or a
/// file it cannot parse) or a warning (a key it does not know).
public struct ConfigProblem: Equatable, Sendable {
    public enum Severity: String, Sendable { case error, warning }
    public var severity: Severity
    public var file: String
    /// Dotted path of the key (`gateway.auth`, `agents.main.security`); nil for the whole file.
    public var key: String?
    public var message: String
    public var line: Int?
    public var column: Int?

    /// `file:line:column: message` for a parse error, else `file: key: message`.
    public var text: String {
        if let line, let column { return "\(file):\(line):\(column): \(message)" }
        return "\(file): \(key.map { "\($0): " } ?? "")\(message)"
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["severity": .string(severity.rawValue), "file": .string(file), "message": .string(message)]
        if let key { object["key"] = .string(key) }
        if let line { object["line"] = .number(Double(line)) }
        if let column { object["column"] = .number(Double(column)) }
        return .object(object)
    }
}

/// `openclaw-node config check`, `doctor` and `run`'s start-up check of `openclaw.json` and
/// `exec-approvals.json`: a safety setting with an invalid value is an error (the node applies
/// it fail-closed: deny, ask always, proxy disabled; see `ExecSecurity(field:)`), an unknown
/// key in a section the node reads is a warning with the nearest known key, and a file that
/// does not parse names its line and column.
public enum ConfigCheck {
    /// What a value must look like, and for safety settings what an invalid one becomes.
    indirect enum Shape {
        case any
        /// Known keys; others are warned about.
        case object([String: Shape])
        /// Known keys are checked; others are not this node's business.
        case partial([String: Shape])
        case choice([String], invalidBecomes: String)
        case text(invalidBecomes: String)
        case flag(invalidBecomes: String)
        case list(Shape)
        /// Any key, each value of `Shape`.
        case map(Shape)
        /// An allowlist entry: a non-blank string, or an object with a non-blank `pattern`.
        case allowlistEntry
    }

    /// A boolean setting: absent or null is `defaultValue`; anything but a boolean is `false`
    /// (the safe reading of an on/off switch that widens what the node does).
    public static func flag(_ value: JSONValue?, default defaultValue: Bool) -> Bool {
        guard let value, value != .null else { return defaultValue }
        return value.boolValue ?? false
    }

    /// The choices the readers accept, and the fail-closed value an invalid one becomes.
    static let securityChoice = Shape.choice(ExecSecurity.allCases.map(\.rawValue), invalidBecomes: ExecSecurity.deny.rawValue)
    static let askChoice = Shape.choice(ExecAsk.allCases.map(\.rawValue), invalidBecomes: ExecAsk.always.rawValue)

    static let toolsExec = Shape.object([
        "host": .any, "security": securityChoice, "ask": askChoice, "mode": .any, "node": .any, "pathPrepend": .any,
        "safeBins": .list(.any), "strictInlineEval": .flag(invalidBecomes: "true (inline code needs approval)"),
        "commandHighlighting": .any, "safeBinTrustedDirs": .list(.any), "safeBinProfiles": .any, "reviewer": .any,
        "backgroundMs": .any, "timeoutSec": .any, "cleanupMs": .any, "notifyOnExit": .any, "notifyOnExitEmptySuccess": .any,
        "applyPatch": .any, "approvalRunningNoticeMs": .any,
    ])

    /// `openclaw.json`: upstream's top-level keys; the sections the node reads in depth.
    static let openclawJSON: Shape = {
        var top: [String: Shape] = [:]
        for key in ["$schema", "meta", "env", "wizard", "diagnostics", "logging", "cli", "crestodian", "update", "ui", "secrets",
                    "auth", "acp", "models", "bindings", "broadcast", "audio", "media", "messages", "commands", "approvals",
                    "session", "cron", "hooks", "web", "channels", "discovery", "canvasHost", "talk", "memory", "mcp", "skills",
                    "plugins", "surfaces", "proxy"] {
            top[key] = .any
        }
        top["gateway"] = .object([
            "port": .any, "mode": .any, "bind": .any, "customBindHost": .any, "controlUi": .any,
            "auth": .object(["mode": .any, "token": .any, "password": .any, "allowTailscale": .any, "rateLimit": .any,
                             "trustedProxy": .any]),
            "trustedProxies": .any, "allowRealIpFallback": .any, "tools": .any, "webchat": .any,
            "channelHealthCheckMinutes": .any, "channelStaleEventThresholdMinutes": .any, "channelMaxRestartsPerHour": .any,
            "tailscale": .any,
            "remote": .object(["url": .any, "transport": .any, "token": .any, "password": .any, "tlsFingerprint": .any,
                               "sshTarget": .any, "sshIdentity": .any]),
            "reload": .any, "tls": .any, "http": .any, "push": .any, "nodes": .any, "handshakeTimeoutMs": .any,
        ])
        top["nodeHost"] = .object([
            "browserProxy": .object(["enabled": .flag(invalidBecomes: "false (browser.proxy disabled)"),
                                     "allowProfiles": .list(.text(invalidBecomes: "browser.proxy disabled"))]),
            "mcp": .any, "skills": .object(["enabled": .flag(invalidBecomes: "false (skills not published)")]), "agentRuns": .any, "workerRuns": .any, "autoUpdate": .any,
        ])
        var browser: [String: Shape] = [:]
        for key in ["cdpUrl", "remoteCdpTimeoutMs", "remoteCdpHandshakeTimeoutMs", "localLaunchTimeoutMs", "localCdpReadyTimeoutMs",
                    "actionTimeoutMs", "color", "executablePath", "headless", "noSandbox", "attachOnly", "cdpPortRangeStart",
                    "defaultProfile", "snapshotDefaults", "ssrfPolicy", "profiles", "extraArgs"] {
            browser[key] = .any
        }
        browser["enabled"] = .flag(invalidBecomes: "false (browser.proxy disabled)")
        browser["evaluateEnabled"] = .flag(invalidBecomes: "false")
        top["browser"] = .object(browser)
        top["tools"] = .partial(["exec": toolsExec])
        top["agents"] = .partial(["list": .list(.partial(["tools": .partial(["exec": toolsExec])]))])
        return .object(top)
    }()

    static let approvalsAgent = Shape.object([
        "security": securityChoice, "ask": askChoice, "askFallback": securityChoice,
        "autoAllowSkills": .flag(invalidBecomes: "false"), "allowlist": .list(.allowlistEntry),
    ])

    static let approvalsJSON = Shape.object([
        "version": .any, "socket": .object(["path": .any, "token": .any]), "defaults": approvalsAgent, "agents": .map(approvalsAgent),
    ])

    /// Every problem in the node's config (`configPath`) and approvals file (`approvalsPath`).
    public static func run(configPath: String, approvalsPath: String) -> [ConfigProblem] {
        check(file: configPath, shape: openclawJSON, json5: true) + check(file: approvalsPath, shape: approvalsJSON, json5: false)
    }

    static func check(file: String, shape: Shape, json5: Bool) -> [ConfigProblem] {
        let bytes: [UInt8]
        do {
            guard let read = try SecureFile.read(file) else { return [] }
            bytes = read
        } catch {
            return [ConfigProblem(severity: .error, file: file, message: "cannot read: \(error)")]
        }
        let root: JSONValue
        switch parse(bytes, json5: json5) {
        case let .success(value): root = value
        case let .failure(problem):
            return [ConfigProblem(severity: .error, file: file, message: problem.message, line: problem.line, column: problem.column)]
        }
        guard case .object = root else {
            return [ConfigProblem(severity: .error, file: file, message: "the top level must be an object")]
        }
        var problems: [ConfigProblem] = []
        walk(root, shape, path: [], file: file, into: &problems)
        return problems
    }

    struct ParseFailure: Error {
        var message: String
        var line: Int
        var column: Int
    }

    /// Parses JSON or JSON5; a failure carries the line and column of the first byte that
    /// breaks the syntax (1:1 when the locator finds none).
    static func parse(_ bytes: [UInt8], json5: Bool) -> Result<JSONValue, ParseFailure> {
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = json5
        do {
            return .success(try decoder.decode(JSONValue.self, from: Data(bytes)))
        } catch {
            // The decoder names no position: the locator finds the first byte that breaks the syntax.
            let found = JSON5Locator.firstError(in: bytes, json5: json5)
            return .failure(ParseFailure(message: "not valid \(json5 ? "JSON5" : "JSON"): \(found?.reason ?? OpenClawConfig.describe(error))",
                                         line: found?.line ?? 1, column: found?.column ?? 1))
        }
    }

    static func walk(_ value: JSONValue, _ shape: Shape, path: [String], file: String, into problems: inout [ConfigProblem]) {
        let key = path.joined(separator: ".")
        func error(_ message: String) { problems.append(ConfigProblem(severity: .error, file: file, key: key, message: message)) }
        if value == .null { return }
        switch shape {
        case .any:
            return
        case let .object(known), let .partial(known):
            guard case let .object(fields) = value else {
                if case .object = shape { error("must be an object, not \(describe(value)); ignored") }
                return
            }
            let strict: Bool
            if case .object = shape { strict = true } else { strict = false }
            for name in fields.keys.sorted() {
                if let child = known[name] {
                    walk(fields[name]!, child, path: path + [name], file: file, into: &problems)
                } else if strict {
                    var message = "unknown key \"\(name)\""
                    if let guess = suggestion(for: name, among: Array(known.keys)) { message += " (did you mean \"\(guess)\"?)" }
                    problems.append(ConfigProblem(severity: .warning, file: file, key: (path + [name]).joined(separator: "."),
                                                  message: message + "; ignored"))
                }
            }
        case let .text(becomes):
            if value.stringValue == nil { error("must be a string, not \(describe(value)); \(becomes)") }
        case let .choice(options, becomes):
            guard let text = value.stringValue, options.contains(text.trimmingWhitespace()) else {
                var message = "invalid value \(describe(value)) (expected one of: \(options.joined(separator: ", "))); using \"\(becomes)\""
                if let text = value.stringValue, options.contains(text.lowercased().trimmingWhitespace()) {
                    message += " (values are case-sensitive)"
                }
                return error(message)
            }
        case let .flag(becomes):
            if value.boolValue == nil { error("invalid value \(describe(value)) (expected true or false); using \(becomes)") }
        case let .list(item):
            guard let items = value.arrayValue else { return error("must be a list, not \(describe(value)); ignored") }
            for (index, element) in items.enumerated() {
                walk(element, item, path: path.dropLast() + ["\(path.last ?? "")[\(index)]"], file: file, into: &problems)
            }
        case let .map(item):
            guard case let .object(fields) = value else { return error("must be an object, not \(describe(value)); ignored") }
            for name in fields.keys.sorted() { walk(fields[name]!, item, path: path + [name], file: file, into: &problems) }
        case .allowlistEntry:
            let pattern = value.stringValue ?? value["pattern"]?.stringValue
            if pattern?.trimmingWhitespace().isEmpty ?? true {
                error("allowlist entry without a pattern (a non-blank string, or an object with \"pattern\"); ignored")
            }
        }
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case let .string(text): return "\"\(text.count > 60 ? String(text.prefix(60)) + "…" : text)\""
        case .object: return "an object"
        case .array: return "a list"
        default: return (try? JSONText.encode(value)) ?? "?"
        }
    }

    /// The known key closest to `name` (case-insensitively equal, or within two edits).
    static func suggestion(for name: String, among known: [String]) -> String? {
        let lower = name.lowercased()
        var best: (String, Int)?
        for candidate in known.sorted() {
            let distance = candidate.lowercased() == lower ? 0 : editDistance(Array(lower.utf8), Array(candidate.lowercased().utf8))
            if distance <= max(1, min(2, name.count / 3)), best.map({ distance < $0.1 }) ?? true { best = (candidate, distance) }
        }
        return best?.0
    }

    /// Damerau-Levenshtein (optimal string alignment): a swap of two letters is one edit.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1) }
            }
        }
        return table[a.count][b.count]
    }
}
