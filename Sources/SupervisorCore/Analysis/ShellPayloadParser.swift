/// One word of a shell payload after quote removal.
///
/// `hasExpansion` is true when the word contained a character the shell would expand rather than
/// take literally: unquoted `$ * ? [ ~ {` or a `$` inside double quotes. Such a word may become
/// a different string, several words or none at run time, so analysis must not trust its text
/// as what will run; safe-bin segments are re-quoted instead (attack class 3).
public struct ShellToken: Equatable, Sendable {
    public var text: String
    public var hasExpansion: Bool

    public init(_ text: String, hasExpansion: Bool = false) {
        self.text = text
        self.hasExpansion = hasExpansion
    }
}

/// The operator that joins a segment to the next one.
public enum ShellOperator: String, Equatable, Sendable {
    case and = "&&"
    case or = "||"
    case sequence = ";"
    case pipe = "|"
}

/// One simple command of a payload: a pipeline stage or a list element.
///
/// `source` is the segment's original text (trimmed), so a payload can be rebuilt with some
/// segments replaced and the others byte-identical; `operatorAfter` is nil for the last segment.
public struct ShellSegment: Equatable, Sendable {
    public var tokens: [ShellToken]
    public var source: String
    public var operatorAfter: ShellOperator?

    public var argv: [String] { tokens.map(\.text) }

    public init(tokens: [ShellToken], source: String, operatorAfter: ShellOperator?) {
        self.tokens = tokens
        self.source = source
        self.operatorAfter = operatorAfter
    }
}

/// Why a payload was refused: a short human-readable reason (e.g. `unsupported shell token: >`),
/// suitable for logs and for `AllowlistEvaluation.blockedReason`.
public struct ShellPayloadError: Error, Equatable, Sendable {
    public var reason: String
}

/// Splits a shell payload into top-level simple commands (spec §3.5, §5.3), or refuses it.
///
/// Guarantees:
/// - Success means the payload is nothing but simple commands joined by `&&`, `||`, `;` and `|`,
///   with POSIX quoting (single quotes literal; double quotes with `\` escaping `$`, `` ` ``, `"`,
///   `\`; backslash outside quotes). Every command the shell would run is one of the segments.
/// - Everything else fails: redirections of any kind (`<`, `>`, `2>&1`, `&>`, here-docs,
///   process substitution), `$(`, backticks (also inside double quotes), unquoted `(`/`)`,
///   unquoted newlines and line continuations, `&` backgrounding, `|&`, `{`/`}` groups,
///   comments, empty segments, unterminated quotes or a trailing backslash.
/// - Of the expansions, only `$NAME`, `$1`, the special parameters (`$? $# $$ $! $- $@ $*`)
///   and `${NAME}` pass. Every other `${…}` form, `$[…]`, `$'…'`, `$"…"` and `$NAME[…]` (zsh
///   and ksh subscript that) fail: bash
///   evaluates subscripts, substring offsets and `${!…}` indirection arithmetically, and an
///   arithmetic evaluation of `a[$(cmd)]` runs `cmd`, even when that text sat in single quotes
///   or came from an environment value (issue 14 finding 6).
///
/// Comments are refused rather than stripped: text after `#` runs nothing, but it would show
/// in the approval prompt as if it did (or hide what does).
public enum ShellPayloadParser {
    /// upstream's `joinShellLineContinuations`, as the shell itself does it: a backslash before
    /// LF is removed with it outside single quotes and comments, so a multi-line
    /// `curl \` reads as its single-line form. In single quotes and comments it stays (the
    /// newline is then refused as usual); with an unterminated quote nothing is changed.
    static func joiningLineContinuations(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("\\") else { return text }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var index = 0
        var single = false, double = false, comment = false
        while index < text.count {
            let scalar = text[index]
            if comment {
                if scalar == "\n" { comment = false }
                out.append(scalar)
                index += 1
                continue
            }
            if single {
                if scalar == "'" { single = false }
                out.append(scalar)
                index += 1
                continue
            }
            if scalar == "\\" {
                // Only backslash-LF: to dash and bash, backslash-CR is an escaped CR and the LF
                // then ends the command (upstream also splices CRLF; a second command would hide).
                if index + 1 < text.count, text[index + 1] == "\n" { index += 2; continue }
                out.append(scalar)
                if index + 1 < text.count { out.append(text[index + 1]) }
                index += 2
                continue
            }
            switch scalar {
            case "'" where !double: single = true
            case "\"": double.toggle()
            case "#" where !double && (out.last.map { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == ";" || $0 == "|" || $0 == "&" } ?? true):
                comment = true
            default: break
            }
            out.append(scalar)
            index += 1
        }
        return single || double ? text : out
    }

    public static func parse(_ payload: String) -> [ShellSegment]? {
        try? analyze(payload).get()
    }

    public static func analyze(_ payload: String) -> Result<[ShellSegment], ShellPayloadError> {
        scan(payload, lenient: false)
    }

