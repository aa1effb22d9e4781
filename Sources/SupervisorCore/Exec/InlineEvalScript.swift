import Glibc
import NodeSupport
import OpenClawIPC

/// upstream's inline-eval materialisation for `system.run.prepare` (upstream-2026 §1.5;
/// `invoke-system-run-plan.ts@014998a`): `python3 -c CODE` and `node -e|--eval CODE` are
/// written to `<state>/tmp/inline-eval/<sha256>.py|.cjs` (0600, directory 0700), and the plan
/// runs the interpreter on that file, so the operator approves a file the node binds by hash
/// (`mutableFileOperand`): what runs is exactly the code that was approved, and an edit of the
/// file after approval is refused before spawn. The script re-executes the interpreter with the
/// original flag and code, so the program sees what `-c`/`-e` gives it.
///
/// Only the exact three-word forms are materialised, as upstream; other eval forms still fail
/// closed (`approval cannot safely bind this interpreter/runtime command`).
public enum InlineEvalScript {
    enum Runtime: Equatable {
        case python, node
        var fileExtension: String { self == .python ? ".py" : ".cjs" }
    }

    struct Form: Equatable {
        var runtime: Runtime
        /// argv[0]'s basename (upstream's `normalizedExecutable`).
        var normalizedExecutable: String
        var flag: String
        var code: String
    }

    /// `python* -c CODE` or `node|nodejs -e|--eval CODE`, exactly three words.
    static func form(_ argv: [String]) -> Form? {
        guard argv.count == 3 else { return nil }
        let name = ExecutableResolver.basename(argv[0])
        // The flag exactly as the interpreter reads it (` -c` is a script name to python).
        let flag = argv[1]
        if isPython(name), flag == "-c" { return Form(runtime: .python, normalizedExecutable: name, flag: flag, code: argv[2]) }
        if name == "node" || name == "nodejs", flag == "-e" || flag == "--eval" {
            return Form(runtime: .node, normalizedExecutable: name, flag: flag, code: argv[2])
        }
        return nil
    }

