/// The argument grammar of one stdin-only safe bin (spec §5.4).
///
/// Guarantees: `validate` accepts an argument list only if every option is listed here (long
/// options also as an unambiguous GNU-style prefix of a listed name), no refused option occurs,
/// every value-taking option has its value, and the operands fit `operands` (none for a
/// stdin-only filter). `--` turns everything after it into operands, which are checked too.
/// No word may contain `$` or a backtick.
public struct SafeBinProfile: Sendable {
    /// How an option is treated; anything absent from a profile is refused.
    public enum Option: Sendable, Equatable {
        case flag
        case value
        /// Long options only: `--name` alone or `--name=VALUE`, never a separate value.
        case optionalValue
        /// Known to the real binary but refused; listed so abbreviations resolve to it.
        case refused
    }

    public var shortOptions: [Character: Option]
    public var longOptions: [String: Option]
    public var operands: ClosedRange<Int>
    /// A lone `-` means standard input and is not an operand (head, tail, cut, uniq, wc).
    public var dashIsStdin: Bool
    /// `head -5` / `tail -5`: an all-digit short cluster is the legacy line count.
    public var legacyCount: Bool

    public init(shortOptions: [Character: Option], longOptions: [String: Option],
                operands: ClosedRange<Int> = 0...0, dashIsStdin: Bool = true, legacyCount: Bool = false)
    {
        self.shortOptions = shortOptions
        self.longOptions = longOptions
        self.operands = operands
        self.dashIsStdin = dashIsStdin
        self.legacyCount = legacyCount
    }

    public func validate(_ args: [String]) -> Bool {
        // A word a shell would still expand (`-c${IFS}16`, `$HOME`, a backtick) is not what
        // the bin will see: upstream refuses such safe-bin usage outright.
        guard !args.contains(where: { $0.contains("$") || $0.contains("`") }) else { return false }
        var operandList: [String] = []
        var index = 0
        while index < args.count {
            let arg = args[index]
            index += 1
            if arg == "--" {
                operandList += args[index...]
                break
            }
            if arg == "-", dashIsStdin { continue }
            if arg.hasPrefix("--") {
                let parts = arg.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let option = resolveLong(String(parts[0])) else { return false }
                switch (option, parts.count == 2) {
                case (.flag, false), (.optionalValue, _), (.value, true): continue
                case (.value, false):
                    guard index < args.count else { return false }
                    index += 1
                default: return false
                }
            } else if arg.hasPrefix("-"), arg.count > 1 {
                let cluster = Array(arg.dropFirst())
                if legacyCount, cluster.allSatisfy(\.isASCIIDigit) { continue }
                for (position, letter) in cluster.enumerated() {
                    switch shortOptions[letter] {
                    case .flag?: continue
                    case .value?:
                        // getopt: the rest of the cluster is the value, else the next argument.
                        if position == cluster.count - 1 {
                            guard index < args.count else { return false }
                            index += 1
                        }
                    default: return false
                    }
                    break
                }
            } else {
                operandList.append(arg)
            }
        }
        return operands.contains(operandList.count) && operandList.allSatisfy { !Self.isPathLike($0) }
    }

    /// Operands that could name a file are refused even where operands are allowed (tr's SETs):
    /// anything containing `/` or starting with `~` or `.`.
    static func isPathLike(_ token: String) -> Bool {
        token.contains("/") || token.hasPrefix("~") || token.hasPrefix(".")
    }

    /// Exact name, else the single listed option it abbreviates; nil when unknown or ambiguous.
    func resolveLong(_ name: String) -> Option? {
        if let exact = longOptions[name] { return exact }
        guard name.count > 2 else { return nil }
        let matches = longOptions.filter { $0.key.hasPrefix(name) }
        return matches.count == 1 ? matches.first!.value : nil
    }
}

/// Which executables may run without an allowlist entry because they can only filter stdin.
///
/// Guarantees (`permits`):
/// - The executable's basename is in `bins` and has a profile; bins without a profile are never
///   permitted.
/// - The executable resolved to a file directly inside one of `trustedDirs` (default `/bin`,
///   `/usr/bin`), and that file has the bin's name. PATH is never trusted by itself, so a
///   `head` found in a project directory on PATH is not a safe bin (attack class 10).
/// - The arguments pass the bin's profile: no file operands (except `tr`'s one or two SETs,
///   which must not look like paths), no unknown or ambiguous options, no refused options.
///
/// It does not guarantee that a shell leaves the arguments alone: callers running a safe bin
/// through a shell must render its tokens with `quoted(_:)` (attack class 3).
public struct SafeBinPolicy: Sendable {
    public var bins: Set<String>
    public var trustedDirs: [String]
    public var profiles: [String: SafeBinProfile]

