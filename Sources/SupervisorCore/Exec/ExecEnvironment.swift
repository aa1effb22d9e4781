import Confinement
import Glibc
/// The environment a `system.run` child gets (node-host.md §3.4, design §6).
///
/// Built from an allow list of the node's own variables plus the request's accepted
/// overrides; nothing else from the Supervisor leaks into a command. Overrides that could
/// change what runs (loader, interpreter, shell startup, PATH, proxies, trust stores) are
/// rejected as a whole request, never silently dropped.
public struct ExecEnvironment: Sendable {
    /// Variables taken from the node's environment (plus every `LC_*`).
    static let inheritedKeys: Set<String> = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "TZ", "TMPDIR"]
    /// What a shell-wrapper run (`sh -lc …`) may override: terminal and locale only.
    static let shellWrapperOverrideKeys: Set<String> = [
        "TERM", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "COLORTERM", "NO_COLOR", "FORCE_COLOR",
    ]

    /// The routing variables: they come from a request's `executionContext` alone, never from
    /// its `env` (dropped, as upstream) nor from `env NAME=VALUE` in the command (refused), so
    /// an agent cannot pose as another channel or as a sub-agent.
    static let routingKeys: Set<String> = ["OPENCLAW_CHANNEL_CONTEXT", "OPENCLAW_SUBAGENT_EXEC"]

    /// The node's environment, reduced to the allow list once at start.
    public let base: [String: String]

    /// `user`: the exec user commands run as when it is not the node's own; its home and
    /// name replace the node's (`HOME=/root` is no place for a command running as `openclaw`).
    public init(nodeEnvironment: [String: String], pathEnv: String, user: UserIdentity? = nil) {
        var base: [String: String] = [:]
        // Our allow list, then upstream's inherited strip (which removes `SHELL`, for one).
        for (key, value) in nodeEnvironment where (Self.inheritedKeys.contains(key) || key.hasPrefix("LC_"))
            && !HostEnvPolicy.upstream.stripsInherited(key.uppercased()) {
            base[key] = value
        }
        base["PATH"] = pathEnv
        if let user, user.uid != geteuid() {
            base["HOME"] = user.home
            base["USER"] = user.name
            base["LOGNAME"] = user.name
        }
        self.base = base
    }

    /// Keys of `overrides` the policy refuses, and keys that are not portable names.
    public struct Rejection: Equatable, Sendable {
        public var blocked: [String]
        public var invalid: [String]

        /// upstream's `SYSTEM_RUN_DENIED: environment override rejected (…)` text.
        public var message: String {
            var details: [String] = []
            if !blocked.isEmpty { details.append("blocked override keys: \(blocked.joined(separator: ", "))") }
            if !invalid.isEmpty { details.append("invalid non-portable override keys: \(invalid.joined(separator: ", "))") }
            return "SYSTEM_RUN_DENIED: environment override rejected (\(details.joined(separator: "; ")))"
        }
    }

    /// Checks request overrides (`params.env`); nil when every key is acceptable.
    public static func inspect(_ overrides: [String: String]) -> Rejection? {
        var blocked: [String] = []
        var invalid: [String] = []
        for key in overrides.keys.sorted() {
            if !isPortableName(key) {
                invalid.append(key)
            } else if isBlockedOverride(key.uppercased()) {
                blocked.append(key)
            }
        }
        return blocked.isEmpty && invalid.isEmpty ? nil : Rejection(blocked: blocked, invalid: invalid)
    }

    /// An approval binds argv, cwd and the script, not the environment (upstream's node
    /// checks no env binding): on an approved run only terminal and locale overrides may come
    /// with the request. Anything else must be in the command (`env NAME=VALUE …`), where the
    /// operator saw it. Nil when every key may accompany an approved run.
    public static func inspectApproved(_ overrides: [String: String]) -> String? {
        let unbound = overrides.keys.filter { !isTerminalOrLocale($0.uppercased()) }.sorted()
        guard !unbound.isEmpty else { return nil }
        return "SYSTEM_RUN_DENIED: environment override rejected (not bound by the approval: \(unbound.joined(separator: ", ")); "
            + "put them in the approved command as `env NAME=VALUE …`)"
    }

    static func isTerminalOrLocale(_ upper: String) -> Bool {
        shellWrapperOverrideKeys.contains(upper) || upper.hasPrefix("LC_")
    }

    /// Checks `env NAME=VALUE cmd` assignments inside argv the same way.
    public static func inspectAssignments(_ keys: [String]) -> String? {
        let blocked = keys.filter { !isPortableName($0) || isBlockedOverride($0.uppercased()) || routingKeys.contains($0) }
        guard !blocked.isEmpty else { return nil }
        return "SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: \(blocked.joined(separator: ", ")))"
    }

    /// The child's complete environment. `overrides` must have passed `inspect`; `context` is
    /// what the request's `executionContext` sets (the only source of the routing variables).
    public func childEnvironment(overrides: [String: String], shellWrapper: Bool, context: [String: String] = [:]) -> [String: String] {
        var env = base
        for (key, value) in overrides where !Self.routingKeys.contains(key) {
            let upper = key.uppercased()
            if shellWrapper, !Self.isTerminalOrLocale(upper) { continue }
            env[key] = value
        }
        env.merge(context) { $1 }
        return env
    }

    static func isPortableName(_ key: String) -> Bool {
        guard let first = key.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
        return key.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
    }

    /// upstream's override rules (`HostEnvPolicy`), `PATH`, and our additions.
    static func isBlockedOverride(_ upper: String) -> Bool {
        upper == "PATH" || HostEnvPolicy.upstream.refusesOverride(upper) || beyondUpstream.contains(upper) || upper.hasPrefix("LUA_")
    }

    /// Variables upstream's lists lack that make a program load code, options or a file named
    /// by the caller (issue 14 finding 10; docs/security.md): module and library search paths
    /// (`PERLLIB`, `PYTHONPLATLIBDIR`, `AWKPATH`, Lua's `LUA_*` by prefix, R, Julia,
    /// Guile, Erlang, Emacs), startup files (`VIMINIT`, `EXINIT`, `INPUTRC`, `PSQLRC`, R's
    /// profiles), option variables a tool reads as command-line flags (`TAR_OPTIONS`,
    /// `GZIP`, `XZ_OPT`, `ZIPOPT`, `LESS`, `MANOPT`, `GREP_OPTIONS`, `PERL_MM_OPT`), remote-shell
    /// programs (`RSYNC_RSH`, `CVS_RSH`) and the C library's data paths (`LOCPATH`, `NLSPATH`,
    /// `TERMINFO`, `HOSTALIASES`).
    static let beyondUpstream: Set<String> = [
        "PERLLIB", "PERL5SHELL", "PERL_MB_OPT", "PERL_MM_OPT", "RUBYSHELL",
        "PYTHONPLATLIBDIR", "PYTHONWARNINGS", "PYTHONINSPECT", "PYTHONEXECUTABLE", "PYTHONSAFEPATH",
        "AWKPATH", "AWKLIBPATH", "TAR_OPTIONS", "ZIPOPT", "UNZIPOPT", "GZIP", "BZIP", "BZIP2", "XZ_OPT",
        "XZ_DEFAULTS", "LESS", "LESSKEY", "LESSKEYIN", "LESSSECURE", "LESSEDIT", "MANOPT",
        "MANPATH", "GREP_OPTIONS", "VIMINIT", "GVIMINIT", "EXINIT", "MYVIMRC", "MYGVIMRC", "VIMRUNTIME",
        "INPUTRC", "PSQLRC", "MYSQL_HOME", "SQLITE_HISTORY", "RSYNC_RSH", "RSYNC_CONNECT_PROG", "CVS_RSH",
        "SYSTEMD_EDITOR", "SYSTEMD_PAGER", "SYSTEMD_PAGERSECURE", "GIT_CONFIG", "GIT_TEMPLATE_PATH",
        "LOCPATH", "NLSPATH", "TZDIR", "TERMINFO", "TERMINFO_DIRS", "TERMCAP", "HOSTALIASES",
        "RESOLV_HOST_CONF", "MALLOC_CONF", "EMACSLOADPATH", "GUILE_LOAD_PATH", "GUILE_LOAD_COMPILED_PATH",
        "JULIA_LOAD_PATH", "JULIA_DEPOT_PATH", "R_PROFILE", "R_PROFILE_USER", "R_ENVIRON", "R_ENVIRON_USER",
        "R_LIBS", "R_LIBS_USER", "R_LIBS_SITE", "ERL_LIBS", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_FLAGS",
        "ELIXIR_ERL_OPTIONS", "OCAMLPATH", "CAML_LD_LIBRARY_PATH", "PKG_CONFIG_PATH", "CMAKE_TOOLCHAIN_FILE",
        "DENO_CERT", "NODE_REDIRECT_WARNINGS",
    ]
}
