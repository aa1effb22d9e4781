import Glibc
import NodeSupport

/// Binds a command to the local file it would read as a program (§4.2 `mutableFileOperand`),
/// so an approved script cannot be edited or swapped before it runs.
///
/// Guarantees of `bind`:
/// - Every program file the command's interpreter will read is found, or the form is refused
///   (`cannotBind`): shells (`bash [options] script.sh`, with `-o NAME`/`+O NAME` values
///   skipped, not taken for the script), `python*`/`pypy*`, `node*`, `perl*`, `ruby*`, `php*`,
///   `lua*` (versioned names such as `perl5.36.0` or `node20` included), `awk -f`/`gawk -E`,
///   `sed -f`, `tclsh`/`wish`/`expect`/`Rscript`/`julia`/`guile`, and any file run directly
///   whose first bytes are `#!`. Options that load code from elsewhere (`-m`, `-r`, `-I`,
///   `--import`, `-i FILE`, `-l LIB` …), read the program from stdin (`-`, `-s`), or are simply
///   unknown, refuse the form; so do package runners (`npx`, `pnpm`, `bun` …) and busybox.
/// - Inside a shell payload, a segment that would need a binding refuses the whole command
///   (`sh -lc "node ./run.js"`): a payload's scripts cannot be bound.
/// - The bound file is named by its real path in the returned argv as well as in the operand:
///   what runs is the file that was hashed, even if the path first given was a symlink that is
///   re-pointed after approval.
/// - The file is hashed with `FileDigest.sha256Hex(regularFile:)` (no FIFO, no symlink, size
///   and time bounds).
enum ScriptOperand {
    static let cannotBind = ApprovalDenial("SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")

    /// Where the program of one (unwrapped) argv comes from.
    enum Program: Equatable {
        /// From the argv itself (`awk '{…}'`), or nowhere.
        case inline
        /// Interpreter inline eval (`python3 -c …`, `perl -e …`): refused unless it is one of
        /// the exact forms `InlineEvalScript` materialises to a bound file.
        case eval
        /// From the file named by `argv[index]`.
        case file(index: Int)
        /// From somewhere that cannot be bound.
        case unbindable
    }

    struct Interpreter {
        var eval: Set<String>
        var unbindable: Set<String>
        var harmless: Set<String>
    }

    static let interpreters: [String: Interpreter] = [
        "python": Interpreter(eval: ["-c"], unbindable: ["-m", "-X", "-W"],
                              harmless: ["-u", "-B", "-E", "-I", "-O", "-OO", "-s", "-S", "-q", "-b", "-bb", "-v"]),
        "node": Interpreter(eval: ["-e", "--eval", "-p", "--print"],
                            unbindable: ["-r", "--require", "--import", "--loader", "--experimental-loader"],
                            harmless: ["--no-warnings", "--trace-warnings", "--enable-source-maps"]),
        "perl": Interpreter(eval: ["-e", "-E"], unbindable: ["-M", "-I", "-m", "-x"], harmless: ["-w", "-W", "-X", "-T", "-t", "-l", "-s"]),
        "ruby": Interpreter(eval: ["-e"], unbindable: ["-r", "-I", "-x"], harmless: ["-w", "-W", "-v", "-d"]),
        // `php -f script.php`: the flag names the script, which is then the next word.
        "php": Interpreter(eval: ["-r"], unbindable: ["-d", "-c", "-B", "-R", "-F", "-E"], harmless: ["-n", "-q", "-f"]),
        "lua": Interpreter(eval: ["-e"], unbindable: ["-l"], harmless: ["-v", "-W", "-E"]),
    ]
    /// Interpreters whose first operand is the program and which take no option we vet.
    static let plainScriptRunners: Set<String> = ["tclsh", "wish", "expect", "Rscript", "julia", "guile", "escript"]
    static let runtimeRunners: Set<String> = [
        "bun", "bunx", "deno", "tsx", "ts-node", "ts-node-esm", "esno", "jiti", "vite-node", "npx", "pnpm", "npm", "yarn",
    ]
    static let awks: Set<String> = ["awk", "gawk", "mawk", "nawk", "original-awk"]
    static let seds: Set<String> = ["sed", "gsed"]

    /// `python3.12` → `python`, `perl5.36.0` → `perl`, `tclsh8.6` → `tclsh`, `guile-3.0` →
    /// `guile`: a program name without its version suffix.
    static func unversioned(_ name: String) -> String {
        let base = String(name.reversed().drop { $0.isASCIIDigit || $0 == "." }.reversed())
        return base.count < name.count && base.hasSuffix("-") ? String(base.dropLast()) : base
    }

