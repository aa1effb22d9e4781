/// One `NAME=VALUE` pair that an `env` wrapper would put into the command's environment.
public struct EnvAssignment: Equatable, Sendable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// A dispatch wrapper that was peeled off: its basename and the argv index of its executable
/// token, so callers can resolve and vet the wrapper binary itself where it will really run.
public struct DispatchWrapper: Equatable, Sendable {
    public var name: String
    public var index: Int

    public init(name: String, index: Int) {
        self.name = name
        self.index = index
    }
}

/// Outcome of peeling dispatch wrappers off an argv.
///
/// Guarantees:
/// - `.plain.argv` is a suffix of the input argv (the inner command, possibly the input itself),
///   and is exactly what the wrapper chain would `exec`: each wrapper's own options are parsed
///   the way the wrapper parses them (options stop at the first non-option, as with
///   getopt's `+` mode that all of them use).
/// - `.blocked` is returned whenever the chain cannot be proven transparent: an option that
///   changes what runs or where (`env -S`, `env -C`, `env -a`), an unknown option, a missing
///   inner command, a missing option value, a non-portable env assignment, or more than
///   `maxDepth` wrappers. Callers must fail closed on it (attack class 4).
public enum DispatchUnwrap: Equatable, Sendable {
    case plain(argv: [String], wrappers: [DispatchWrapper], envAssignments: [EnvAssignment])
    case blocked(reason: String)
}

/// Peels transparent dispatch wrappers (`env, nice, nohup, stdbuf, timeout, time, setsid,
/// ionice, taskset, chrt`) off a command, up to `maxDepth` levels (spec §3.3).
///
/// `sudo` and `doas` are deliberately not wrappers: they change the identity the inner command
/// runs as, so treating them as transparent would let an allowlist entry for `/usr/bin/id`
/// authorise `sudo /usr/bin/id` as root. A `sudo …` segment's executable is `sudo` itself, and
/// only an explicit allowlist entry for sudo can satisfy it.
///
/// Wrappers are recognised by the basename of their executable token, byte for byte (so
/// `/usr/bin/env` is `env`, but `env ` with a trailing space is not).
public enum DispatchWrappers {
    public static let maxDepth = 4
    public static let names: Set<String> = [
        "env", "nice", "nohup", "stdbuf", "timeout", "time", "setsid", "ionice", "taskset", "chrt",
    ]

    public static func isWrapper(_ token: String) -> Bool {
        names.contains(ExecutableResolver.basename(token))
    }

    public static func unwrap(_ argv: [String]) -> DispatchUnwrap {
        var start = 0
        var wrappers: [DispatchWrapper] = []
        var assignments: [EnvAssignment] = []
        while start < argv.count, isWrapper(argv[start]) {
            let name = ExecutableResolver.basename(argv[start])
            if wrappers.count == maxDepth {
                return .blocked(reason: "more than \(maxDepth) nested dispatch wrappers")
            }
            let step = innerCommandOffset(name: name, args: Array(argv[(start + 1)...]))
            switch step {
            case .failure(let failure):
                return .blocked(reason: "\(name): \(failure.reason)")
            case .success(let parsed):
                wrappers.append(DispatchWrapper(name: name, index: start))
                assignments += parsed.assignments
                start += 1 + parsed.offset
                if start >= argv.count { return .blocked(reason: "\(name): missing command") }
            }
        }
        return .plain(argv: Array(argv[start...]), wrappers: wrappers, envAssignments: assignments)
    }

    // MARK: - Per-wrapper grammars

    struct Parsed {
        var offset: Int
        var assignments: [EnvAssignment] = []
    }

    struct Failure: Error {
        var reason: String
    }

