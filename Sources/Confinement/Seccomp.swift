import CConfinement
import Glibc

/// A seccomp filter under construction (libseccomp), default action *allow*: a deny list.
/// `load()` installs it on the calling thread and everything it later creates or executes.
///
/// Wraps `seccomp_init(3)`, `seccomp_rule_add(3)` and `seccomp_load(3)`.
public final class SeccompFilter {
    /// What a denied syscall does.
    public enum Action: Equatable, Sendable {
        /// Fail with this errno (the caller gets an error and keeps running).
        case errno(Int32)
        /// Kill the whole process.
        case killProcess
    }

    private let context: csys_seccomp_t

    public init() throws(ConfinementFailure) {
        guard let context = csys_seccomp_new_allowing() else {
            throw ConfinementFailure(.seccomp, "seccomp_init failed")
        }
        self.context = context
        try check(csys_seccomp_add_compat_arches(context), "seccomp_arch_add")
        try check(csys_seccomp_badarch_errno(context, ENOSYS), "seccomp_attr_set(ACT_BADARCH)")
    }

    deinit { csys_seccomp_release(context) }

    /// The native number of a syscall, or nil when this kernel/arch has no such call.
    public static func number(_ name: String) -> Int32? {
        let number = csys_seccomp_resolve(name)
        return number >= 0 ? number : nil
    }

    /// Denies `name` unconditionally. Unknown names are skipped (not every arch has every call).
    public func deny(_ name: String, _ action: Action) throws(ConfinementFailure) {
        guard let number = Self.number(name) else { return }
        switch action {
        case let .errno(code): try check(csys_seccomp_deny_errno(context, number, code), "deny \(name)")
        case .killProcess: try check(csys_seccomp_deny_kill(context, number), "deny \(name)")
        }
    }

    /// Denies `name` with `code` when `(argument[index] & mask) == value`.
    public func deny(_ name: String, errno code: Int32, whenArgument index: UInt32, masked mask: UInt64,
                     equals value: UInt64) throws(ConfinementFailure) {
        guard let number = Self.number(name) else { return }
        try check(csys_seccomp_deny_errno_masked(context, number, code, index, mask, value), "deny \(name) by argument")
    }

    /// Installs the filter (requires no_new_privs or CAP_SYS_ADMIN).
    public func load() throws(ConfinementFailure) {
        try check(csys_seccomp_load(context), "seccomp_load")
    }

    private func check(_ result: Int32, _ what: String) throws(ConfinementFailure) {
        if result < 0 { throw ConfinementFailure(.seccomp, what, errno: -result) }
    }
}
