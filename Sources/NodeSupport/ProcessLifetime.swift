import CSystemShims
import Glibc

/// Arranges for this process to get `SIGKILL` when its parent dies, and returns false if
/// the parent is already gone (the race `PR_SET_PDEATHSIG` alone cannot close).
public func dieWithParent(expectedParent: pid_t, signal: Int32 = SIGKILL) -> Bool {
    _ = csys_prctl(csys_PR_SET_PDEATHSIG, UInt(signal), 0, 0, 0)
    return getppid() == expectedParent
}

/// The process groups a worker started (commands, Chromium). When `signal` arrives (the
/// parent-death signal, so even a SIGKILLed Supervisor, or a stop), they are killed and the
/// worker exits at once, from an async-signal-safe handler.
public enum GroupGuard {
    nonisolated(unsafe) private static var signal: Int32 = 0

    public static func install(signal: Int32) {
        Self.signal = signal
        _ = csys_group_guard_install(signal)
    }

    /// Runs `body` (a spawn and its `add`) with the guard's signal blocked in this thread, so
    /// the signal cannot arrive between the two. The child starts with an empty mask.
    public static func whileBlocked<T>(_ body: () -> T) -> T {
        guard signal != 0 else { return body() }
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, signal)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        return body()
    }

    /// False when all 1 024 slots are taken (the group is then not killed this way).
    @discardableResult
    public static func add(_ group: pid_t) -> Bool {
        csys_group_guard_add(group) == 0
    }

    public static func remove(_ group: pid_t) {
        csys_group_guard_remove(group)
    }
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`).
public func becomeChildSubreaper() {
    _ = csys_prctl(csys_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

/// Names this process for `top`, `ps -o comm` and audit logs (`PR_SET_NAME`; the kernel keeps
/// 15 bytes).
public func setProcessName(_ name: String) {
    _ = name.withCString { csys_prctl(csys_PR_SET_NAME, UInt(bitPattern: $0), 0, 0, 0) }
}