    /// Returns how many of `args` (the wrapper's arguments) precede the inner command.
    static func innerCommandOffset(name: String, args: [String]) -> Result<Parsed, Failure> {
        switch name {
        case "env": return parseEnv(args)
        case "nice": return options(args, nice).map { Parsed(offset: $0) }
        case "nohup": return options(args, OptionGrammar()).map { Parsed(offset: $0) }
        case "stdbuf": return options(args, stdbuf).map { Parsed(offset: $0) }
        case "time": return options(args, time).map { Parsed(offset: $0) }
        case "setsid": return options(args, setsid).map { Parsed(offset: $0) }
        case "ionice": return options(args, ionice).map { Parsed(offset: $0) }
        case "timeout": return withOperand(args, timeout, operand: "DURATION", numericOnly: false)
        case "taskset": return withOperand(args, taskset, operand: "CPU mask or list", numericOnly: false)
        // A non-numeric priority is rejected because newer chrt accepts an omitted priority and
        // would then run that token as the command.
        case "chrt": return withOperand(args, chrt, operand: "priority", numericOnly: true)
        default: return .failure(Failure(reason: "not a dispatch wrapper"))
        }
    }

    /// `env [-i] [-u NAME]... [-] [NAME=VALUE]... COMMAND [ARG]...`
    static func parseEnv(_ args: [String]) -> Result<Parsed, Failure> {
        var index: Int
        switch options(args, env) {
        case .failure(let failure): return .failure(failure)
        case .success(let first): index = first
        }
        // A lone "-" after the options is the historical spelling of -i.
        if index < args.count, args[index] == "-" { index += 1 }
        var assignments: [EnvAssignment] = []
        // GNU env takes every argument containing "=" as an assignment, whatever its name.
        while index < args.count, let eq = args[index].firstIndex(of: "=") {
            let key = String(args[index][..<eq])
            guard isPortableName(key) else {
                return .failure(Failure(reason: "non-portable env assignment \"\(args[index])\""))
            }
            assignments.append(EnvAssignment(key: key, value: String(args[index][args[index].index(after: eq)...])))
            index += 1
        }
        return .success(Parsed(offset: index, assignments: assignments))
    }

    static func withOperand(_ args: [String], _ grammar: OptionGrammar, operand: String, numericOnly: Bool)
        -> Result<Parsed, Failure>
    {
        options(args, grammar).flatMap { index in
            guard index < args.count else { return .failure(Failure(reason: "missing \(operand)")) }
            if numericOnly, args[index].isEmpty || !args[index].allSatisfy(\.isASCIIDigit) {
                return .failure(Failure(reason: "\(operand) \"\(args[index])\" is not numeric"))
            }
            return .success(Parsed(offset: index + 1))
        }
    }

    static func isPortableName(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, first == "_" || first.isASCIILetter else { return false }
        return key.unicodeScalars.allSatisfy { $0 == "_" || $0.isASCIILetter || ("0"..."9").contains($0) }
    }

    // MARK: - getopt-style option scanning

    /// The options one wrapper accepts. Anything not listed is refused, including GNU long-option
    /// abbreviations: an abbreviation such as `env --split` is an unknown option here, so it
    /// fails closed instead of being mistaken for a harmless flag.
    struct OptionGrammar {
        var shortFlags: Set<Character> = []
        var shortValued: Set<Character> = []
        var longFlags: Set<String> = []
        var longValued: Set<String> = []
        /// Options that change what runs, mapped to the reason they are refused.
        var refused: [String: String] = [:]
        /// `nice -5`: a leading all-digit cluster is the legacy adjustment spelling.
        var legacyNumeric = false
    }