    /// The interpreter family of a (versioned) name.
    static func family(_ name: String) -> String? {
        let base = unversioned(name)
        switch base {
        case "python", "pypy": return "python"
        case "node", "nodejs": return "node"
        case "perl", "ruby", "php", "lua": return base
        case "luajit": return "lua"
        default: return nil
        }
    }

    /// The plan's operand and argv (with the operand pinned to its real path), or why not.
    static func bind(_ argv: [String], cwd: String?, pathEnv: String)
        -> Result<(operand: SystemRunPlan.FileOperand?, argv: [String]), ApprovalDenial>
    {
        let offset: Int
        let inner: [String]
        if let shell = ShellWrapper.detect(argv) {
            guard payloadNeedsNoBinding(shell.payload, cwd: cwd, pathEnv: pathEnv) else { return .failure(cannotBind) }
            // Positional carriers (`sh -c '"$0" "$1"' python3 ./x.py`) are what the payload
            // runs with: judged, and bound, as a command of their own.
            offset = shell.payloadIndex + 1
            inner = Array(argv[offset...])
            if inner.isEmpty { return .success((nil, argv)) }
        } else {
            guard case let .plain(unwrapped, _, _) = DispatchWrappers.unwrap(argv) else { return .failure(cannotBind) }
            (offset, inner) = (argv.count - unwrapped.count, unwrapped)
        }
        switch program(of: inner, cwd: cwd, pathEnv: pathEnv) {
        case .inline: return .success((nil, argv))
        case .unbindable, .eval: return .failure(cannotBind)
        case let .file(index):
            let token = inner[index]
            let located = index == 0
                ? ExecutableResolver.resolve(token, cwd: cwd, pathEnv: pathEnv) ?? absolute(token, cwd: cwd)
                : absolute(token, cwd: cwd)
            switch snapshot(located) {
            case let .failure(denial): return .failure(denial)
            case let .success((real, digest)):
                var pinned = argv
                pinned[offset + index] = real
                return .success((SystemRunPlan.FileOperand(argvIndex: offset + index, path: real, sha256: digest), pinned))
            }
        }
    }

