/// Who the commands run as (design §4): the ExecWorker drops to this user when the
/// Supervisor runs as root, and every command inherits it.
///
/// Guarantees of `choose`: when started as root, commands never run as uid 0 unless a user
/// with uid 0 was named explicitly (`--exec-user root`), and that choice always carries a
/// warning naming the risk. Without a name they run as the dedicated `openclaw` user, or, where
/// it does not exist, as `nobody` with a warning that says how to create it. Not root: the
/// Supervisor's own uid (a named other user then fails at start, it cannot be switched to).
public struct ExecUser: Equatable, Sendable {
    /// The dedicated user the `.deb` (sysusers.d) and `install --system` create.
    public static let dedicated = "openclaw"
    /// Its home, under the system service's state dir.
    public static let dedicatedHome = "/var/lib/openclaw-node/home"
    public static let createCommand =
        "useradd --system --user-group --home-dir \(dedicatedHome) --create-home --shell /usr/sbin/nologin \(dedicated)"

    static let rootRisk = "without capabilities root still owns most files, so an approved command can write "
        + "/root/.ssh/authorized_keys or root's crontab and take the machine"
    static let sharedRisk = "which other services and, by default, the network and browser workers share "
        + "(a command could signal them or read the browser's profile)"

    /// The user to become; nil keeps the Supervisor's uid (not started as root).
    public var name: String?
    /// Why this choice deserves attention (logged at start, a `warn` in doctor).
    public var warning: String?
    /// What to do about it.
    public var fix: String?

    public init(name: String?, warning: String? = nil, fix: String? = nil) {
        self.name = name
        self.warning = warning
        self.fix = fix
    }

    /// `keepsUid`: the user step is opted out (`--unconfined exec:user`), so commands keep
    /// the Supervisor's uid.
    public static func choose(requested: String?, isRoot: Bool = UserIdentity.isRoot, keepsUid: Bool = false,
                              lookup: (String) -> UserIdentity? = UserIdentity.lookup) -> ExecUser {
        guard isRoot else { return ExecUser(name: requested) }
        if keepsUid {
            return ExecUser(
                name: nil,
                warning: "commands run as uid 0 (--unconfined user): " + rootRisk,
                fix: "drop --unconfined user / exec:user so commands run as \(dedicated)")
        }
        if let requested {
            guard let user = lookup(requested), user.uid == 0 else { return ExecUser(name: requested) }
            return ExecUser(
                name: requested,
                warning: "commands run as uid 0 (--exec-user \(requested)): " + rootRisk,
                fix: "drop --exec-user \(requested) to run commands as \(dedicated) (create it: \(createCommand))")
        }
        let fallback = ConfinementPolicy.defaultNetUser
        switch lookup(dedicated) {
        case let user? where user.uid != 0:
            return ExecUser(name: dedicated)
        case .some:
            return ExecUser(
                name: fallback,
                warning: "the user \(dedicated) has uid 0 and is not used: commands run as \(fallback), " + sharedRisk,
                fix: "give \(dedicated) its own unprivileged uid (userdel \(dedicated); \(createCommand))")
        case nil:
            return ExecUser(
                name: fallback,
                warning: "there is no user \(dedicated): commands run as \(fallback), " + sharedRisk,
                fix: "create the dedicated user: \(createCommand) (the .deb and `install --system` do this)")
        }
    }
}
