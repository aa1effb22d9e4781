import OpenClawIPC

/// What an approved `system.run` may run, as the node itself re-derives it from the approved
/// plan just before the run (issue 14 findings 8 and 11).
///
/// The plan a request carries comes back from the gateway, so its `mutableFileOperand` is a
/// claim, not a fact: the node never opens a path from it. It runs `system.run.prepare` again
/// on the approved argv and cwd and requires the same plan: the same canonical cwd, the same
/// pinned argv (argv[0] and the script operand at their real paths), the same operand path
/// and the same hash. Only files the node's own plan names are read, and only through
/// `FileDigest` (no FIFO, no symlink, bounded).
struct ApprovedRun: Equatable {
    var cwd: String?
    var cwdIdentity: FileIdentity?
    var operand: OperandBinding?

    /// `request` has passed `checkApprovalBinding` (its argv, cwd and ids are the plan's).
    static func verify(_ request: SystemRunRequest, pathEnv: String, defaultCwd: String? = nil) -> Result<ApprovedRun, WireError> {
        guard let sent = request.plan else { return .failure(WireError(code: "INVALID_REQUEST", message: "systemRunPlan invalid")) }
        let derived: SystemRunPlan.Prepared
        switch SystemRunPlan.prepare(request, pathEnv: pathEnv, defaultCwd: defaultCwd) {
        case let .success(prepared): derived = prepared
        case let .failure(error): return .failure(error)
        }
        func changed(_ message: String) -> Result<ApprovedRun, WireError> {
            .failure(WireError(code: "UNAVAILABLE", message: "SYSTEM_RUN_DENIED: " + message))
        }
        guard derived.plan.cwd == request.cwd else {
            return .failure(WireError(code: "INVALID_REQUEST",
                                      message: "SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink path components)"))
        }
        guard derived.plan.argv == request.command else { return changed("approval executable changed before execution") }
        let bound: OperandBinding?
        switch (derived.plan.mutableFileOperand, sent.mutableFileOperand) {
        case (nil, nil):
            bound = nil
        case (.some, nil):
            return changed("approval missing script operand binding")
        case let (now?, approved?) where now.argvIndex == approved.argvIndex && now.path == approved.path:
            guard now.sha256 == approved.sha256 else { return changed("approval script operand changed before execution") }
            bound = OperandBinding(path: now.path, sha256: now.sha256)
        default:
            return changed("approval script operand changed before execution")
        }
        return .success(ApprovedRun(cwd: derived.plan.cwd, cwdIdentity: derived.cwdIdentity, operand: bound))
    }
}