    /// `python`, `python3`, `python3.12` (upstream: `/^(?:python|python\d+(?:\.\d+)*)$/`).
    static func isPython(_ name: String) -> Bool {
        guard name.hasPrefix("python") else { return false }
        let version = name.dropFirst("python".count)
        guard !version.isEmpty else { return true }
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        return parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }
    }

    static func denied(_ text: String) -> ApprovalDenial { ApprovalDenial("SYSTEM_RUN_DENIED: \(text)") }

    /// The largest code materialised (an argv word is at most 128 KiB on Linux; a request can be larger).
    static let maxCodeBytes = 1 << 20
    /// Scripts kept at once: past it the oldest day is pruned first, then prepare refuses.
    static let maxScripts = 1_024

    /// Whether `path` is a script this node materialised (`…/tmp/inline-eval/<name>`).
    static func isMaterialized(_ path: String) -> Bool {
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return parent.hasSuffix("/tmp/inline-eval")
    }

    /// Writes the script for `form` into `directory` and returns its path (the same code,
    /// interpreter and flag always give the same file). Runs as the command's user.
    static func materialize(_ form: Form, resolvedPath: String, realPath: String, directory: String) -> Result<String, ApprovalDenial> {
        var info = stat()
        guard lstat(directory, &info) == 0 else { return .failure(denied("unable to prepare inline-eval temp dir")) }
        guard info.st_mode & S_IFMT == S_IFDIR else { return .failure(denied("inline-eval temp dir is unsafe")) }
        guard info.st_mode & 0o077 == 0 else { return .failure(denied("inline-eval temp dir is unsafe")) }
        guard form.code.utf8.count <= maxCodeBytes else { return .failure(denied("inline-eval code is too large to materialize")) }
        guard prune(directory, olderThan: time(nil) - 86_400) < maxScripts else {
            return .failure(denied("inline-eval temp dir is full"))
        }
        let digest = FileDigest.sha256Hex(bytes: Array(hashInput(form, resolvedPath: resolvedPath, realPath: realPath).utf8))
        let path = "\(directory)/\(digest)\(form.runtime.fileExtension)"
        do {
            try SecureFile.write(path, Array(script(form, resolvedPath: resolvedPath, realPath: realPath).utf8), mode: 0o600)
        } catch {
            return .failure(denied("unable to materialize inline-eval script"))
        }
        return .success(path)
    }

    /// upstream's digest input: `JSON.stringify({version, interpreter, flag, extension, code,
    /// interpreterSnapshot: {resolvedPath, resolvedRealPath}, runtimeWrapper})`, in that order.
    static func hashInput(_ form: Form, resolvedPath: String, realPath: String) -> String {
        let snapshot = #"{"resolvedPath":\#(quoted(resolvedPath)),"resolvedRealPath":\#(quoted(realPath))}"#
        return #"{"version":1,"interpreter":\#(quoted(form.normalizedExecutable)),"flag":\#(quoted(form.flag)),"#
            + #""extension":\#(quoted(form.runtime.fileExtension)),"code":\#(quoted(form.code)),"#
            + #""interpreterSnapshot":\#(snapshot),"runtimeWrapper":"cwd-eval-v1"}"#
    }

    static func quoted(_ text: String) -> String { (try? JSONText.encode(JSONValue.string(text))) ?? "\"\"" }

    /// The file: it refuses an interpreter that changed since the plan, then replaces itself
    /// with the interpreter running the original flag and code.
    static func script(_ form: Form, resolvedPath: String, realPath: String) -> String {
        switch form.runtime {
        case .python:
            return """
            import os
            __openclaw_inline_eval_interpreter = \(quoted(resolvedPath))
            __openclaw_inline_eval_realpath = \(quoted(realPath))
            __openclaw_inline_eval_code = \(quoted(form.code))
            if os.path.realpath(__openclaw_inline_eval_interpreter) != __openclaw_inline_eval_realpath:
                raise SystemExit("SYSTEM_RUN_DENIED: inline-eval interpreter changed before execution")
            os.execve(__openclaw_inline_eval_realpath, [__openclaw_inline_eval_interpreter, "-c", __openclaw_inline_eval_code], dict(os.environ))

            """
        case .node:
            return """
            "use strict";
            if (typeof process.execve !== "function") {
              throw new Error("SYSTEM_RUN_DENIED: inline-eval exec replacement unavailable");
            }
            process.execve(process.execPath, [process.execPath, \(quoted(form.flag)), \(quoted(form.code))], process.env);

            """
        }
    }

    /// `<state>/tmp/inline-eval`, made at start: 0700 and owned by the user commands run as
    /// (`owner`; the state dir and `tmp` stay the Supervisor's, searchable only). Scripts older
    /// than a day are removed. Nil when it cannot be made (prepare then refuses inline eval).
    public static func prepareDirectory(stateDir: String, owner: (uid: uid_t, gid: gid_t)?, now: time_t = time(nil)) -> String? {
        let tmp = "\(stateDir)/tmp"
        let directory = "\(tmp)/inline-eval"
        for path in [tmp, directory] {
            if mkdir(path, 0o700) != 0, errno != EEXIST { return nil }
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return nil }
        }
        if let owner {
            guard SecureFile.allowSearch(stateDir) || isSearchable(stateDir), chmod(tmp, 0o711) == 0,
                  chown(directory, owner.uid, owner.gid) == 0 else { return nil }
        }
        guard chmod(directory, 0o700) == 0 else { return nil }
        prune(directory, olderThan: now - 86_400)
        return directory
    }

    static func isSearchable(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & 0o011 == 0o011
    }

    /// Removes what is not a regular file or is older than `cutoff`; returns how many are kept.
    @discardableResult
    static func prune(_ directory: String, olderThan cutoff: time_t) -> Int {
        var kept = 0
        for name in directoryNames(directory) {
            var info = stat()
            let path = "\(directory)/\(name)"
            if lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG || info.st_mtim.tv_sec < cutoff { unlink(path) } else { kept += 1 }
        }
        return kept
    }
}
