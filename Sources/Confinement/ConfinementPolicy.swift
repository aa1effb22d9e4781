import Glibc
import OpenClawIPC

/// What each worker may do, as tables (design §4). The mechanisms are in the other files of
/// this module; changing a policy means changing a line here.
public enum ConfinementPolicy {
    /// Kernel attack surface no command from the gateway needs: every ExecWorker command
    /// inherits this list, and the NetWorker refuses it too. Refused calls fail with EPERM.
    public static let kernelAttackSurface: [String] = [
        // Debugging other processes and reading their memory.
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
        // eBPF, perf, userfaultfd and io_uring: large, often-exploited kernel interfaces.
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        // Replacing the kernel or loading code into it.
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        // Mounts and namespaces: the way out of every other restriction.
        "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
        "fspick", "mount_setattr", "unshare", "setns", "chroot",
        // Kernel keyrings.
        "keyctl", "add_key", "request_key",
        // Host-wide administration.
        "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime",
        "clock_adjtime", "adjtimex", "syslog", "vhangup", "sethostname", "setdomainname",
        // File handles bypass path checks; legacy and port I/O calls.
        "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "uselib", "_sysctl", "nfsservctl",
        "iopl", "ioperm", "vm86", "vm86old",
    ]

    /// `clone` flags that create namespaces: refused (the `unshare` of `clone`).
    public static let namespaceCloneFlags: [UInt64] = [
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
        0x0000_0080, // CLONE_NEWTIME
    ]

    /// The NetWorker never starts a program or a process: only threads.
    public static let netNoProcesses: [String] = ["execve", "execveat", "fork", "vfork"]
    static let cloneThread: UInt64 = 0x0001_0000 // CLONE_THREAD

    /// What the NetWorker may read: CA certificates, name resolution, shared libraries,
    /// randomness. Nothing else, and nowhere may it write.
    public static let netReadablePaths: [String] = [
        "/etc/ssl", "/etc/pki", "/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates",
        "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/services",
        "/etc/protocols", "/etc/ld.so.cache", "/run/systemd/resolve",
        "/usr/lib", "/lib", "/lib64", "/usr/lib64",
        "/etc/localtime", "/usr/share/zoneinfo",
        "/dev/urandom", "/dev/random", "/dev/null",
        // libdispatch's worker-pool monitor reads /proc/<tid>/stat of its threads once a second
        // and traps (SIGILL) when it cannot; thread ids are not known in advance, so procfs is
        // readable (it was an intermittent crash). Other processes' entries stay behind the
        // usual uid and ptrace checks, and the worker runs as its own user.
        "/proc",
    ]
    /// TCP ports the NetWorker may connect to besides the gateway's (DNS over TCP).
    public static let netExtraConnectPorts: [UInt16] = [53]

    /// What the BrowserWorker and its Chromium may read (besides its own data dir).
    public static let browserReadablePaths: [String] = [
        "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev",
        "/var/cache/fontconfig", "/var/lib/dbus",
    ]
    /// Chromium's namespace sandbox writes its own `/proc/<pid>/{uid_map,gid_map,setgroups}`.
    public static let browserProcWritable = "/proc"
    /// Scratch space Chromium writes besides its data dir (its TMPDIR is inside the data dir,
    /// so /tmp, where a state dir may live, stays read-only).
    public static let browserWritablePaths: [String] = ["/dev/shm", "/dev/null"]
    /// The ELF interpreter must be executable for any dynamically linked program.
    public static let dynamicLoaders: [String] = [
        "/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1", "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
    ]
    /// Calls of the kernel-attack-surface list that Chromium's own sandbox is made of
    /// (user/PID/network namespaces and a chroot); the BrowserWorker leaves them allowed.
    public static let browserSandboxCalls: [String] = ["unshare", "chroot"]

    /// What the files worker may do beneath its one path, per request (design §4; issue 20):
    /// a listing reads directories anywhere the exec user may (never a file's content);
    /// staging creates one folder in the uploads' root (and, after a second layer, files in
    /// that folder only); the clean-up reads and removes beneath the root.
    public static func filesAccess(_ mode: FilesMode) -> Landlock.FileAccess {
        switch mode {
        case .list: return [.readDir]
        case .stage: return [.readDir, .readFile, .makeDir, .makeReg, .writeFile]
        case .sweep: return [.readDir, .readFile, .removeDir, .removeFile]
        }
    }

    static func filesAccessText(_ mode: FilesMode) -> String {
        switch mode {
        case .list: return "read directories"
        case .stage: return "make one folder, then files in it"
        case .sweep: return "read and remove"
        }
    }

    /// The user the NetWorker and the BrowserWorker drop to when started as root and none is configured.
    public static let defaultNetUser = "nobody"
}
