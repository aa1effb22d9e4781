/// The `openclaw-node.service` unit, rendered from what `install` was given (node-host.md §8,
/// design §7). Pure text in, text out: credentials never reach this type, they go to the
/// environment file (`ServiceEnvironmentFile`).
public struct SystemdUnit: Sendable {
    public enum Scope: String, Sendable {
        case user, system
    }

    public static let name = "openclaw-node"
    public static let fileName = "openclaw-node.service"
    /// Exit statuses after which restarting cannot help: configuration (78) and a worker that
    /// cannot be confined (71). Terminal auth errors (1) do restart, with fresh credentials.
    public static let noRestartStatuses = [71, 78]

    public var scope: Scope
    public var version: String
    /// `ExecStart` argv: the absolute path of `openclaw-node`, `run`, then the flags.
    public var programArguments: [String]
    /// Non-secret environment (`Environment=` lines).
    public var environment: [(key: String, value: String)]
    /// The owner-only file with the secrets (`EnvironmentFile=-…`).
    public var environmentFile: String
    public var workingDirectory: String?
    /// Let the BrowserWorker run Chromium with its own sandbox under the system unit (install
    /// --browser-sandbox): user, PID and network namespaces and chroot (only the BrowserWorker's
    /// seccomp filter leaves these open; the other workers and every command still get EPERM),
    /// and CAP_CHOWN for the Supervisor to hand `<state>/browser` to the browser user.
    public var browserSandbox: Bool
    /// Home of the user commands run as (system unit). `ProtectHome=yes` hides /home, /root and
    /// /run/user from the whole unit; an exec user whose home lies there keeps exactly that
    /// directory (`ProtectHome=tmpfs` + `BindPaths=`).
    public var execUserHome: String?

    public init(scope: Scope, version: String, programArguments: [String], environment: [(key: String, value: String)],
                environmentFile: String, workingDirectory: String? = nil, browserSandbox: Bool = false,
                execUserHome: String? = nil) {
        self.browserSandbox = browserSandbox
        self.execUserHome = execUserHome
        self.scope = scope
        self.version = version
        self.programArguments = programArguments
        self.environment = environment
        self.environmentFile = environmentFile
        self.workingDirectory = workingDirectory
    }

    /// Sandboxing for the system unit. Each line keeps `system.run` usable: commands still
    /// execute programs, use the network and write outside /usr, /boot and /etc (see
    /// docs/operations.md for what was left out and why).
    static let systemHardening: [String] = [
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
        // /root and every user's home: an exec user that is root by explicit choice still
        // cannot reach ~/.ssh or a shell profile there.
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateMounts=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        // The workers' own confinement: seccomp filters and Landlock rulesets.
        "SystemCallFilter=seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self",
        // Not @privileged (the workers need setresuid/setgroups/capset to drop privileges) and
        // not @resources (commands use setrlimit and nice).
        "SystemCallFilter=~@mount @swap @reboot @raw-io @module @debug @cpu-emulation @obsolete @clock",
        "SystemCallErrorNumber=EPERM",
        // Only what the Supervisor needs to start its workers under other users and drop
        // their privileges; nothing a command could use to take the machine.
        "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL",
        "AmbientCapabilities=",
        "KeyringMode=private",
        "UMask=0077",
        "DevicePolicy=closed",
        "RemoveIPC=yes",
        "StateDirectory=openclaw-node",
        // Searchable, not readable: the exec user's home and <state>/browser live inside;
        // every secret in it is 0600 in 0700 directories.
        "StateDirectoryMode=0711",
    ]

