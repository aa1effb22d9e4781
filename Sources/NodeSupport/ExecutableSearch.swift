import Glibc

/// Where a bare program name is found, the way `execvp` would find it, shared by the
/// Supervisor (policy: what a command would run), the ExecWorker (what it spawns) and the
/// helpers the CLI starts (`systemctl`).
public enum ExecutableSearch {
    /// The PATH used when none is set (upstream's node-host default).
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// True when `path` is a regular file this process may execute.
    public static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// The first executable regular file `dir/name` for the absolute entries of `path`, in
    /// order. Empty and relative entries are skipped: they would resolve against a directory
    /// the command controls (PATH hijack).
    public static func inPath(_ name: String, path: String) -> String? {
        for directory in path.split(separator: ":", omittingEmptySubsequences: true) where directory.hasPrefix("/") {
            let candidate = directory.hasSuffix("/") ? "\(directory)\(name)" : "\(directory)/\(name)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }
}