    public init(bins: Set<String> = SafeBinPolicy.defaultBins, trustedDirs: [String] = SafeBinPolicy.defaultTrustedDirs,
                profiles: [String: SafeBinProfile] = SafeBinPolicy.defaultProfiles)
    {
        self.bins = bins
        self.trustedDirs = trustedDirs
        self.profiles = profiles
    }

    public static let defaultBins: Set<String> = ["cut", "uniq", "head", "tail", "tr", "wc"]
    public static let defaultTrustedDirs = ["/bin", "/usr/bin"]
    public static let `default` = SafeBinPolicy()

    /// The default trusted dirs plus `extra` (config `tools.exec.safeBinTrustedDirs`).
    public static func withExtraTrustedDirs(_ extra: [String]) -> SafeBinPolicy {
        SafeBinPolicy(trustedDirs: defaultTrustedDirs + extra)
    }

    public func permits(argv: [String], resolvedPath: String?) -> Bool {
        guard let executable = argv.first, let resolvedPath else { return false }
        let name = ExecutableResolver.basename(executable)
        guard bins.contains(name), let profile = profiles[name],
              ExecutableResolver.basename(resolvedPath) == name,
              isTrusted(resolvedPath)
        else { return false }
        return profile.validate(Array(argv.dropFirst()))
    }

    /// True when `path` names a file directly inside a trusted directory. The comparison is on
    /// the path as found, without resolving symlinks, so `/bin/head` and `/usr/bin/head` are
    /// both trusted by the defaults even though `/bin` links to `/usr/bin` on merged-usr systems.
    public func isTrusted(_ path: String) -> Bool {
        let dir = ExecutableResolver.dirname(path)
        return trustedDirs.contains { trusted in
            trusted.hasPrefix("/") && Self.stripTrailingSlashes(trusted) == dir
        }
    }

    /// Renders argv for a POSIX shell with every token single-quoted (`'` as `'\''`), so the
    /// shell performs no globbing, tilde, parameter or command expansion on any of them.
    public static func quoted(_ argv: [String]) -> String {
        argv.map { "'" + $0.replacingAll("'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    static func stripTrailingSlashes(_ path: String) -> String {
        var path = path
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return path
    }

    public static let defaultProfiles: [String: SafeBinProfile] = [
        "head": SafeBinProfile(
            shortOptions: ["n": .value, "c": .value, "q": .flag, "v": .flag, "z": .flag],
            longOptions: ["--lines": .value, "--bytes": .value, "--quiet": .flag, "--silent": .flag,
                          "--verbose": .flag, "--zero-terminated": .flag],
            legacyCount: true),
        // Following (-f/-F and friends) is refused: it never ends and can watch named files.
        "tail": SafeBinProfile(
            shortOptions: ["n": .value, "c": .value, "q": .flag, "v": .flag, "z": .flag,
                           "f": .refused, "F": .refused, "s": .refused],
            longOptions: ["--lines": .value, "--bytes": .value, "--quiet": .flag, "--silent": .flag,
                          "--verbose": .flag, "--zero-terminated": .flag, "--follow": .refused,
                          "--retry": .refused, "--pid": .refused, "--sleep-interval": .refused,
                          "--max-unchanged-stats": .refused],
            legacyCount: true),
        "cut": SafeBinProfile(
            shortOptions: ["b": .value, "c": .value, "f": .value, "d": .value, "n": .flag, "s": .flag, "z": .flag],
            longOptions: ["--bytes": .value, "--characters": .value, "--fields": .value, "--delimiter": .value,
                          "--output-delimiter": .value, "--only-delimited": .flag, "--zero-terminated": .flag,
                          "--complement": .flag]),
        // uniq's second operand is an OUTPUT file, so operands stay at zero.
        "uniq": SafeBinProfile(
            shortOptions: ["f": .value, "s": .value, "w": .value, "c": .flag, "d": .flag, "D": .flag,
                           "i": .flag, "u": .flag, "z": .flag],
            longOptions: ["--skip-fields": .value, "--skip-chars": .value, "--check-chars": .value,
                          "--count": .flag, "--repeated": .flag, "--ignore-case": .flag, "--unique": .flag,
                          "--zero-terminated": .flag, "--all-repeated": .optionalValue, "--group": .optionalValue]),
        "tr": SafeBinProfile(
            shortOptions: ["c": .flag, "C": .flag, "d": .flag, "s": .flag, "t": .flag],
            longOptions: ["--complement": .flag, "--delete": .flag, "--squeeze-repeats": .flag,
                          "--truncate-set1": .flag],
            operands: 1...2, dashIsStdin: false),
        // --files0-from reads the names of files to count from a file.
        "wc": SafeBinProfile(
            shortOptions: ["c": .flag, "m": .flag, "l": .flag, "L": .flag, "w": .flag],
            longOptions: ["--bytes": .flag, "--chars": .flag, "--lines": .flag, "--max-line-length": .flag,
                          "--words": .flag, "--files0-from": .refused]),
    ]
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