    static let env = OptionGrammar(
        shortFlags: ["i"], shortValued: ["u"],
        longFlags: ["--ignore-environment"], longValued: ["--unset"],
        refused: [
            "-S": "-S/--split-string re-splits its argument into a new command line",
            "--split-string": "-S/--split-string re-splits its argument into a new command line",
            "-C": "-C/--chdir changes the working directory",
            "--chdir": "-C/--chdir changes the working directory",
            "-a": "-a/--argv0 changes the command's argv[0]",
            "--argv0": "-a/--argv0 changes the command's argv[0]",
        ])
    static let nice = OptionGrammar(shortValued: ["n"], longValued: ["--adjustment"], legacyNumeric: true)
    static let stdbuf = OptionGrammar(shortValued: ["i", "o", "e"], longValued: ["--input", "--output", "--error"])
    static let timeout = OptionGrammar(
        shortFlags: ["v", "f"], shortValued: ["s", "k"],
        longFlags: ["--preserve-status", "--foreground", "--verbose"], longValued: ["--signal", "--kill-after"])
    // GNU time's -o/-a write a file, which is a redirection in disguise.
    static let time = OptionGrammar(
        shortFlags: ["p", "v", "q"], shortValued: ["f"],
        longFlags: ["--portability", "--verbose", "--quiet"], longValued: ["--format"],
        refused: ["-o": "-o/--output writes a file", "--output": "-o/--output writes a file",
                  "-a": "-a/--append writes a file", "--append": "-a/--append writes a file"])
    static let setsid = OptionGrammar(shortFlags: ["c", "f", "w"], longFlags: ["--ctty", "--fork", "--wait"])
    static let ionice = OptionGrammar(
        shortFlags: ["t"], shortValued: ["c", "n"],
        longFlags: ["--ignore"], longValued: ["--class", "--classdata"],
        refused: ["-p": "-p/--pid acts on another process", "--pid": "-p/--pid acts on another process",
                  "-P": "-P/--pgid acts on other processes", "--pgid": "-P/--pgid acts on other processes",
                  "-u": "-u/--uid acts on other processes", "--uid": "-u/--uid acts on other processes"])
    static let taskset = OptionGrammar(
        shortFlags: ["a", "c"], longFlags: ["--all-tasks", "--cpu-list"],
        refused: ["-p": "-p/--pid acts on another process", "--pid": "-p/--pid acts on another process"])
    static let chrt = OptionGrammar(
        shortFlags: ["b", "d", "e", "f", "i", "o", "r", "R", "v"], shortValued: ["T", "P", "D"],
        longFlags: ["--batch", "--deadline", "--ext", "--fifo", "--idle", "--other", "--rr", "--reset-on-fork", "--verbose"],
        longValued: ["--sched-runtime", "--sched-period", "--sched-deadline"],
        refused: ["-p": "-p/--pid acts on another process", "--pid": "-p/--pid acts on another process",
                  "-m": "-m/--max runs no command", "--max": "-m/--max runs no command"])

    /// Scans leading options and returns the index of the first operand (after a `--`).
    static func options(_ args: [String], _ grammar: OptionGrammar) -> Result<Int, Failure> {
        var index = 0
        while index < args.count {
            let token = args[index]
            if token == "--" { return .success(index + 1) }
            guard token.hasPrefix("-"), token != "-" else { return .success(index) }
            if token.hasPrefix("--") {
                let name = token.split(separator: "=", maxSplits: 1).first.map(String.init) ?? token
                let hasInlineValue = token.contains("=")
                if let reason = grammar.refused[name] { return .failure(Failure(reason: reason)) }
                if grammar.longFlags.contains(name), !hasInlineValue {
                    index += 1
                } else if grammar.longValued.contains(name) {
                    if !hasInlineValue {
                        guard index + 1 < args.count else { return .failure(Failure(reason: "\(name) needs a value")) }
                        index += 1
                    }
                    index += 1
                } else {
                    return .failure(Failure(reason: "unsupported option \(token)"))
                }
                continue
            }
            let cluster = Array(token.dropFirst())
            if grammar.legacyNumeric, cluster.allSatisfy(\.isASCIIDigit) {
                index += 1
                continue
            }
            var consumedNext = false
            for (position, flag) in cluster.enumerated() {
                if let reason = grammar.refused["-\(flag)"] { return .failure(Failure(reason: reason)) }
                if grammar.shortFlags.contains(flag) { continue }
                guard grammar.shortValued.contains(flag) else {
                    return .failure(Failure(reason: "unsupported option -\(flag)"))
                }
                // getopt: the rest of the cluster is the value, else the next argument is.
                if position == cluster.count - 1 {
                    guard index + 1 < args.count else { return .failure(Failure(reason: "-\(flag) needs a value")) }
                    consumedNext = true
                }
                break
            }
            index += consumedNext ? 2 : 1
        }
        return .success(index)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}
