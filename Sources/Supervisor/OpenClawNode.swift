import ArgumentParser
import BrowserWorkerCore
import Confinement
import ExecWorkerCore
import FilesWorkerCore
import McpWorkerCore
import NetWorkerCore
import Glibc
import Logging
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// `openclaw-node`: the Supervisor's command line (design §7).
@main
struct OpenClawNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openclaw-node",
        abstract: "Hardened OpenClaw node host: connects this machine to an OpenClaw Gateway.",
        discussion: """
        The Supervisor (this program) holds the config, the device key and the exec policy; \
        it runs confined workers: openclaw-node-net (the gateway link), \
        openclaw-node-exec (runs authorised commands) and, on the first browser.proxy call, \
        openclaw-node-browser (drives Chromium). State lives in $OPENCLAW_STATE_DIR \
        (default ~/.openclaw).

        Start with `openclaw-node run --host <gateway> --tls`, or install a service with \
        `openclaw-node install`. `openclaw-node doctor` shows what this machine enforces.
        """,
        version: NodeVersion.current,
        subcommands: [Run.self, Install.self, Status.self, Start.self, Stop.self, Restart.self, Uninstall.self, Doctor.self, ConfigCommand.self,
                      IdentityCommand.self, Connect.self, ApprovalsCommand.self]
    )

    /// Started under a worker's name (the Supervisor re-executes this binary with the role's
    /// process name as argv[0]: `WorkerRole`), run that worker; its confinement is the first
    /// thing it does, before any thread exists.
    static func main() {
        switch WorkerRole.invoked(as: CommandLine.arguments.first ?? "") {
        case .net: NetWorkerMain.run()
        case .exec: ExecWorkerMain.run()
        case .browser: BrowserWorkerMain.run()
        case .files: FilesWorkerMain.run()
        case .mcp: McpWorkerMain.run()
        case nil: main(nil)
        }
    }
}

/// Exit statuses (sysexits): usage 64, another node holds the state dir 75, config 78.
enum ExitStatus {
    static let config: Int32 = 78
    static let locked: Int32 = 75
}

struct GatewayOptions: ParsableArguments {
    @Option(help: "Gateway host (default: node.json, else 127.0.0.1).")
    var host: String?

    @Option(help: "Gateway port (default: node.json, else 18789).")
    var port: Int?

    @Flag(help: "Connect with TLS (wss://). Required for any gateway that is not on loopback.")
    var tls = false

    @Flag(name: .customLong("no-tls"), help: "Disable TLS for the gateway connection (even when the config enables gateway.tls).")
    var noTls = false

    @Option(name: .customLong("context-path"), help: ArgumentHelp(
        "Gateway WebSocket context path (e.g. /openclaw-gw), for a gateway behind a reverse proxy. Saved in node.json; an empty value clears it.",
        valueName: "path"))
    var contextPath: String?

    @Option(name: .customLong("tls-fingerprint"), help: ArgumentHelp(
        "Pin the gateway's leaf certificate by SHA-256 (hex; colons, case and a sha256: prefix are ignored). Implies --tls.",
        valueName: "SHA256"))
    var tlsFingerprint: String?

    @Option(name: .customLong("node-id"), help: "Client instance id shown on the gateway (stored in node.json). The device identity, its pairing and its device token stay the same.")
    var nodeId: String?

    @Option(name: .customLong("display-name"), help: "Name shown for this node on the gateway (default: host name).")
    var displayName: String?

    func validate() throws {
        if let port, !(1...65535).contains(port) { throw ValidationError("Invalid port: \(port) (use 1-65535)") }
        if let tlsFingerprint, !TLSFingerprint.isValid(TLSFingerprint.normalize(tlsFingerprint)) {
            throw ValidationError("--tls-fingerprint must be a SHA-256 fingerprint (64 hex digits)")
        }
        if let host, host.trimmingWhitespace().isEmpty { throw ValidationError("--host must not be empty") }
        if noTls, tlsFingerprint != nil { throw ValidationError("--no-tls cannot be combined with --tls-fingerprint") }
        if noTls, tls { throw ValidationError("--no-tls cannot be combined with --tls") }
        if let contextPath, GatewayEndpoint.normalizeContextPath(contextPath) == nil {
            throw ValidationError("--context-path must be a URL path without spaces, '?' or '#' (e.g. /openclaw-gw)")
        }
    }

