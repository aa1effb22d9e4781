import CSystemShims
import Glibc

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: execve can never grant privileges again (setuid bits
/// and file capabilities are ignored) for this process and everything it starts.
public enum NoNewPrivileges {
    public static func set() throws(ConfinementFailure) {
        guard csys_prctl(csys_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 else {
            throw ConfinementFailure(.noNewPrivs, "prctl(PR_SET_NO_NEW_PRIVS)", errno: errno)
        }
    }

    public static var isSet: Bool { csys_prctl(csys_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
}
