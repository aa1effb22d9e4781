/// A write to `exec-approvals.json` that an exec decision asks for, as a value: the decision
/// stays a pure function, and the write happens only once the run it belongs to is sure to be
/// accepted (a run the queue refuses leaves the file as it was).
///
/// Each case carries every field the store needs, including the time to stamp, so applying
/// it later writes exactly what was decided.
public enum ApprovalsEffect: Equatable, Sendable {
    /// The operator chose "allow always": add `patterns` to the allowlist of `agentId`
    /// (`ExecApprovalsStore.addAllowAlways`). A failure denies the run.
    case allowAlways(agentId: String, grants: [AllowlistRule], now: Int64)
    /// An allowlist entry allowed a segment of the run: stamp it with the command and the path
    /// it resolved to (`ExecApprovalsStore.recordUse`). A failure is only logged.
    case recordUse(agentKey: String, id: String?, pattern: String, command: String, resolvedPath: String?, now: Int64)

    /// Writes the effect to `store`.
    public func apply(to store: ExecApprovalsStore) throws(ApprovalsError) {
        switch self {
        case let .allowAlways(agentId, grants, now):
            try store.addAllowAlways(agentId: agentId, grants: grants, now: now)
        case let .recordUse(agentKey, id, pattern, command, resolvedPath, now):
            try store.recordUse(agentKey: agentKey, id: id, pattern: pattern, command: command,
                                resolvedPath: resolvedPath, now: now)
        }
    }
}