    var flags: RunFlags {
        var flags = RunFlags(host: host, port: port, tls: tls, tlsFingerprint: tlsFingerprint, nodeId: nodeId, displayName: displayName)
        flags.noTls = noTls
        flags.contextPath = contextPath
        return flags
    }
}

/// `--commands` / `--all-commands`: the exact command surface (upstream-2026 §2).
struct CommandSurfaceOptions: ParsableArguments {
    @Option(name: .customLong("commands"), help: ArgumentHelp(
        "Advertise only these exact command ids (comma-separated; repeatable). Saved in node.json; the node refuses any other command.",
        valueName: "ids"))
    var commands: [String] = []

    @Flag(name: .customLong("all-commands"), help: "Advertise the full default command surface and forget any saved --commands allowlist")
    var allCommands = false

    func validate() throws {
        if allCommands, !commands.isEmpty { throw ValidationError("--all-commands cannot be combined with --commands") }
        if allowlist == nil, !commands.isEmpty { throw ValidationError("--commands requires comma-separated non-empty command ids") }
    }

    /// The ids given (split on commas, trimmed, de-duplicated, sorted); nil when none was
    /// given or one is empty.
    var allowlist: [String]? {
        guard !commands.isEmpty else { return nil }
        let ids = commands.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() } }
        guard !ids.contains(where: \.isEmpty) else { return nil }
        return Array(Set(ids)).sorted()
    }

    /// These flags as `run` takes them (the unit `install` writes).
    var runArguments: [String] {
        if allCommands { return ["--all-commands"] }
        return allowlist.map { ["--commands", $0.joined(separator: ",")] } ?? []
    }
}

/// How the workers confine themselves (design §4, docs/security.md).
struct ConfinementFlags: ParsableArguments {
    @Option(name: .customLong("net-user"), help: ArgumentHelp(
        "User the network worker runs as when started as root (default: nobody).", valueName: "user"))
    var netUser: String?

    @Option(name: .customLong("exec-user"), help: ArgumentHelp(
        "User commands run as when started as root (default: openclaw, else nobody with a warning; commands run as root only with an explicit --exec-user root, which is logged and which doctor flags).",
        valueName: "user"))
    var execUser: String?

    @Option(name: .customLong("browser-user"), help: ArgumentHelp(
        "User the browser worker and Chromium run as when started as root (default: nobody; Chromium keeps its own sandbox only as non-root).",
        valueName: "user"))
    var browserUser: String?

    @Option(name: .customLong("unconfined"), help: ArgumentHelp(
        "Run without one confinement step, accepting the risk: user, capabilities, no-new-privs, landlock or seccomp, optionally for one worker (net:landlock, exec:capabilities, browser:landlock). Repeatable.",
        valueName: "step"))
    var unconfined: [String] = []

    func validate() throws {
        for value in unconfined where Self.parse(value) == nil {
            throw ValidationError("--unconfined \(value): expected [\(WorkerRole.allCases.map { "\($0.rawValue):" }.joined(separator: "|"))]<step> with step one of \(ConfinementStep.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for name in [netUser, execUser, browserUser].compactMap({ $0 }) where name.isEmpty {
            throw ValidationError("--net-user/--exec-user/--browser-user need a user name")
        }
    }

    /// These flags as `run` takes them (for the unit `install` writes and the `run` that
    /// `doctor` starts).
    var runArguments: [String] {
        var arguments: [String] = []
        if let netUser { arguments += ["--net-user", netUser] }
        if let execUser { arguments += ["--exec-user", execUser] }
        if let browserUser { arguments += ["--browser-user", browserUser] }
        for step in unconfined { arguments += ["--unconfined", step] }
        return arguments
    }

    /// Who commands run as: `--exec-user`, else the dedicated user (never root by default).
    var execChoice: ExecUser { ExecUser.choose(requested: execUser, keepsUid: optedOut(.exec).contains(.user)) }

    /// `--unconfined [role:]step`: the roles it names (all without a prefix) and the step.
    static func parse(_ value: String) -> (roles: [WorkerRole], step: ConfinementStep)? {
        let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
        if parts.count == 2 {
            guard let role = WorkerRole(rawValue: parts[0]), let step = ConfinementStep(rawValue: parts[1]) else { return nil }
            return ([role], step)
        }
        guard let step = ConfinementStep(rawValue: value) else { return nil }
        return (WorkerRole.allCases, step)
    }

    /// The steps `--unconfined` turns off for `role`.
    func optedOut(_ role: WorkerRole) -> Set<ConfinementStep> {
        Set(unconfined.compactMap { Self.parse($0) }.filter { $0.roles.contains(role) }.map(\.step))
    }

    /// The user `role` drops to (nil: the worker's default).
    func user(of role: WorkerRole) -> String? {
        switch role {
        case .net: return netUser
        case .exec: return execChoice.name
        case .browser: return browserUser
        // A listing or an upload is what a command of the exec user could do: as that user.
        case .files, .mcp: return execChoice.name
        }
    }

    func options(for role: WorkerRole, connectPorts: [UInt16] = [], metricsPort: UInt16? = nil) -> ConfinementOptions {
        ConfinementOptions(user: user(of: role), optedOut: optedOut(role), connectPorts: connectPorts, metricsPort: metricsPort)
    }

    /// The BrowserWorker as `run` starts it: its configuration, and Landlock rules that let
    /// it write only its data dir and execute only the Chromium binary's directory.
    func browserWorker(launch: WorkerLaunch, config: OpenClawConfig, stateDir: String, settings: BrowserProxySettings) -> BrowserWorkerSettings {
        let configuration = BrowserSetup.configuration(config: config, stateDir: stateDir, settings: settings)
        var options = options(for: .browser)
        options.writablePaths = [configuration.dataDir]
        options.executablePaths = configuration.executablePath.map { [BrowserSetup.directory(of: $0)] } ?? []
        return BrowserWorkerSettings(launch: launch, confinement: options, configuration: configuration)
    }
}

/// Stand-in workers (hidden; the tests' forged workers): a path per role, started under its
/// own name instead of the one binary.
struct WorkerPathOptions: ParsableArguments {
    @Option(name: .customLong("net-worker-path"), help: .hidden)
    var net: String?

