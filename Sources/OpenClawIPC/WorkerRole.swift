/// The role table: every process openclaw-node runs besides the Supervisor is one row here.
///
/// There is one binary. The Supervisor starts a role by executing that binary again
/// (`/proc/self/exe`, so a package upgrade that replaces the file never mixes versions) with
/// the role's process name as `argv[0]`, as OpenBSD daemons re-exec themselves per process
/// (`proc_exec`); `main` reads `argv[0]` and becomes that worker before anything else runs.
/// A role's other rows live with the code that enforces them, keyed by this type:
///   - its confinement: `Confinement/ConfinementPolicy` and `WorkerConfinement.apply(role:)`;
///   - its menu (what it may send the Supervisor, in which phase, how often, handled where):
///     the role's monitor in `SupervisorCore/Monitors`.
/// `docs/architecture.md` shows the whole table.
public enum WorkerRole: String, Codable, Sendable, CaseIterable {
    /// The gateway link: the only code that talks to the network. Cannot execute or write.
    case net
    /// Runs the commands the Supervisor authorised, as the exec user.
    case exec
    /// Chromium over the DevTools protocol, for `browser.proxy`. May execute Chromium only.
    case browser
    /// One request per process (`fs.listDir`, `terminal.upload`, the uploads' clean-up), as
    /// the exec user, with Landlock rules for exactly that request. Executes nothing.
    case files
    /// The node's MCP servers (`nodeHost.mcp.servers`): starts the stdio ones as the exec
    /// user, holds the HTTP sessions, runs the tool calls the Supervisor authorised.
    case mcp

    /// The name the role's process runs under (`argv[0]`, shown by `ps`; also what the
    /// `--unconfined net:landlock` style flags and log lines call it by `rawValue`).
    public var processName: String { "openclaw-node-\(rawValue)" }

    /// What the role is for, in a few words (`--help` of a worker, docs, doctor).
    public var purpose: String {
        switch self {
        case .net: return "the gateway link"
        case .exec: return "runs authorised commands"
        case .browser: return "drives Chromium for browser.proxy"
        case .files: return "lists a folder or stages an upload, one request per process"
        case .mcp: return "runs the node's MCP servers and their tool calls"
        }
    }

    /// Whether the Supervisor starts the role with every node (else on first use, per request,
    /// or — the McpWorker — when the config names MCP servers).
    public var startsWithNode: Bool { self == .net || self == .exec }

    /// The role a process started as `argv0` plays (its last path component), if any.
    public static func invoked(as argv0: String) -> WorkerRole? {
        let name = argv0.split(separator: "/").last.map(String.init) ?? argv0
        return allCases.first { $0.processName == name }
    }
}

/// How the Supervisor starts a worker: which file it executes, and the `argv[0]` it passes.
public struct WorkerLaunch: Equatable, Sendable {
    public var path: String
    public var argv0: String

    public init(path: String, argv0: String) {
        self.path = path
        self.argv0 = argv0
    }

    /// The one binary, re-executed as `role`.
    public static func ownBinary(as role: WorkerRole) -> WorkerLaunch {
        WorkerLaunch(path: "/proc/self/exe", argv0: role.processName)
    }

    /// `path` if given (a test's stand-in worker, started under its own name), else the one binary.
    public static func resolve(_ role: WorkerRole, override path: String?) -> WorkerLaunch {
        path.map { WorkerLaunch(path: $0, argv0: $0) } ?? ownBinary(as: role)
    }
}
