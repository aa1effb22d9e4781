import OpenClawIPC

/// `system.run.prepare`: the node builds the plan an operator will approve from what the
/// request names on this host (the canonical cwd, argv[0] pinned to its realpath, the script
/// operand and its hash). `ApprovedRun.verify` builds it again just before an approved run.
extension SystemRunPlan {
    /// `system.run.prepare`: builds the plan for `request`, or the `INVALID_REQUEST` message.
    /// It reads the file system (cwd, executable, script): callers run it off the event loop.
    /// `defaultCwd` is where a command without a cwd runs (the exec user's home, for one):
    /// relative names are resolved there, as the command will resolve them.
    public static func prepare(_ request: SystemRunRequest, pathEnv: String, defaultCwd: String? = nil) -> Result<Prepared, WireError> {
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
            argv: argv, cwd: cwd?.path, commandPreview: ShellWrapper.bindablePayload(request.command),
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
