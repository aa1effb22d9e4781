/// A shell run with an inline command string (`sh -lc '<payload>'`), located in the caller's argv.
///
/// Guarantees: all indices point into the argv given to `ShellWrapper.analyze`/`detect`, and
/// `argv[payloadIndex] == payload`, so a caller can substitute a rebuilt payload in place.
/// `executableIndex` is the token that is actually executed: the shell itself, or the
/// busybox/toybox binary when the shell is one of its applets (then `shellIndex` is the applet).
/// Tokens before `executableIndex` are dispatch wrappers.
public struct ShellInvocation: Equatable, Sendable {
    public var executableIndex: Int
    public var shellIndex: Int
    public var payloadIndex: Int
    public var payload: String

    public init(executableIndex: Int, shellIndex: Int, payloadIndex: Int, payload: String) {
        self.executableIndex = executableIndex
        self.shellIndex = shellIndex
        self.payloadIndex = payloadIndex
        self.payload = payload
    }
}

/// Result of looking for a shell wrapper.
///
/// - `none`: the argv is not a shell running an inline command (it may still be a shell running
///   a script file; that is an ordinary command).
/// - `invocation`: a shell whose only program is `payload`.
/// - `blocked`: it is, or may be, a shell wrapper but something else could also run code (an
///   rc/init file, keyword-assignment mode, an unparseable dispatch wrapper, a payload that the
///   shell would take as another option). Callers must fail closed.
public enum ShellWrapperDetection: Equatable, Sendable {
    case none
    case invocation(ShellInvocation)
    case blocked(reason: String)
}

/// Detects POSIX shell wrappers (`ash bash dash fish ksh sh zsh mksh yash`, by basename) with an
/// inline command (`-c`, `-lc`, `--command`, or a short cluster containing `c` such as `-xc`),
/// after peeling dispatch wrappers and a busybox/toybox shell applet (spec §3.3).
///
/// Only options known not to run extra code may precede the command flag; anything else yields
/// `.blocked`, never a silent "not a wrapper", so the caller cannot be tricked into analysing a
/// payload while the shell also runs something unanalysed.
public enum ShellWrapper {
    public static let shells: Set<String> = ["ash", "bash", "dash", "fish", "ksh", "sh", "zsh", "mksh", "yash"]
    public static let multiplexers: Set<String> = ["busybox", "toybox"]

    /// Single-letter shell options that neither run code nor change how arguments become the
    /// environment. Excluded on purpose: `i` (interactive: sources rc files), `s` (reads the
    /// program from stdin), `k` (keyword mode: `cmd LD_PRELOAD=x` would become an env assignment).
    static let posixShortFlags = Set("abefhlmnprtuvxBCEHPT")
    /// fish's letters mean different things (`-C` is `--init-command`), so it gets its own list.
    static let fishShortFlags = Set("ln")
    static let longFlags: Set<String> = [
        "--login", "--noprofile", "--norc", "--posix", "--restricted", "--verbose", "--noediting",
        "--no-execute", "--private", "--no-config",
    ]
    /// `-o NAME` values that are harmless. `-o keyword` is the long spelling of `-k`.
    static let setOptions: Set<String> = [
        "errexit", "nounset", "pipefail", "xtrace", "verbose", "noglob", "noclobber", "posix", "allexport",
    ]

    /// The payload (trimmed) when it alone may stand for the whole command, as upstream's
    /// `previewText`: as `rawCommand`, in events and as a plan's `commandPreview`. Nil when the
    /// text would hide part of what runs, and the full argv must be shown and bound instead:
    /// - positional carriers after the payload (`sh -lc '$0 "$1"' /usr/bin/touch /tmp/x`: the
    ///   payload names no program at all);
    /// - an `env` prelude that changes the environment (`env BASH_ENV=/tmp/x sh -c 'echo hi'`,
    ///   `env -i …`, `env -u …`).
    public static func bindablePayload(_ argv: [String]) -> String? {
        guard let shell = detect(argv) else { return nil }
        let carriers = argv[(shell.payloadIndex + 1)...].contains { !$0.trimmingWhitespace().isEmpty }
        guard !carriers, !hasEnvManipulation(argv, before: shell.executableIndex) else { return nil }
        return shell.payload.trimmingWhitespace()
    }

