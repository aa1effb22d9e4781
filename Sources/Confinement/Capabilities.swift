import CConfinement
import Glibc

/// The calling thread's capability sets (libcap, `prctl(PR_CAPBSET_DROP)`,
/// `prctl(PR_CAP_AMBIENT)`).
public enum Capabilities {
    /// Shrinks the bounding set to nothing. Needs CAP_SETPCAP: returns false (and changes
    /// nothing) without it, which is harmless under no_new_privs, where no execve can gain
    /// a capability anyway.
    @discardableResult
    public static func dropBoundingSet() throws(ConfinementFailure) -> Bool {
        guard csys_caps_have_setpcap() != 0 else { return false }
        for cap in 0...csys_caps_last() where csys_caps_drop_bound(cap) != 0 && errno != EINVAL {
            throw ConfinementFailure(.capabilities, "PR_CAPBSET_DROP(\(cap))", errno: errno)
        }
        return true
    }

    public static var boundingSetIsEmpty: Bool { csys_caps_bound_empty() != 0 }

    /// Empties the effective, permitted, inheritable and ambient sets.
    public static func clear() throws(ConfinementFailure) {
        if csys_caps_clear_ambient() != 0, errno != EINVAL {
            throw ConfinementFailure(.capabilities, "PR_CAP_AMBIENT_CLEAR_ALL", errno: errno)
        }
        if csys_caps_clear() != 0 { throw ConfinementFailure(.capabilities, "cap_set_proc(empty)", errno: errno) }
    }
}
