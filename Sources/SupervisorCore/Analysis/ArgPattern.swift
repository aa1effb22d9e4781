import NodeSupport

/// An allowlist entry as the analysis matches it: the executable's path pattern and, when the
/// entry has one, its `argPattern` (upstream-2026 §1.5, upstream `matchAllowlist`).
public struct AllowlistRule: Equatable, Sendable, ExpressibleByStringLiteral {
    public var pattern: String
    /// Over the arguments (argv without argv[0]): `sha256:argv:<hex>` / `sha256:cwd-argv:v1:<hex>`
    /// (an exact argv, written by allow-always) or an ECMAScript regex.
    public var argPattern: String?
    /// Written by an operator's allow-always (`source: "allow-always"`).
    public var generated: Bool

    public init(pattern: String, argPattern: String? = nil, generated: Bool = false) {
        self.pattern = pattern
        self.argPattern = argPattern.flatMap { $0.isEmpty ? nil : $0 }
        self.generated = generated
    }

    public init(stringLiteral value: String) { self.init(pattern: value) }

    public init(_ entry: AllowlistEntry) {
        self.init(pattern: entry.pattern, argPattern: entry.argPattern, generated: entry.source == AllowlistEntry.allowAlwaysSource)
    }
}

/// `argPattern` matching. The hashed forms bind one exact argument list (and, for the `cwd`
/// form, one directory); anything else is a regex over the arguments joined by single spaces,
/// run by a linear-time matcher (`ArgRegex`), so no pattern can make the Supervisor backtrack.
public enum ArgPattern {
    public static let argvPrefix = "sha256:argv:"
    public static let cwdArgvPrefix = "sha256:cwd-argv:v1:"

    /// upstream's subject: `<N>\0` then `<byteLen(arg)>\0<arg>\0` for each argument after argv[0].
    static func hashedSubject(_ argv: [String]) -> String {
        let args = argv.dropFirst()
        return "\(args.count)\0" + args.map { "\($0.utf8.count)\0\($0)\0" }.joined()
    }

    /// The argv-bound grant allow-always writes: `sha256:argv:<hex>`.
    public static func argvHash(_ argv: [String]) -> String {
        argvPrefix + FileDigest.sha256Hex(bytes: Array(hashedSubject(argv).utf8))
    }

    /// upstream's `buildCwdBoundHashedArgPattern` (POSIX).
    public static func cwdArgvHash(_ argv: [String], cwd: String) -> String {
        let normalized = normalize(cwd)
        let subject = "\(normalized.utf8.count)\0\(normalized)\0" + hashedSubject(argv)
        return cwdArgvPrefix + FileDigest.sha256Hex(bytes: Array(subject.utf8))
    }

    /// Whether `argPattern` admits `argv` run in `cwd`.
    public static func matches(_ argPattern: String, argv: [String], cwd: String?) -> Bool {
        if argPattern.hasPrefix(argvPrefix) { return argPattern == argvHash(argv) }
        if argPattern.hasPrefix(cwdArgvPrefix) { return cwd.map { argPattern == cwdArgvHash(argv, cwd: $0) } ?? false }
        guard let regex = ArgRegex(argPattern) else { return false }
        let subject = argPattern.contains("\0")
            ? (argv.count <= 1 ? "\0\0" : argv.dropFirst().joined(separator: "\0") + "\0")
            : argv.dropFirst().joined(separator: " ")
        return regex.search(subject)
    }

    /// `path.posix.normalize`: `.` and `..` resolved lexically, repeated slashes collapsed.
    static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == "..", let last = parts.last, last != ".." { parts.removeLast() } else if part == "..", absolute { continue } else { parts.append(part) }
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }
}
