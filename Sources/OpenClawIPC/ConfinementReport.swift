/// One confinement step a worker applies to itself at start-up (design §4).
public enum ConfinementStep: String, Codable, CaseIterable, Sendable {
    /// Drop to an unprivileged uid/gid and clear supplementary groups (when started as root).
    case user
    /// Empty effective, permitted, inheritable, ambient (and bounding, when we may) sets.
    case capabilities
    /// `PR_SET_NO_NEW_PRIVS`: nothing the process executes can gain privileges.
    case noNewPrivs = "no-new-privs"
    /// Landlock filesystem (and TCP port / scope) restrictions.
    case landlock
    /// The seccomp syscall filter.
    case seccomp
}

/// What a worker did to confine itself, reported in `ready` and by `openclaw-node doctor`.
public struct ConfinementReport: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable {
        /// In force.
        case active
        /// The operator turned it off (`--unconfined <step>`).
        case optedOut = "opted-out"
        /// Nothing to do here (e.g. the user step when not started as root).
        case notNeeded = "not-needed"
        /// Could not be applied; the worker refuses to run unless opted out.
        case failed
    }

    public struct Entry: Codable, Equatable, Sendable {
        public var step: ConfinementStep
        public var state: State
        public var detail: String?
        public init(step: ConfinementStep, state: State, detail: String? = nil) {
            self.step = step
            self.state = state
            self.detail = detail
        }
    }

    public var entries: [Entry]
    public init(entries: [Entry] = []) { self.entries = entries }

    public var failure: Entry? { entries.first { $0.state == .failed } }

    public func state(of step: ConfinementStep) -> State? { entries.first { $0.step == step }?.state }
}