    /// An `env` wrapper in `argv[..<end]` with options or assignments of its own.
    static func hasEnvManipulation(_ argv: [String], before end: Int) -> Bool {
        guard case let .plain(_, wrappers, assignments) = DispatchWrappers.unwrap(Array(argv[..<end]) + ["true"]) else {
            return true
        }
        if !assignments.isEmpty { return true }
        let starts = wrappers.map(\.index) + [end]
        return zip(wrappers, starts.dropFirst()).contains { wrapper, next in wrapper.name == "env" && next > wrapper.index + 1 }
    }

    public static func detect(_ argv: [String]) -> ShellInvocation? {
        if case .invocation(let invocation) = analyze(argv) { return invocation }
        return nil
    }

    public static func analyze(_ argv: [String]) -> ShellWrapperDetection {
        let inner: [String]
        switch DispatchWrappers.unwrap(argv) {
        case .blocked(let reason): return .blocked(reason: reason)
        case .plain(let unwrapped, _, _): inner = unwrapped
        }
        guard !inner.isEmpty else { return .none }
        let executableIndex = argv.count - inner.count
        var shellIndex = executableIndex
        let name = ExecutableResolver.basename(argv[executableIndex])
        if multiplexers.contains(name) {
            var appletIndex = executableIndex + 1
            if appletIndex < argv.count, argv[appletIndex] == "--" { appletIndex += 1 }
            // The applet must be a bare shell name: it is looked up inside the multiplexer,
            // not on disk, so a path here would not mean what it looks like.
            guard appletIndex < argv.count, shells.contains(argv[appletIndex]) else { return .none }
            shellIndex = appletIndex
        } else if !shells.contains(name) {
            return .none
        }
        let fish = ExecutableResolver.basename(argv[shellIndex]) == "fish"
        switch scan(argv, shellIndex: shellIndex, fish: fish) {
        case .notInline: return .none
        case .blocked(let reason): return .blocked(reason: reason)
        case .payload(let index):
            return .invocation(ShellInvocation(
                executableIndex: executableIndex, shellIndex: shellIndex, payloadIndex: index, payload: argv[index]))
        }
    }

    // MARK: - Option scanning

    private enum Scan {
        case payload(Int)
        case notInline
        case blocked(String)
    }

    /// Walks the shell's options up to the command flag and returns the payload index.
    private static func scan(_ argv: [String], shellIndex: Int, fish: Bool) -> Scan {
        let letters = fish ? fishShortFlags : posixShortFlags
        var index = shellIndex + 1
        while index < argv.count {
            let token = argv[index]
            // A first operand (or "-", "--") before any command flag means a script file.
            guard token.count > 1, token.hasPrefix("-") || token.hasPrefix("+"), token != "--" else { return .notInline }
            index += 1
            var isCommandFlag = token == "--command"
            var optionValues = 0
            if token.hasPrefix("--") {
                guard isCommandFlag || longFlags.contains(token) else {
                    return .blocked("shell option \(token) is not allowed")
                }
            } else {
                for letter in token.dropFirst() {
                    if letter == "c", token.hasPrefix("-") {
                        isCommandFlag = true
                    } else if letter == "o", !fish {
                        optionValues += 1
                    } else if !letters.contains(letter) {
                        return .blocked("shell option \(token.prefix(1))\(letter) is not allowed")
                    }
                }
            }
            // Like getopt, each `o` in the cluster takes the next argument, in order; the command
            // string is the first argument after those values.
            for _ in 0..<optionValues {
                guard index < argv.count else { return .blocked("shell option -o needs a value") }
                guard setOptions.contains(argv[index]) else {
                    return .blocked("shell option -o \(argv[index]) is not allowed")
                }
                index += 1
            }
            guard isCommandFlag else { continue }
            guard index < argv.count else { return .blocked("shell command flag without a command string") }
            // The shell would parse this as one more option and take a later argument as the program.
            if argv[index].hasPrefix("-") || argv[index].hasPrefix("+") {
                return .blocked("shell command string \"\(argv[index])\" looks like an option")
            }
            return .payload(index)
        }
        return .notInline
    }
}