    public func render() -> String {
        var lines = [
            "# Written by openclaw-node install. Secrets are not here: see EnvironmentFile.",
            "[Unit]",
            "Description=OpenClaw Node Host (v\(version))",
            "After=network-online.target",
            "Wants=network-online.target",
            "StartLimitIntervalSec=60",
            "StartLimitBurst=5",
            "",
            "[Service]",
            // READY=1 once connected, waiting for pairing, or retrying an unreachable gateway
            // (the first attempt's phases are bounded well inside the start timeout); a
            // refused credential exits first, so `systemctl start` reports the failure.
            "Type=notify",
            "NotifyAccess=main",
            "ExecStart=\(programArguments.map(Self.quoteArgument).joined(separator: " "))",
            "Restart=always",
            "RestartSec=5",
            "TimeoutStopSec=30",
            "TimeoutStartSec=90",
            "SuccessExitStatus=0 130 143",
            "RestartPreventExitStatus=\(Self.noRestartStatuses.map(String.init).joined(separator: " "))",
            // SIGTERM to the Supervisor alone, which stops its workers and their commands in
            // order; whatever is left when it exits is killed with the cgroup.
            "KillMode=mixed",
        ]
        if let workingDirectory { lines.append("WorkingDirectory=\(Self.quoteArgument(workingDirectory))") }
        lines.append("EnvironmentFile=-\(environmentFile)")
        for (key, value) in environment { lines.append("Environment=\(Self.quoteAssignment("\(key)=\(value)"))") }
        if scope == .system {
            let exposedHome = execUserHome.flatMap(Self.protectedHome)
            lines += Self.systemHardening.map { line in
                if line == "ProtectHome=yes", exposedHome != nil { return "ProtectHome=tmpfs" }
                guard browserSandbox else { return line }
                if line.hasPrefix("RestrictNamespaces=") { return "RestrictNamespaces=user pid net" }
                // The Supervisor hands <state>/browser to the browser worker's user.
                if line.hasPrefix("CapabilityBoundingSet=") { return line + " CAP_CHOWN" }
                return line
            }
            if browserSandbox { lines.append("SystemCallFilter=chroot") }
            if let exposedHome { lines.append("BindPaths=\(Self.quoteArgument(exposedHome))") }
        }
        lines += ["", "[Install]", "WantedBy=\(scope == .system ? "multi-user.target" : "default.target")", ""]
        return lines.joined(separator: "\n")
    }

    /// `home` when `ProtectHome=` would hide it (under /home, /root or /run/user).
    static func protectedHome(_ home: String) -> String? {
        if home == "/root" || home.hasPrefix("/root/") { return nil }  // never exposed
        return ["/home", "/run/user"].contains { home.hasPrefix($0 + "/") } ? home : nil
    }

    /// One `ExecStart` word: quoted when it has whitespace, quotes, backslashes or `%`/`$`
    /// (which systemd would expand); `%` doubled, `$` doubled.
    static func quoteArgument(_ word: String) -> String {
        var escaped = ""
        for character in word {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "%": escaped += "%%"
            case "$": escaped += "$$"
            default: escaped.append(character)
            }
        }
        let needsQuotes = word.isEmpty || word.contains { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "\\" || $0 == "'" || $0 == ";" }
        return needsQuotes ? "\"\(escaped)\"" : escaped
    }

    /// One `Environment=` assignment, double-quoted when it has whitespace, `"` or `\`.
    static func quoteAssignment(_ assignment: String) -> String {
        guard assignment.contains(where: { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "\\" }) else {
            return assignment.replacing("%", with: "%%")
        }
        let escaped = assignment.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("%", with: "%%")
        return "\"\(escaped)\""
    }

    /// Reads back `ExecStart`, `WorkingDirectory` and `Environment=` of a unit file we wrote
    /// (for `status`): the inverse of the quoting above.
    public static func parseCommand(_ text: String) -> (programArguments: [String], workingDirectory: String?, environment: [String: String])? {
        var arguments: [String]?
        var workingDirectory: String?
        var environment: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            let line = String(raw)
            if line.hasPrefix("ExecStart=") {
                arguments = splitWords(String(line.dropFirst("ExecStart=".count)))
            } else if line.hasPrefix("WorkingDirectory=") {
                workingDirectory = splitWords(String(line.dropFirst("WorkingDirectory=".count))).first
            } else if line.hasPrefix("Environment=") {
                for word in splitWords(String(line.dropFirst("Environment=".count))) {
                    guard let equals = word.firstIndex(of: "=") else { continue }
                    environment[String(word[..<equals])] = String(word[word.index(after: equals)...])
                }
            }
        }
        guard let arguments else { return nil }
        return (arguments, workingDirectory, environment)
    }

    static func splitWords(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inQuotes = false
        var hasWord = false
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            switch character {
            case "\\":
                if let next = iterator.next() { current.append(next); hasWord = true }
            case "\"":
                inQuotes.toggle()
                hasWord = true
            case "%", "$":
                current.append(character)
                hasWord = true
                // Doubled by the writer.
                var lookahead = iterator
                if lookahead.next() == character { iterator = lookahead }
            case " " where !inQuotes, "\t" where !inQuotes:
                if hasWord { words.append(current); current = ""; hasWord = false }
            default:
                current.append(character)
                hasWord = true
            }
        }
        if hasWord { words.append(current) }
        return words
    }
}