    /// The real path and hash of a script operand, with upstream's denial texts.
    static func snapshot(_ path: String) -> Result<(String, String), ApprovalDenial> {
        var info = stat()
        guard stat(path, &info) == 0 else { return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing script operand")) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a file script operand")) }
        guard let real = ExecutableResolver.realpath(path) else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a stable script operand"))
        }
        switch FileDigest.sha256Hex(regularFile: real) {
        case let .success(digest): return .success((real, digest))
        case .failure(.missing): return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing script operand"))
        case .failure(.notRegularFile): return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a file script operand"))
        case .failure(.tooLarge): return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a script operand of at most 64 MiB"))
        case .failure(.tooSlow), .failure(.unreadable):
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a readable script operand"))
        }
    }

    static func absolute(_ token: String, cwd: String?) -> String {
        token.hasPrefix("/") ? token : ExecutableResolver.join(cwd ?? ExecutableResolver.currentDirectory() ?? "/", token)
    }

    /// Words that start or end a compound command, and `time`: the command is what follows.
    static let leadingKeywords: Set<String> = [
        "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "-p",
    ]

    /// A shell payload may be approved as its text only if none of its commands reads a
    /// program from a file, which a payload cannot bind (`sh -lc "node ./run.js"`), and if it
    /// can be told from the text what its commands are: command substitution, subshells,
    /// here-documents, `.`/`source`/`eval` and a command word the shell would still expand
    /// refuse the approval. Programs found on PATH (`pytest`, `npm` …) are programs here, not
    /// script operands; a path (`./run.sh`) to a script is an operand.
    static func payloadNeedsNoBinding(_ payload: String, cwd: String?, pathEnv: String) -> Bool {
        guard case let .success(segments) = ShellPayloadParser.analyzeCommands(payload) else { return false }
        for segment in segments {
            var tokens = ArraySlice(segment.tokens)
            // (A lone `{` counts as a possible brace expansion in the token; it is a group here.)
            while let first = tokens.first, leadingKeywords.contains(first.text), !first.hasExpansion || first.text == "{" {
                tokens = tokens.dropFirst()
            }
            // `exec cmd` and `command cmd` run cmd; `command -v` only looks it up.
            if let first = tokens.first?.text, first == "exec" || first == "command" {
                tokens = tokens.dropFirst()
                if first == "command", let flag = tokens.first?.text, flag == "-v" || flag == "-V" { continue }
                while let flag = tokens.first?.text, flag.hasPrefix("-") {
                    guard flag == "-p" || flag == "-c" || flag == "-l" || flag == "--" else { return false }
                    tokens = tokens.dropFirst()
                }
            }
            guard let command = tokens.first else { continue }
            // `"$0" "$1"`: a positional carrier, which `bind` judges as a command of its own.
            if command.hasExpansion, isPositional(command.text) { continue }
            if command.hasExpansion || [".", "source", "eval", "builtin"].contains(command.text) { return false }
            guard case let .plain(inner, _, _) = DispatchWrappers.unwrap(tokens.map(\.text)) else { return false }
            switch program(of: inner, cwd: cwd, pathEnv: pathEnv) {
            case .inline: continue
            // upstream: an interpreter's inline eval inside a payload cannot be bound
            // (`sh -lc 'python3 -c …'` is in its ambiguous-forms table).
            case .eval: return false
            case .file(0) where !inner[0].contains("/"): continue
            case .file, .unbindable: return false
            }
        }
        return true
    }

    /// `$0`…`$9`, `${N}`, `$@`, `$*`.
    static func isPositional(_ word: String) -> Bool {
        var name = Substring(word)
        guard name.hasPrefix("$") else { return false }
        name = name.dropFirst()
        if name.hasPrefix("{"), name.hasSuffix("}") { name = name.dropFirst().dropLast() }
        return name == "@" || name == "*" || (!name.isEmpty && name.allSatisfy(\.isASCIIDigit))
    }

    /// Where the program of `argv` (no dispatch wrappers) comes from.
    static func program(of argv: [String], cwd: String?, pathEnv: String) -> Program {
        guard let first = argv.first else { return .inline }
        let resolved = ExecutableResolver.resolve(first, cwd: cwd, pathEnv: pathEnv)
        // Judged by the file that runs too: `ls` may be a link to python3.
        let names = [ExecutableResolver.basename(first)]
            + (resolved.flatMap(ExecutableResolver.realpath).map { [ExecutableResolver.basename($0)] } ?? [])
        for name in names.reversed() {
            if let program = program(named: name, argv) { return program }
        }
        // A script run directly is as mutable as one passed to its interpreter.
        if let resolved, isScript(resolved) { return .file(index: 0) }
        return .inline
    }

    /// What a known interpreter or runner does with `argv`; nil for other programs.
    static func program(named name: String, _ argv: [String]) -> Program? {
        let base = unversioned(name)
        if runtimeRunners.contains(name) || runtimeRunners.contains(base) || ShellWrapper.multiplexers.contains(base) {
            return .unbindable
        }
        if ShellWrapper.shells.contains(base) { return shellProgram(argv, fish: base == "fish") }
        if let family = family(name), let rules = interpreters[family] { return interpreterProgram(argv, rules) }
        if awks.contains(base) { return awkProgram(argv) }
        if seds.contains(base) { return sedProgram(argv) }
        if plainScriptRunners.contains(base) {
            guard argv.count > 1 else { return .inline }
            return argv[1].hasPrefix("-") ? .unbindable : .file(index: 1)
        }
        return nil
    }

    /// `sh [options] [--] script [args]`; no script: the program is stdin (/dev/null).
    static func shellProgram(_ argv: [String], fish: Bool) -> Program {
        let fishFlags: Set<String> = ["-l", "-n", "-N", "-P", "--login", "--no-execute", "--no-config", "--private"]
        var index = 1
        while index < argv.count {
            let token = argv[index]
            if token == "--" { index += 1; break }
            if token == "-" { return .unbindable }
            if fish {
                guard token.hasPrefix("-") else { break }
                guard fishFlags.contains(token) else { return .unbindable }
                index += 1
                continue
            }
            if token.hasPrefix("--") {
                guard ShellWrapper.longFlags.contains(token) else { return .unbindable }
                index += 1
                continue
            }
            guard token.count > 1, token.hasPrefix("-") || token.hasPrefix("+") else { break }
            var values = 0
            for letter in token.dropFirst() {
                if letter == "o" || letter == "O" {
                    values += 1  // `-o NAME`, `+O NAME`: the next word is the option's name
                } else if !ShellWrapper.posixShortFlags.contains(letter) {
                    return .unbindable  // -c (a payload), -s (stdin), -i (rc files), unknown
                }
            }
            index += 1 + values
            if index > argv.count { return .unbindable }
        }
        return index < argv.count ? .file(index: index) : .inline
    }

    static func interpreterProgram(_ argv: [String], _ rules: Interpreter) -> Program {
        var index = 1
        while index < argv.count, argv[index].hasPrefix("-"), argv[index] != "-" {
            let flag = argv[index]
            if flag == "--" { index += 1; break }
            let key = flag.hasPrefix("--") ? String(flag.prefix { $0 != "=" }) : String(flag.prefix(2))
            if rules.eval.contains(key) { return .eval }
            if rules.unbindable.contains(key) || !rules.harmless.contains(flag) { return .unbindable }
            index += 1
        }
        guard index < argv.count else { return .inline }
        return argv[index] == "-" ? .unbindable : .file(index: index)
    }

    /// `awk [options] -f progfile …` binds progfile; `awk [options] 'program' …` carries its
    /// program in argv. Two program files, include/load options and unknown options refuse.
    static func awkProgram(_ argv: [String]) -> Program {
        let harmless: Set<String> = ["-b", "-c", "-P", "-r", "-s", "-S", "-n", "-N", "-M", "-t", "--posix", "--traditional",
                                     "--sandbox", "--characters-as-bytes", "--re-interval", "--non-decimal-data", "--bignum"]
        let valued: Set<String> = ["-v", "-F", "--assign", "--field-separator", "-e", "--source"]
        var program: Int?
        var index = 1
        while index < argv.count {
            let token = argv[index]
            if token == "--" { break }
            guard token.hasPrefix("-"), token != "-" else { break }
            if token == "-f" || token == "-E" || token == "--file" || token == "--exec" {
                guard program == nil, index + 1 < argv.count else { return .unbindable }
                program = index + 1
                index += 2
                if token == "-E" || token == "--exec" { break }  // ends the options
            } else if valued.contains(token) {
                index += 2
            } else if harmless.contains(token) || ["-v", "-F", "--assign=", "--field-separator=", "-e", "--source="].contains(where: {
                token.hasPrefix($0) && token.count > $0.count
            }) {
                index += 1
            } else {
                return .unbindable  // -fFILE, --file=FILE, -i/--include, -l/--load, -W …, unknown
            }
        }
        if index > argv.count { return .unbindable }
        return program.map { .file(index: $0) } ?? .inline
    }

    /// `sed [options] -f script …` binds the script; `sed -e …`/`sed 'script'` carry theirs.
    static func sedProgram(_ argv: [String]) -> Program {
        let harmlessLong: Set<String> = ["--posix", "--debug", "--sandbox", "--quiet", "--silent", "--regexp-extended",
                                         "--separate", "--unbuffered", "--null-data", "--follow-symlinks", "--in-place"]
        var program: Int?
        var index = 1
        while index < argv.count {
            let token = argv[index]
            if token == "--" { break }
            guard token.hasPrefix("-"), token != "-" else { break }
            index += 1
            if token.hasPrefix("--") {
                let name = String(token.prefix { $0 != "=" })
                if harmlessLong.contains(name) { continue }
                if name == "--expression" || name == "--line-length" {
                    if !token.contains("=") { index += 1 }
                    continue
                }
                if token == "--file", program == nil, index < argv.count { program = index; index += 1; continue }
                return .unbindable
            }
            let letters = Array(token.dropFirst())
            scan: for (position, letter) in letters.enumerated() {
                let rest = position + 1 < letters.count
                switch letter {
                case "n", "E", "r", "s", "u", "z": continue
                case "i": break scan  // the rest of the word is a backup suffix
                case "e", "l":
                    if !rest { index += 1 }
                    break scan
                case "f":
                    guard !rest, program == nil, index < argv.count else { return .unbindable }
                    program = index
                    index += 1
                    break scan
                default: return .unbindable
                }
            }
        }
        if index > argv.count { return .unbindable }
        return program.map { .file(index: $0) } ?? .inline
    }

    /// A regular file that is not an ELF binary: `#!` names its interpreter, and a shell runs
    /// one without `#!` as a script of its own (opened without blocking: it may be a FIFO).
    static func isScript(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        var head: [UInt8] = [0, 0, 0, 0]
        let count = read(fd, &head, 4)
        return count >= 0 && !(count == 4 && head == [0x7F, 0x45, 0x4C, 0x46])
    }
}
