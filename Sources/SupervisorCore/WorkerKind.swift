import Glibc
import NodeSupport

/// The worker processes the Supervisor runs.
public enum WorkerKind: String, Sendable, CaseIterable {
    case net, exec, browser

    /// File name of the worker executable.
    public var executableName: String {
        switch self {
        case .net: return "openclaw-node-net"
        case .exec: return "openclaw-node-exec"
        case .browser: return "openclaw-node-browser"
        }
    }

    /// Where a worker executable is looked for when no explicit path is given: next to the
    /// Supervisor's own executable, then in `../libexec/openclaw-node/` (the packaged layout).
    public func locate(besides supervisorPath: String) -> String? {
        let directory = supervisorPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let candidates = [
            "\(directory)/\(executableName)",
            "\(directory)/../libexec/openclaw-node/\(executableName)",
        ]
        return candidates.first { access($0, X_OK) == 0 }
    }
}