    /// The commands of a payload as far as *which programs it starts* goes, for binding an
    /// approval (never for the allowlist): newlines separate commands, comments are dropped,
    /// redirections are dropped with their targets (`2>&1`, `> out`, `<<<word`), every `$` form
    /// is an expansion, `{`/`}` and keywords stay words. Still refused: `$(…)`, backticks,
    /// subshells, here-documents and `&`, whose commands cannot be told from the text.
    public static func analyzeCommands(_ payload: String) -> Result<[ShellSegment], ShellPayloadError> {
        scan(payload, lenient: true)
    }

    static func scan(_ payload: String, lenient: Bool) -> Result<[ShellSegment], ShellPayloadError> {
        var scanner = Scanner(joiningLineContinuations(Array(payload.unicodeScalars)), lenient: lenient)
        do {
            return .success(try scanner.run())
        } catch {
            return .failure(error)
        }
    }

    /// Re-assembles segments into a payload, substituting `replacements[i]` for segment i's text.
    public static func render(_ segments: [ShellSegment], replacements: [Int: String] = [:]) -> String {
        var out = ""
        for (index, segment) in segments.enumerated() {
            out += replacements[index] ?? segment.source
            if let op = segment.operatorAfter { out += " \(op.rawValue) " }
        }
        return out
    }

    private struct Scanner {
        let chars: [Unicode.Scalar]
        var index = 0
        var segments: [ShellSegment] = []
        var tokens: [ShellToken] = []
        var word: String?
        var wordQuoted = false
        var wordExpands = false
        var segmentStart = 0
        let lenient: Bool
        /// Lenient mode: the next word is a redirection's target, not part of the command.
        var dropNextWord = false

        init(_ chars: [Unicode.Scalar], lenient: Bool) {
            self.chars = chars
            self.lenient = lenient
        }

        func peek(_ offset: Int = 1) -> Unicode.Scalar? {
            index + offset < chars.count ? chars[index + offset] : nil
        }

        func fail(_ reason: String) -> ShellPayloadError { ShellPayloadError(reason: reason) }

        mutating func append(_ scalar: Unicode.Scalar, expands: Bool = false) {
            if word == nil { word = "" }
            word!.unicodeScalars.append(scalar)
            wordExpands = wordExpands || expands
        }

        mutating func finishWord() throws(ShellPayloadError) {
            guard let text = word else { return }
            if dropNextWord {
                (word, wordQuoted, wordExpands, dropNextWord) = (nil, false, false, false)
                return
            }
            if !lenient, tokens.isEmpty, !wordQuoted, text == "{" || text == "}" {
                throw fail("unsupported shell token: \(text) group")
            }
            tokens.append(ShellToken(text, hasExpansion: wordExpands))
            word = nil
            wordQuoted = false
            wordExpands = false
        }

        mutating func finishSegment(_ op: ShellOperator?) throws(ShellPayloadError) {
            try finishWord()
            if dropNextWord { throw fail("redirection without a target") }
            if lenient, tokens.isEmpty {  // a blank line or a lone separator
                index += op?.rawValue.unicodeScalars.count ?? 0
                segmentStart = index
                return
            }
            guard !tokens.isEmpty else { throw fail(segments.isEmpty && op == nil ? "empty command" : "empty segment") }
            let source = Self.trimmedSource(chars[segmentStart..<index])
            segments.append(ShellSegment(tokens: tokens, source: source, operatorAfter: op))
            tokens = []
            index += op?.rawValue.unicodeScalars.count ?? 0
            segmentStart = index
        }

        mutating func run() throws(ShellPayloadError) -> [ShellSegment] {
            while index < chars.count {
                let c = chars[index]
                switch c {
                case " ", "\t":
                    try finishWord()
                    index += 1
                case "\n", "\r":
                    guard lenient else { throw fail("unsupported shell token: newline") }
                    try finishSegment(.sequence)
                case "'":
                    try singleQuoted()
                case "\"":
                    try doubleQuoted()
                case "\\":
                    guard let next = peek() else { throw fail("unterminated shell escape") }
                    if next == "\n" || next == "\r" {
                        guard lenient else { throw fail("unsupported shell token: newline") }
                        index += 2  // a line continuation
                        continue
                    }
                    append(next)
                    index += 2
                case "`":
                    throw fail("unsupported shell token: `")
                case "$" where lenient && peek() != "(":
                    append(c, expands: true)
                    index += 1
                case "$":
                    try dollar()
                case "*", "?", "[", "~", "{":
                    append(c, expands: true)
                    index += 1
                case "#" where word == nil:
                    guard lenient else { throw fail("unsupported shell token: # comment") }
                    while index < chars.count, chars[index] != "\n", chars[index] != "\r" { index += 1 }
                case "(", ")":
                    throw fail("unsupported shell token: \(c)")
                case "<", ">":
                    guard lenient else { throw fail("unsupported shell token: redirection \(c)") }
                    try redirection()
                case "&" where lenient && peek() == ">":
                    try finishWord()
                    index += 1
                    try redirection()
                case "&":
                    guard peek() == "&" else { throw fail("unsupported shell token: &") }
                    try finishSegment(.and)
                case "|":
                    if peek() == "&" { throw fail("unsupported shell token: |&") }
                    try finishSegment(peek() == "|" ? .or : .pipe)
                case ";":
                    try finishSegment(.sequence)
                default:
                    append(c)
                    index += 1
                }
            }
            try finishSegment(nil)
            return segments
        }