    @Option(name: .customLong("exec-worker-path"), help: .hidden)
    var exec: String?

    @Option(name: .customLong("browser-worker-path"), help: .hidden)
    var browser: String?

    @Option(name: .customLong("files-worker-path"), help: .hidden)
    var files: String?

    @Option(name: .customLong("mcp-worker-path"), help: .hidden)
    var mcp: String?

    func path(_ role: WorkerRole) -> String? {
        switch role {
        case .net: return net
        case .exec: return exec
        case .browser: return browser
        case .files: return files
        case .mcp: return mcp
        }
    }

    /// How `role` is started: the stand-in when one is named, else the one binary.
    func launch(_ role: WorkerRole) -> WorkerLaunch { .resolve(role, override: path(role)) }

    /// These options as given, for a `run` another command starts (doctor's auth check).
    var arguments: [String] {
        WorkerRole.allCases.flatMap { role in path(role).map { ["--\(role.rawValue)-worker-path", $0] } ?? [] }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node host in the foreground.",
        discussion: """
        Connects to the gateway, waits for pairing approval if needed (the log shows the \
        `openclaw devices approve <requestId>` command to run on the gateway), and serves \
        system.run / system.which. Stops cleanly on SIGTERM or SIGINT.

        Exit status (as upstream's): 130 stopped by SIGINT, 143 by SIGTERM (129 SIGHUP), 1 the gateway refused our credentials (fix them, \
        the service manager restarts us), 64 usage error, 71 a worker could not confine \
        itself (the log names the step; see --unconfined), 75 another openclaw-node runs on \
        this state dir (the message names its pid), 78 configuration error (bad config, \
        unresolvable secret, plaintext ws:// to a non-loopback host, a --commands allowlist \
        that keeps no command). Why the node last \
        stopped on its own is kept in <state dir>/node.last-error.json (`status` shows it). \
        Under systemd (Type=notify) it reports READY=1 once connected, waiting for pairing, \
        or retrying an unreachable gateway, and its state as STATUS=. \
        Environment: OPENCLAW_STATE_DIR, OPENCLAW_CONFIG_PATH, OPENCLAW_GATEWAY_TOKEN, \
        OPENCLAW_GATEWAY_PASSWORD, OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1 (allow ws:// to a \
        private IP address).
        """
    )

    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var confinement: ConfinementFlags
    @OptionGroup var surface: CommandSurfaceOptions

    @Option(name: .customLong("pair"), help: ArgumentHelp(
        "Pair with a setup code or oc-pair URL; explicit gateway flags take precedence. Its bootstrap token is sent on the first connect only and never saved.",
        valueName: "code-or-url"))
    var pair: String?

