import NodeSupport

/// The questions the allowlist analysis asks the file system (does this file exist and may
/// it run, where is this name found, what is this path really), and nothing else: the
/// analysis never reads a file's contents and never writes. `SystemFileProbe` asks the real
/// file system; a test hands in a table, so a decision is checked without touching the disk.
public protocol FileProbe: Sendable {
    /// True when `path` is a regular file this process may execute (`stat(2)` S_ISREG, then
    /// `access(2)` X_OK).
    func isExecutableFile(_ path: String) -> Bool
    /// The first executable regular file `dir/name` for the absolute entries of `path`, in
    /// order, the way `execvp` would find it (`ExecutableSearch.inPath`).
    func executableInPath(_ name: String, path: String) -> String?
    /// `realpath(3)`: the canonical absolute path with every symlink resolved, or nil when it
    /// does not exist.
    func realpath(_ path: String) -> String?
    /// `getcwd(3)`: this process's working directory, or nil when it has none.
    func currentDirectory() -> String?
}

/// The file system as it is: the same calls `ExecutableSearch` and `ExecutableResolver` make.
public struct SystemFileProbe: FileProbe {
    public init() {}

    public func isExecutableFile(_ path: String) -> Bool {
        ExecutableSearch.isExecutableFile(path)
    }

    public func executableInPath(_ name: String, path: String) -> String? {
        ExecutableSearch.inPath(name, path: path)
    }

    public func realpath(_ path: String) -> String? {
        ExecutableResolver.realpath(path)
    }

    public func currentDirectory() -> String? {
        ExecutableResolver.currentDirectory()
    }
}