        /// Lenient mode: `[n]>`, `>>`, `>|`, `<`, `<>`, `>&`, `<&`, `&>`, `<<<` and the word after
        /// them are not part of the command. A here-document is refused.
        mutating func redirection() throws(ShellPayloadError) {
            // `2>`: digits right before the operator name the descriptor, not an argument.
            if let text = word, !wordQuoted, !text.isEmpty, text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) {
                (word, wordExpands) = (nil, false)
            }
            try finishWord()
            let op = chars[index]
            index += 1
            if op == "<", index < chars.count, chars[index] == "<" {
                guard index + 1 < chars.count, chars[index + 1] == "<" else { throw fail("unsupported shell token: here-document") }
                index += 2  // `<<<word`: a here-string
            } else if index < chars.count, chars[index] == op || chars[index] == "&" || chars[index] == "|" || (op == "<" && chars[index] == ">") {
                index += 1
            }
            dropNextWord = true
        }

        /// The segment's text without the blanks around it; a trailing blank that a backslash
        /// escapes is part of the last word (`echo a\ `), so it stays.
        static func trimmedSource(_ text: ArraySlice<Unicode.Scalar>) -> String {
            func blank(_ scalar: Unicode.Scalar) -> Bool { scalar == " " || scalar == "\t" }
            guard let first = text.firstIndex(where: { !blank($0) }) else { return "" }
            var end = text.lastIndex(where: { !blank($0) })! + 1
            var backslashes = 0
            while end - 1 - backslashes >= first, text[end - 1 - backslashes] == "\\" { backslashes += 1 }
            if backslashes % 2 == 1, end < text.endIndex { end += 1 }
            return String(String.UnicodeScalarView(text[first..<end]))
        }

        /// A `$` and what it expands: only the inert forms pass (see the type's guarantees).
        mutating func dollar() throws(ShellPayloadError) {
            switch peek() {
            case "("?: throw fail("unsupported shell token: $()")
            case "["?: throw fail("unsupported shell token: $[] arithmetic")
            case "'"?, "\""?: throw fail("unsupported shell token: $\(peek()!) quoting")
            case "{"?:
                guard let close = chars[(index + 2)...].firstIndex(of: "}"),
                      Self.isInertParameter(chars[(index + 2)..<close]) else {
                    throw fail("unsupported shell token: ${…} expansion")
                }
                for scalar in chars[index...close] { append(scalar, expands: true) }
                index = close + 1
            default:
                append("$", expands: true)
                index += 1
                // `$NAME[…]`: zsh (and ksh) subscript an unbraced parameter, arithmetically.
                var end = index
                while end < chars.count, chars[end] == "_" || chars[end].isASCIILetter || ("0"..."9").contains(chars[end]) { end += 1 }
                if end > index, end < chars.count, chars[end] == "[" { throw fail("unsupported shell token: $NAME[…] subscript") }
            }
        }

        /// `NAME`, digits, or one special parameter: expansions that never evaluate anything.
        static func isInertParameter(_ name: ArraySlice<Unicode.Scalar>) -> Bool {
            guard let first = name.first else { return false }
            if name.count == 1, "@*#?$!-0123456789".unicodeScalars.contains(first) { return true }
            if name.allSatisfy({ ("0"..."9").contains($0) }) { return true }
            guard first == "_" || first.isASCIILetter else { return false }
            return name.allSatisfy { $0 == "_" || $0.isASCIILetter || ("0"..."9").contains($0) }
        }

        mutating func singleQuoted() throws(ShellPayloadError) {
            guard let close = chars[(index + 1)...].firstIndex(of: "'") else {
                throw fail("unterminated shell quote")
            }
            word = (word ?? "") + String(String.UnicodeScalarView(chars[(index + 1)..<close]))
            wordQuoted = true
            index = close + 1
        }

        mutating func doubleQuoted() throws(ShellPayloadError) {
            word = word ?? ""
            wordQuoted = true
            index += 1
            while index < chars.count {
                let c = chars[index]
                switch c {
                case "\"":
                    index += 1
                    return
                case "`":
                    throw fail("unsupported shell token: `")
                case "$":
                    try dollar()
                case "\\":
                    guard let next = peek() else { throw fail("unterminated shell quote") }
                    if next == "\n" || next == "\r" { throw fail("unsupported shell token: newline") }
                    if next == "$" || next == "`" || next == "\"" || next == "\\" {
                        append(next)
                        index += 2
                    } else {
                        append(c)
                        index += 1
                    }
                default:
                    append(c)
                    index += 1
                }
            }
            throw fail("unterminated shell quote")
        }
    }
}
