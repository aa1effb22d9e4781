/// Recognises interpreter "inline eval" forms, where the program text is an argument rather
/// than a file (spec §5.6 `strictInlineEval`, attack class 12).
///
/// Guarantees:
/// - Dispatch wrappers are peeled first, so `nice python3 -c …` is found; a blocked wrapper
///   chain yields nil because analysis of that argv already fails closed.
/// - Interpreters: `python*` (`-c`), `node`/`nodejs` (`-e --eval -p --print`), `ruby*` (`-e`),
///   `perl*` (`-e -E`), `php*` (`-r --run`), `lua*` (`-e`), `osascript` (`-e`), where `*` is a
///   version suffix of digits and dots (`python3.12`, `php8.2`).
/// - Detection errs towards "yes": every argument up to `--` is examined, short clusters count
///   when they contain the flag letter (`-Bc`, `-pe`, `-ne`) and attached values count
///   (`-cprint(1)`, `--eval=…`). A false positive only costs an approval prompt.
/// - The description is `"<basename> <flag>"`, e.g. `"python3 -c"`.
public enum InlineEval {
    struct Interpreter {
        var letters: [Character: String]
        var longFlags: [String]
    }

    static func interpreter(for name: String) -> Interpreter? {
        func versioned(_ base: String) -> Bool {
            guard name.hasPrefix(base) else { return false }
            return name.dropFirst(base.count).allSatisfy { $0 == "." || $0.isASCIIDigit }
        }
        if versioned("python") { return Interpreter(letters: ["c": "-c"], longFlags: []) }
        if name == "node" || name == "nodejs" {
            return Interpreter(letters: ["e": "-e", "p": "-p"], longFlags: ["--eval", "--print"])
        }
        if versioned("ruby") { return Interpreter(letters: ["e": "-e"], longFlags: []) }
        if versioned("perl") { return Interpreter(letters: ["e": "-e", "E": "-E"], longFlags: []) }
        if versioned("php") { return Interpreter(letters: ["r": "-r"], longFlags: ["--run"]) }
        if versioned("lua") { return Interpreter(letters: ["e": "-e"], longFlags: []) }
        if name == "osascript" { return Interpreter(letters: ["e": "-e"], longFlags: []) }
        return nil
    }

    public static func detect(_ argv: [String]) -> String? {
        guard case .plain(let inner, _, _) = DispatchWrappers.unwrap(argv), let executable = inner.first else {
            return nil
        }
        let name = ExecutableResolver.basename(executable)
        guard let interpreter = interpreter(for: name) else { return nil }
        for arg in inner.dropFirst() {
            if arg == "--" { break }
            if arg.hasPrefix("--") {
                let flag = String(arg.prefix { $0 != "=" })
                if interpreter.longFlags.contains(flag) { return "\(name) \(flag)" }
            } else if arg.hasPrefix("-") {
                if let letter = arg.dropFirst().first(where: { interpreter.letters[$0] != nil }) {
                    return "\(name) \(interpreter.letters[letter]!)"
                }
            }
        }
        return nil
    }
}
