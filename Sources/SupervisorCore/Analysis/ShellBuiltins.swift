/// What a shell runs itself rather than by `execve`, for the first word of a payload segment.
///
/// The allowlist judges a segment by the file its command word resolves to on PATH. For a few
/// words that file is not what runs: the shell's builtin of the same name is (`printf`,
/// `test`, `[`, `echo`, `kill`, `pwd`, `true`, `false`), and two of those evaluate a variable
/// *name* arithmetically: `printf -v 'a[$(cmd)]'` and `test -v 'a[$(cmd)]'` run `cmd` in bash
/// (issue 14 finding 6). Keywords (`[[`, `if`, `for`, `!` …) start compound commands whose
/// parts the analysis never sees.
///
/// Guarantees: `refusal` is nil only for a segment whose first word is not a keyword, and is
/// either not a builtin or one of those builtins used in a form that evaluates nothing (no
/// `-v`/`-R`, no word the shell could still rewrite).
enum ShellBuiltins {
    static let keywords: Set<String> = [
        "!", "[[", "]]", "{", "}", "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while",
        "until", "do", "done", "in", "function", "coproc",
    ]
    /// Builtins that evaluate their operands as variable names or arithmetic when asked to.
    static let nameEvaluating: [String: Set<String>] = ["printf": ["-v"], "test": ["-v", "-R"], "[": ["-v", "-R"]]

    /// `commandIndex`: where the command word is after the dispatch wrappers. Only bash's `time`
    /// keyword keeps the shell running the next word itself (`time printf -v …` is the builtin);
    /// any other wrapper execs the file the allowlist judged.
    static func refusal(_ segment: ShellSegment, commandIndex: Int = 0) -> String? {
        let leading = segment.tokens.prefix(commandIndex)
        guard leading.allSatisfy({ $0.text == "time" || $0.text == "-p" || $0.text == "--" }) else { return nil }
        let tokens = segment.tokens.dropFirst(commandIndex)
        guard let first = tokens.first else { return nil }
        if keywords.contains(first.text) { return "unsupported shell token: \(first.text) (a shell keyword)" }
        guard let flags = nameEvaluating[first.text] else { return nil }
        for token in tokens.dropFirst() {
            // `-v` (or `-vNAME`) names a variable; a word the shell still expands could become one.
            if token.hasExpansion || flags.contains(where: { token.text.hasPrefix($0) }) {
                return "unsupported shell token: \(first.text) \(token.text) (the shell builtin may evaluate it)"
            }
        }
        return nil
    }
}
