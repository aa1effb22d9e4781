/// Matches exec-allowlist patterns against resolved executable paths (spec §5.3).
///
/// Guarantees:
/// - A pattern (trimmed) is usable only if it contains `/`, `\` or `~`, or is exactly `*`;
///   basename-only entries such as `rg` never match anything.
/// - A bare `*` matches every path.
/// - A leading `~` (alone or followed by `/`) is replaced by `home`; with no home it never matches.
/// - `**` matches any run of characters including `/`; `*` any run without `/`; `?` exactly one
///   character other than `/`. Everything else is literal. The match is anchored at both ends.
/// - Comparison is case-sensitive, as on every POSIX file system (upstream lower-cases only on
///   Windows): `/x/bin/tool` never authorises the different file `/x/bin/TOOL`. A `\` in a
///   pattern reads as `/`; in the path it is the literal character it is on Linux, so
///   `/x/a\b` (one file name) is never taken for `/x/a/b`.
/// - Matching runs in O(pattern × path) time and constant stack: it simulates the pattern as a
///   set of states instead of backtracking, so no pattern can make it blow up.
public enum AllowlistGlob {
    public static func isUsable(_ pattern: String) -> Bool {
        let trimmed = pattern.trimmingWhitespace()
        return trimmed == "*" || trimmed.contains { $0 == "/" || $0 == "\\" || $0 == "~" }
    }

    public static func matches(pattern: String, path: String, home: String?) -> Bool {
        let trimmed = pattern.trimmingWhitespace()
        guard isUsable(trimmed) else { return false }
        if trimmed == "*" { return true }
        guard let expanded = expandHome(trimmed, home: home) else { return false }
        return run(compile(normalize(expanded)), against: Array(path))
    }

    static func expandHome(_ pattern: String, home: String?) -> String? {
        guard pattern == "~" || pattern.hasPrefix("~/") else { return pattern }
        guard let home, !home.isEmpty else { return nil }
        return SafeBinPolicy.stripTrailingSlashes(home) + pattern.dropFirst()
    }

    static func normalize(_ text: String) -> String {
        String(text.map { $0 == "\\" ? "/" : $0 })
    }

    enum Element: Equatable {
        case literal(Character)
        case one        // ?
        case segment    // *
        case any        // **
    }

    static func compile(_ pattern: String) -> [Element] {
        var elements: [Element] = []
        let chars = Array(pattern)
        var index = 0
        while index < chars.count {
            switch chars[index] {
            case "*":
                var run = 0
                while index < chars.count, chars[index] == "*" { run += 1; index += 1 }
                elements.append(run >= 2 ? .any : .segment)
                continue
            case "?": elements.append(.one)
            default: elements.append(.literal(chars[index]))
            }
            index += 1
        }
        return elements
    }

    /// NFA simulation: `active[i]` means "the first i elements can match the text read so far".
    static func run(_ elements: [Element], against text: [Character]) -> Bool {
        var active = [Bool](repeating: false, count: elements.count + 1)
        var next = active
        active[0] = true
        closeOverStars(&active, elements)
        for char in text {
            for i in next.indices { next[i] = false }
            var any = false
            for (i, element) in elements.enumerated() where active[i] {
                switch element {
                case .literal(let c): if c == char { next[i + 1] = true; any = true }
                case .one: if char != "/" { next[i + 1] = true; any = true }
                case .segment: if char != "/" { next[i] = true; any = true }
                case .any: next[i] = true; any = true
                }
            }
            if !any { return false }
            closeOverStars(&next, elements)
            swap(&active, &next)
        }
        return active[elements.count]
    }

    /// Stars may match nothing, so reaching a star also reaches the element after it.
    private static func closeOverStars(_ states: inout [Bool], _ elements: [Element]) {
        for (i, element) in elements.enumerated() where states[i] && (element == .segment || element == .any) {
            states[i + 1] = true
        }
    }
}
