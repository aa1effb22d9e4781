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

    public static func choose(requested: String?, isRoot: Bool = UserIdentity.isRoot,
                              lookup: (String) -> UserIdentity? = UserIdentity.lookup) -> ExecUser {
        guard isRoot else { return ExecUser(name: requested) }
        if let requested {
            guard let user = lookup(requested), user.uid == 0 else { return ExecUser(name: requested) }
            return ExecUser(
                name: requested,
                warning: "commands run as uid 0 (--exec-user \(requested)): without capabilities root still owns most files, "
                    + "so an approved command can write /root/.ssh/authorized_keys or root's crontab and take the machine",
                fix: "drop --exec-user \(requested) to run commands as \(dedicated) (create it: \(createCommand))")
        }
        if lookup(dedicated) != nil { return ExecUser(name: dedicated) }
        return ExecUser(
            name: ConfinementPolicy.defaultNetUser,
            warning: "there is no user \(dedicated): commands run as \(ConfinementPolicy.defaultNetUser), "
                + "which other services may share",
            fix: "create the dedicated user: \(createCommand) (the .deb and `install --system` do this)")
    }
}
