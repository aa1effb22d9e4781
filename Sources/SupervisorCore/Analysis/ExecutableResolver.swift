import Glibc
import NodeSupport

/// Finds the file an executable token would run, the way `execvp` would, without trusting
/// anything that `execvp` would not find.
///
/// Guarantees:
/// - A token containing `/` is taken as a path: absolute as is, relative joined to `cwd`
///   (or the process working directory when `cwd` is nil). PATH is not consulted.
/// - A bare name is searched in the absolute PATH entries, in order. Empty and relative PATH
///   entries are skipped: they would resolve against the command's cwd, which is a
///   project-controlled directory (attack class 10, PATH hijack).
/// - The result is a regular file that this process may execute (`stat` S_ISREG and
///   `access(X_OK)`); directories and non-executable files are never returned.
/// - The returned path is the path found, not its realpath, and is not normalised beyond
///   joining, so callers match the allowlist against exactly what was looked up (§5.3).
/// - Tokens are used byte-for-byte: `"ls "` is not `"ls"` (attack class 6).
public enum ExecutableResolver {
    /// `probe` answers the file-system questions (the real file system unless a test says otherwise).
    public static func resolve(_ token: String, cwd: String?, pathEnv: String,
                               probe: any FileProbe = SystemFileProbe()) -> String? {
        guard !token.isEmpty else { return nil }
        if token.contains("/") {
            let candidate: String
            if token.hasPrefix("/") {
                candidate = token
            } else {
                guard let base = cwd ?? probe.currentDirectory() else { return nil }
                candidate = join(base, token)
            }
            return probe.isExecutableFile(candidate) ? candidate : nil
        }
        return probe.executableInPath(token, path: pathEnv)
    }

    /// The canonical absolute path with every symlink resolved, or nil when it does not exist.
    public static func realpath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }

    static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    static func currentDirectory() -> String? {
        guard let buffer = getcwd(nil, 0) else { return nil }
        defer { free(buffer) }
        return String(cString: buffer)
    }
}