    @Option(name: .customLong("pair-if-needed"), help: ArgumentHelp(
        "Use the saved device token when available; otherwise pair with this setup code", valueName: "code-or-url"))
    var pairIfNeeded: String?

    @Option(name: .customLong("log-format"), help: "Log line format: kv (key=value) or json.")
    var logFormat: String = "kv"

    @Option(name: .customLong("max-concurrent-runs"), help: "Commands run at once; more wait in a bounded queue.")
    var maxConcurrentRuns: Int = 8

    @Option(name: .customLong("metrics-port"), help: ArgumentHelp(
        "Serve Prometheus metrics on 127.0.0.1:<port>/metrics (off by default; loopback only).", valueName: "port"))
    var metricsPort: Int?

    @OptionGroup var workers: WorkerPathOptions

    /// Tests shorten upstream's 60 s `node.host.stats` cadence.
    @Option(name: .customLong("host-stats-interval-ms"), help: .hidden)
    var hostStatsIntervalMs: Int = HostStats.intervalMs

    /// How often the skills folder is looked at for changes (tests shorten it).
    @Option(name: .customLong("skills-poll-ms"), help: .hidden)
    var skillsPollMs: Int = 5_000

    // Tests: where `terminal.upload` stages (default `$TMPDIR`, else /tmp) and for how long.
    @Option(name: .customLong("terminal-upload-root"), help: .hidden)
    var terminalUploadRoot: String?

    @Option(name: .customLong("terminal-upload-retention-ms"), help: .hidden)
    var terminalUploadRetentionMs: Int64 = TerminalUploadLimits.retentionMs

    /// Tests shorten the first pause before asking again about a pending command surface.
    @Option(name: .customLong("pairing-retry-ms"), help: .hidden)
    var pairingRetryMs: Int?

    /// `connect --service`: stop after the first hello (the device token is stored by then).
    @Flag(name: .customLong("stop-after-first-connect"), help: .hidden)
    var stopAfterFirstConnect = false

    /// `doctor`'s authentication check: connect once with the real credentials, print the
    /// gateway's verdict as JSON on stdout, stop.
    @Flag(name: .customLong("check-auth"), help: .hidden)
    var checkAuth = false

    func validate() throws {
        if pair != nil, pairIfNeeded != nil { throw ValidationError("--pair-if-needed cannot be combined with --pair") }
        if let port = metricsPort, !(1...65535).contains(port) { throw ValidationError("--metrics-port must be 1-65535") }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be kv or json") }
        guard (1...1024).contains(maxConcurrentRuns) else { throw ValidationError("--max-concurrent-runs must be 1-1024") }
    }

