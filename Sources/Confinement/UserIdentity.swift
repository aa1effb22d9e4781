import CConfinement
import Glibc

/// A user to run as, looked up by name (`getpwnam_r(3)`), and the irreversible switch to it
/// (`setgroups(2)`, `setresgid(2)`, `setresuid(2)`).
public struct UserIdentity: Equatable, Sendable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    /// `pw_dir`.
    public var home: String = "/"

    public init(name: String, uid: uid_t, gid: gid_t, home: String = "/") {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
    }

    public static func lookup(_ name: String) -> UserIdentity? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 << 10)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return UserIdentity(name: name, uid: entry.pw_uid, gid: entry.pw_gid,
                            home: entry.pw_dir.map { String(cString: $0) } ?? "/")
    }

    public static var isRoot: Bool { geteuid() == 0 }

    /// Becomes this user for good: no supplementary groups, real/effective/saved ids all
    /// changed, and verified by trying to get root back.
    public func become() throws(ConfinementFailure) {
        guard setgroups(0, nil) == 0 else { throw ConfinementFailure(.user, "setgroups(0)", errno: errno) }
        guard csys_setresgid(gid) == 0 else { throw ConfinementFailure(.user, "setresgid(\(gid))", errno: errno) }
        guard csys_setresuid(uid) == 0 else { throw ConfinementFailure(.user, "setresuid(\(uid))", errno: errno) }
        if uid != 0, setuid(0) == 0 || seteuid(0) == 0 {
            throw ConfinementFailure(.user, "regained root after dropping to \(name)")
        }
    }
}
