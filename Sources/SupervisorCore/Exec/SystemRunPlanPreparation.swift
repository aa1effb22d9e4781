import OpenClawIPC

/// `system.run.prepare`: the node builds the plan an operator will approve from what the
/// request names on this host (the canonical cwd, argv[0] pinned to its realpath, the script
/// operand and its hash). `ApprovedRun.verify` builds it again just before an approved run.
extension SystemRunPlan {
    /// `system.run.prepare`: builds the plan for `request`, or the `INVALID_REQUEST` message.
    /// It reads the file system (cwd, executable, script): callers run it off the event loop.
    /// `defaultCwd` is where a command without a cwd runs (the exec user's home, for one):
    /// relative names are resolved there, as the command will resolve them.
    /// `inlineEvalDirectory`: where `python3 -c CODE` / `node -e CODE` are materialised
    /// (`InlineEvalScript`); nil: such forms fail closed.
    public static func prepare(_ request: SystemRunRequest, pathEnv: String, defaultCwd: String? = nil,
                               inlineEvalDirectory: String? = nil) -> Result<Prepared, WireError> {
        func denied(_ message: String) -> Result<Prepared, WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: message))
        }
        var cwd: CanonicalDirectory.Resolved?
        if let requested = request.cwd {
            switch CanonicalDirectory.resolve(requested) {
            case let .success(directory): cwd = directory
            case let .failure(denial): return denied(denial.message)
            }
        }
        var argv = request.command
        let lookupCwd = cwd?.path ?? defaultCwd
        var preview = ShellWrapper.bindablePayload(request.command)
        if let directory = inlineEvalDirectory, let form = InlineEvalScript.form(argv) {
            guard let found = ExecutableResolver.resolve(argv[0], cwd: lookupCwd, pathEnv: pathEnv),
                  let real = ExecutableResolver.realpath(found) else {
                return denied("SYSTEM_RUN_DENIED: approval requires a stable executable path")
            }
            switch InlineEvalScript.materialize(form, resolvedPath: found, realPath: real, directory: directory) {
            case let .success(script):
                // The operator approves the interpreter on this file; the preview shows the code.
                argv = [argv[0], script]
                preview = ExecCommandText.format(request.command)
            case let .failure(denial):
                return denied(denial.message)
            }
        }
        switch ExecutablePin.pin(argv, cwd: lookupCwd, pathEnv: pathEnv) {
        case let .success(pinned): argv = pinned
        case let .failure(denial): return denied(denial.message)
        }
        let operand: FileOperand?
        switch ScriptOperand.bind(argv, cwd: lookupCwd, pathEnv: pathEnv) {
        case let .success(bound): (operand, argv) = bound
        case let .failure(denial): return denied(denial.message)
        }
        let plan = SystemRunPlan(
            argv: argv, cwd: cwd?.path, commandPreview: preview,
            agentId: request.agentId, sessionKey: request.requestedSessionKey,
            mutableFileOperand: operand
        )
        return .success(Prepared(plan: plan, cwdIdentity: cwd?.identity))
    }

    /// A plan as the node made it, with what only the node needs: the cwd's identity.
    public struct Prepared: Equatable, Sendable {
        public var plan: SystemRunPlan
        public var cwdIdentity: FileIdentity?
    }
}
