import ArgumentParser
import Glibc
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// Options every service command shares.
struct ServiceScopeOptions: ParsableArguments {
    @Flag(help: "Manage the system service (/etc/systemd/system, needs root) instead of the user service.")
    var system = false

    @Flag(help: "Print the result as JSON (upstream field names: ok, action, result, message, hints, service).")
    var json = false

    var manager: ServiceManager { ServiceManager(scope: system ? .system : .user) }

    func emit(_ outcome: ServiceActionResult) throws {
        if json {
            print((try? JSONText.encode(outcome.json)) ?? "{}")
        } else if !outcome.text.isEmpty {
            print(outcome.text)
        }
        if !outcome.ok { throw ExitCode(1) }
    }
}

struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install and start openclaw-node as a systemd service.",
        discussion: """
        Writes openclaw-node.service (user scope: ~/.config/systemd/user; --system: \
        /etc/systemd/system), then runs systemctl daemon-reload, enable and restart. ExecStart is \
        this program's absolute path with `run` and the given flags (host and port default to \
        node.json, else 127.0.0.1:18789). OPENCLAW_GATEWAY_TOKEN / OPENCLAW_GATEWAY_PASSWORD from \
        your environment go to <state dir>/node.systemd.env (0600), never into the unit. \
        OPENCLAW_STATE_DIR, OPENCLAW_CONFIG_PATH and OPENCLAW_ALLOW_INSECURE_PRIVATE_WS are kept \
        when set. An installed service is left alone unless --force. The service always runs \
        this native binary: --runtime and --runtime-path are accepted for scripts written for \
        the official node host, and no JavaScript runtime is needed.
        """
    )

    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var confinement: ConfinementFlags
    @OptionGroup var surface: CommandSurfaceOptions
    @OptionGroup var scope: ServiceScopeOptions

    @Flag(help: "Rewrite and restart an already installed service.")
    var force = false

    @Flag(name: .customLong("print-unit"), help: "Print the unit that would be installed and change nothing.")
    var printUnit = false

    @Flag(name: .customLong("browser-sandbox"), help: ArgumentHelp(
        "System service only: let browser.proxy run Chromium with its own sandbox: allows user, PID and network namespaces, chroot and CAP_CHOWN (systemd exposure 3.3 instead of 2.5). Without it the system service cannot start Chromium."))
    var browserSandbox = false

    @Option(name: .customLong("runtime"), help: ArgumentHelp(
        "Accepted for scripts written for the official node host (node or bun); the service always runs this native binary.",
        valueName: "node|bun"))
    var runtime: String?

    @Option(name: .customLong("runtime-path"), help: ArgumentHelp(
        "Accepted for scripts written for the official node host (an absolute path); the service always runs this native binary.",
        valueName: "path"))
    var runtimePath: String?

    @Option(name: .customLong("program-path"), help: .hidden)
    var programPath: String?

    @Option(name: .customLong("log-format"), help: "Passed to `run`: kv or json.")
    var logFormat: String?

    @Option(name: .customLong("max-concurrent-runs"), help: "Passed to `run`: commands run at once.")
    var maxConcurrentRuns: Int?

    @Option(name: .customLong("metrics-port"), help: ArgumentHelp("Passed to `run`: Prometheus metrics on 127.0.0.1:<port>.",
                                                               valueName: "port"))
    var metricsPort: Int?

    func validate() throws {
        if let runtime, runtime != "node", runtime != "bun" { throw ValidationError(#"Invalid --runtime (use "node" or "bun")"#) }
        if let runtimePath, !runtimePath.hasPrefix("/") { throw ValidationError("Invalid runtime pin: --runtime-path must be an absolute path") }
        if let logFormat, LogFormat(rawValue: logFormat) == nil { throw ValidationError("--log-format must be kv or json") }
        if let runs = maxConcurrentRuns, !(1...1024).contains(runs) { throw ValidationError("--max-concurrent-runs must be 1-1024") }
        if let port = metricsPort, !(1...65535).contains(port) { throw ValidationError("--metrics-port must be 1-65535") }
    }

    func run() throws {
        guard let me = programPath ?? currentExecutablePath() else { throw ExitCode(ExitStatus.config) }
        let manager = scope.manager
        manager.browserSandbox = browserSandbox
        manager.execUser = confinement.execUser
        let endpoint = GatewayEndpoint.resolve(flags: gateway.flags, node: try? NodeConfigFile.load(StatePaths(stateDir: manager.stateDir).nodeFile),
                                               config: nil)
        var arguments = [me, "run", "--host", endpoint.host, "--port", String(endpoint.port)]
        if endpoint.tls { arguments.append("--tls") } else if gateway.noTls { arguments.append("--no-tls") }
        if let path = endpoint.contextPath { arguments += ["--context-path", path] }
        if let fingerprint = gateway.tlsFingerprint { arguments += ["--tls-fingerprint", fingerprint] }
        if let nodeId = gateway.nodeId { arguments += ["--node-id", nodeId] }
        if let name = gateway.displayName { arguments += ["--display-name", name] }
        arguments += confinement.runArguments
        arguments += surface.runArguments
        if let logFormat { arguments += ["--log-format", logFormat] }
        if let runs = maxConcurrentRuns { arguments += ["--max-concurrent-runs", String(runs)] }
        if let port = metricsPort { arguments += ["--metrics-port", String(port)] }
        if printUnit {
            print(manager.unit(programArguments: arguments, version: NodeVersion.current).render(), terminator: "")
            return
        }
        do {
            // Kept in the service env file with the gateway token; only for a TLS gateway.
            _ = try CloudflareAccess.headers(environment: { getenv($0).map { String(cString: $0) } }, tls: endpoint.tls,
                                             requirement: "Cloudflare Access credentials require --tls for the node Gateway connection")
        } catch let error as ConfigError {
            try scope.emit(ServiceActionResult(refused: "install", error: error.message))
        }
        var outcome = manager.install(programArguments: arguments, force: force, version: NodeVersion.current)
        if runtime != nil || runtimePath != nil, outcome.ok {
            let given = [runtime.map { "--runtime \($0)" }, runtimePath.map { "--runtime-path \($0)" }].compactMap { $0 }.joined(separator: ", ")
            outcome.message = [outcome.message, "The service runs this native binary (\(me)); \(given) is accepted for compatibility and not used."]
                .compactMap { $0 }.joined(separator: " ")
        }
        try scope.emit(outcome)
    }
}

struct Uninstall: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop, disable and remove the service and its credentials file.")
    @OptionGroup var scope: ServiceScopeOptions
    func run() throws { try scope.emit(scope.manager.uninstall()) }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the installed service (fails if it is not installed).")
    @OptionGroup var scope: ServiceScopeOptions
    func run() throws { try scope.emit(scope.manager.start()) }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the service (a no-op when it is not installed).")
    @OptionGroup var scope: ServiceScopeOptions
    func run() throws { try scope.emit(scope.manager.stop()) }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restart the installed service (fails if it is not installed).")
    @OptionGroup var scope: ServiceScopeOptions
    func run() throws { try scope.emit(scope.manager.restart()) }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the service (installed, enabled, active, main pid, last exit) and the live node state.",
        discussion: """
        The live part (connected, paired, pending pairing requestId, runs in flight) comes from the \
        running node's status socket (<state dir>/node.sock); why the node last stopped on its \
        own from <state dir>/node.last-error.json. `ok` is false when the service failed.

        Exit status, as `systemctl status`: 0 running, 3 not running (stopped, failed, starting), \
        4 no such unit (not installed).
        """)
    @OptionGroup var scope: ServiceScopeOptions

    func run() throws {
        let status = scope.manager.status()
        if scope.json {
            print((try? JSONText.encode(status)) ?? "{}")
        } else {
            printText(status)
        }
        let code = ServiceManager.exitCode(of: status)
        if code != 0 { throw ExitCode(code) }
    }

    func printText(_ status: JSONValue) {
        let service = status["service"]
        let runtime = service?["runtime"]
        print("service: \(scope.manager.unitPath)")
        print("  installed: \(service?["command"] == .null ? "no" : "yes"), enabled: \(service?["loaded"]?.boolValue == true ? "yes" : "no")")
        var line = "  state: \(runtime?["state"]?.stringValue ?? "unknown")/\(runtime?["subState"]?.stringValue ?? "-")"
        if let pid = runtime?["pid"]?.numberValue { line += ", main pid \(pid.saturatingInt)" }
        if let exit = runtime?["lastExitStatus"]?.numberValue { line += ", last exit status \(exit.saturatingInt)" }
        print(line)
        if let node = status["node"], node != .null {
            var live = "node: \(node["connected"]?.boolValue == true ? "connected" : node["phase"]?.stringValue ?? "?")"
            live += node["paired"]?.boolValue == true ? ", paired" : ", not paired"
            if let request = node["pendingRequestId"]?.stringValue {
                live += ", waiting for pairing approval: \(PairingApproval.command(request))"
            } else if node["pairing"]?["state"]?.stringValue == PairingStage.surfacePending.rawValue {
                let command = node["pairing"]?["surfaceRequestId"]?.stringValue.map(PairingApproval.surfaceCommand) ?? "openclaw nodes pending"
                live += ", command surface waiting for approval: \(command)"
            }
            live += ", runs in flight \((node["runsInFlight"]?.numberValue ?? 0).saturatingInt)"
            print(live)
            if let commands = node["advertised"]?["commands"]?.arrayValue?.compactMap(\.stringValue) {
                let caps = node["advertised"]?["caps"]?.arrayValue?.compactMap(\.stringValue) ?? []
                print("advertised: \(commands.joined(separator: ", ")) (caps: \(caps.joined(separator: ", ")))")
            }
        } else if let problem = status["nodeError"]?.stringValue {
            print("node: \(problem); run as root or the node's user")
        } else {
            print("node: not running (no answer on its status socket)")
        }
        if let failure = status["lastFailure"], failure != .null {
            var line = "last failure: \(failure["reason"]?.stringValue ?? "?")"
            if let code = failure["code"]?.stringValue { line += " [\(code)]" }
            line += " (exit \((failure["exitCode"]?.numberValue ?? 0).saturatingInt), \(failure["at"]?.stringValue ?? "?"))"
            print(line)
        }
        if status["ok"]?.boolValue == false { print("ok: no (the service failed; see the last failure above and: openclaw-node status --json)") }
    }
}
