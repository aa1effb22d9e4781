/// Replaces argv[0] by the realpath of the executable it names, when nothing (shell,
/// dispatch wrapper) stands between the approval and the program that runs.
enum ExecutablePin {
    static func pin(_ argv: [String], cwd: String?, pathEnv: String) -> Result<[String], ApprovalDenial> {
        guard ShellWrapper.detect(argv) == nil, case let .plain(inner, wrappers, _) = DispatchWrappers.unwrap(argv),
              wrappers.isEmpty, inner == argv else {
            return .success(argv)
        }
        guard let found = ExecutableResolver.resolve(argv[0], cwd: cwd, pathEnv: pathEnv),
              let real = ExecutableResolver.realpath(found) else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires a stable executable path"))
        }
        var pinned = argv
        pinned[0] = real
        return .success(pinned)
    }
}