    func run() throws {
        SystemdNotify.adopt()
        // The workers inherit the format (their environment is built from ours).
        setenv(LineLogHandler.formatVariable, logFormat, 1)
        LineLogHandler.bootstrap(process: "supervisor", format: LogFormat(rawValue: logFormat)!)
        let logger = Logger(label: "openclaw-node")
        let setup: NodeSetup
        do {
            var flags = gateway.flags
            flags.commands = surface.allowlist
            flags.allCommands = surface.allCommands
            flags.pair = try pairingRequest()
            setup = try NodeSetup.prepare(flags: flags, version: NodeVersion.current, logger: logger)
        } catch let error as ConfigError {
            // The lock (if taken) went with the failed setup; nobody else holds it, or the
            // error would have been the lock's.
            if !checkAuth { LastFailure(exitCode: ExitStatus.config, reason: error.message).save(stateDir: StatePaths.resolve().stateDir) }
            SystemdNotify.send([("STATUS", "failed: \(error.message)")])
            throw failure(logger, error.message)
        } catch let error as NodeLock.Failure {
            logger.error("\(error.description)")
            SystemdNotify.send([("STATUS", "failed: \(error.description)")])
            throw ExitCode(ExitStatus.locked)
        }
        let router = CommandRouter()
        let approvals = ExecApprovalsStore(stateDir: setup.paths.stateDir, sha256Hex: FileDigest.sha256Hex(bytes:))
        let nodeEnvironment = ProcessEnvironment.current()
        let execUser = confinement.execChoice
        if let warning = execUser.warning {
            logger.warning("\(warning)", metadata: ["fix": "\(execUser.fix ?? "-")"])
        }
        // The user commands run as when it is not the node's own (nil: they keep our uid).
        let commandUser = UserIdentity.isRoot && !confinement.optedOut(.exec).contains(.user)
            ? execUser.name.flatMap(UserIdentity.lookup).flatMap { $0.uid == geteuid() ? nil : $0 } : nil
        if let home = commandUser?.home, home.hasPrefix(setup.paths.stateDir + "/"), SecureFile.allowSearch(setup.paths.stateDir) {
            logger.info("state dir made searchable for the exec user's home", metadata: ["path": "\(setup.paths.stateDir)"])
        }
        let browserSettings = BrowserProxySettings.from(setup.config)
        if let allowlist = setup.commands,
           let refusal = CommandSurface.emptyRestriction(allowlist, available: CommandSurface.configured(browserProxy: browserSettings.advertised).commands) {
            if !checkAuth { LastFailure(exitCode: ExitStatus.config, reason: refusal).save(stateDir: setup.paths.stateDir) }
            SystemdNotify.send([("STATUS", "failed: \(refusal)")])
            throw failure(logger, refusal)
        }
        var browserWorker: BrowserWorkerSettings?
        if browserSettings.advertised {
            let worker = confinement.browserWorker(launch: workers.launch(.browser), config: setup.config,
                                                   stateDir: setup.paths.stateDir, settings: browserSettings)
            browserWorker = worker
            if worker.configuration.executablePath == nil {
                logger.warning("browser.proxy is enabled but no Chromium was found; install chromium or set browser.executablePath")
            }
        }
        // MCP servers run as the exec user, from upstream's default environment of that user.
        var mcpBase = ["PATH": setup.link.pathEnv, "HOME": commandUser?.home ?? nodeEnvironment["HOME"] ?? "/",
                       "SHELL": "/bin/sh", "TERM": nodeEnvironment["TERM"] ?? "dumb"]
        if let name = commandUser?.name ?? nodeEnvironment["USER"] { mcpBase["USER"] = name; mcpBase["LOGNAME"] = name }
        let mcpSettings = McpSettings.from(setup.config, base: mcpBase)
        for warning in mcpSettings.warnings { logger.warning("\(warning)") }
        let mcpAdvertised = setup.commands.map { $0.contains(McpCatalog.command) } ?? true
        // The role table: a monitor per worker; the command handlers call the roles they need.
        let supervisor = Supervisor(
            settings: WorkerSettings(
                netWorker: workers.launch(.net), execWorker: workers.launch(.exec),
                netConfinement: confinement.options(for: .net, connectPorts: ([setup.link.url] + setup.link.fallbacks.map(\.url)).compactMap(GatewayURL.port),
                                                   metricsPort: metricsPort.map(UInt16.init)),
                execConfinement: confinement.options(for: .exec),
                controlSocketPath: checkAuth ? nil : ControlSocket.path(stateDir: setup.paths.stateDir),
                browser: browserWorker, stateDir: checkAuth ? nil : setup.paths.stateDir,
                probe: checkAuth ? ProbeSettings() : nil, maxConcurrentRuns: maxConcurrentRuns,
                hostStatsIntervalMs: max(100, hostStatsIntervalMs), home: nodeEnvironment["HOME"] ?? "/",
                stopAfterFirstHello: stopAfterFirstConnect,
                skillsDirectory: NodeSkills.enabled(setup.config) ? NodeSkills.directory(stateDir: setup.paths.stateDir) : nil,
                skillsPollMs: skillsPollMs,
                filesWorker: workers.launch(.files), filesConfinement: confinement.options(for: .files),
                mcp: mcpSettings.servers.isEmpty || checkAuth ? nil
                    : McpWorkerSettings(launch: workers.launch(.mcp), confinement: confinement.options(for: .mcp, connectPorts: mcpSettings.httpOnlyPorts),
                                        settings: mcpSettings, clientVersion: NodeVersion.current),
                publishesPluginTools: mcpAdvertised
            ),
            logger: logger
        )
        let systemRun = SystemRunHandler(
            environment: ExecEnvironment(nodeEnvironment: nodeEnvironment, pathEnv: setup.link.pathEnv, user: commandUser),
            pathEnv: setup.link.pathEnv, home: nodeEnvironment["HOME"], defaultCwd: commandUser.map(Self.commandDirectory),
            commandUser: commandUser.map { ($0.uid, $0.gid) },
            approvals: approvals, config: setup.config, runner: supervisor.exec, metrics: supervisor.metrics,
            denials: supervisor.denials, nodeName: setup.link.displayName,
            inlineEvalDirectory: InlineEvalScript.prepareDirectory(stateDir: setup.paths.stateDir, owner: commandUser.map { ($0.uid, $0.gid) }),
            logger: logger
        )
        router.register(WhichHandler(pathEnv: setup.link.pathEnv))
        router.register(systemRun)
        router.register(ExecApprovalsHandler(store: approvals))
        let browserProxy = BrowserProxyHandler(settings: browserSettings, media: BrowserMediaStore(stateDir: setup.paths.stateDir),
                                               runner: supervisor.browser, logger: logger)
        router.register(browserProxy, advertised: browserSettings.advertised, cap: "browser")
        let filesHandler = FilesHandler(
            runner: supervisor.files, home: commandUser.map(Self.commandDirectory) ?? nodeEnvironment["HOME"] ?? "/",
            uploads: .init(root: terminalUploadRoot.map(PathNormalization.resolve) ?? FilesHandler.Uploads.defaultRoot(environment: nodeEnvironment),
                           retentionMs: max(0, terminalUploadRetentionMs)),
            loop: supervisor.loop, logger: logger)
        router.register(filesHandler)
        router.register(McpToolsHandler(runner: supervisor.mcp, callCaps: mcpSettings.callCaps), cap: "mcp")
        if !checkAuth { supervisor.loop.execute { filesHandler.start() } }
        if let allowlist = setup.commands { router.restrict(to: allowlist) }
        var linkSettings = setup.link
        linkSettings.pairingRetryMs = pairingRetryMs.map { min(max($0, 100), PairingProgress.retryMs) }
        let link = LinkAuthority(settings: linkSettings, identity: setup.identity, router: router, metrics: supervisor.metrics, logger: logger)
        logger.info("node host starting", metadata: [
            "version": "\(NodeVersion.current)", "gateway": "\(setup.link.url)", "nodeId": "\(setup.link.nodeId)",
            "deviceId": "\(setup.identity.deviceId)", "stateDir": "\(setup.paths.stateDir)",
        ])
        logger.info("node host PATH: \(setup.link.pathEnv)")
        logger.info("\(router.surface.logLine)", metadata: ["caps": "\(router.caps.joined(separator: ","))"])
        let code = supervisor.run(link: link)
        if checkAuth {
            print((try? JSONText.encode(supervisor.probeOutcome ?? .object(["ok": .bool(false), "result": .string("stopped")]))) ?? "{}")
        }
        withExtendedLifetime(setup.lock) {}
        throw ExitCode(code)
    }

    /// Where commands of the switched-to `user` run when they name no cwd (the Supervisor sets
    /// it on every run order): the user's home, or `/` where that is no directory.
    static func commandDirectory(_ user: UserIdentity) -> String {
        var info = stat()
        return stat(user.home, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR ? user.home : "/"
    }

    /// `--pair` / `--pair-if-needed`, decoded (upstream's messages, exit 1). An expired code
    /// under `--pair-if-needed` is no error while a device token is stored: it is not needed.
    func pairingRequest() throws -> PairingRequest? {
        guard let text = pair ?? pairIfNeeded else { return connectCode }
        do {
            return PairingRequest(code: try SetupCode.decode(text, nowMs: currentTimeMillis()), preferBootstrapToken: pair != nil)
        } catch SetupCode.Failure.expired where pairIfNeeded != nil && Self.hasDeviceToken() {
            return nil
        } catch let failure as SetupCode.Failure {
            fputs("\(failure)\n", stderr)
            throw ExitCode(1)
        }
    }

    /// A setup code `connect` decoded: it runs this command in its own process, so the
    /// bootstrap token never appears in an argument list.
    nonisolated(unsafe) static var connectPairing: PairingRequest?
    var connectCode: PairingRequest? { Self.connectPairing }

    /// A node device token is stored here, or waits in the official node host's database
    /// for the import `run` makes first.
    static func hasDeviceToken() -> Bool {
        let paths = StatePaths.resolve()
        guard let identity = try? IdentityFile.load(at: paths.identityFile) else {
            let database = UpstreamStateImport.databasePath(stateDir: paths.stateDir)
            return access(database, R_OK) == 0 && (try? UpstreamStateImport.read(databasePath: database))?.nodeToken != nil
        }
        return DeviceAuthFile.token(at: paths.deviceAuthFile, deviceId: identity.deviceId, role: "node") != nil
    }

    private func failure(_ logger: Logger, _ message: String) -> ExitCode {
        logger.error("\(message)")
        return ExitCode(ExitStatus.config)
    }
}
