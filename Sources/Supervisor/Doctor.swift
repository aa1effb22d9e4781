import ArgumentParser
import Confinement
import Glibc
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// One line of `doctor`: what was checked, how it went, and how to fix it.
struct DoctorCheck {
    enum Status: String { case ok, warn, fail }
    var name: String
    var status: Status
    var detail: String
    var fix: String?

    var json: JSONValue {
        var object: [String: JSONValue] = ["name": .string(name), "status": .string(status.rawValue), "detail": .string(detail)]
        if let fix { object["fix"] = .string(fix) }
        return .object(object)
    }
}

/// `openclaw-node doctor`: confinement on this kernel, state and config, the gateway, and a
/// self-test of the whole pipeline through the real confined workers.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check this machine, the configuration and the gateway; run a loopback self-test.",
        discussion: """
        Checks, each answered ok, warn or fail with a one-line fix: the confinement each worker \
        gets on this kernel (started once each in report mode: user, capabilities, \
        no-new-privs, landlock, seccomp), the user the network worker drops to, state dir and \
        file permissions, the config and its secret references, the gateway (TCP and TLS \
        handshake with the pin, from inside the confined network worker; no credential is \
        sent), authentication (once the pin is verified: one connect with the node's real \
        credentials through the confined network worker, reporting the gateway's verdict: \
        AUTH_TOKEN_MISSING, AUTH_TOKEN_MISMATCH, AUTH_DEVICE_TOKEN_MISMATCH, PAIRING_REQUIRED \
        with its requestId; when a node already runs on this state dir, its live state \
        instead), and a self-test: a loopback gateway in this process, the real node paired \
        with it, one system.which and one system.run through the confined workers.

        Exit status: 0 nothing failed (warnings allowed), 1 a check failed.
        """
    )

    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var confinement: ConfinementFlags

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(name: .customLong("skip-self-test"), help: "Do not run the loopback pipeline self-test.")
    var skipSelfTest = false

    @OptionGroup var workers: WorkerPathOptions

    func run() throws {
        guard let me = currentExecutablePath() else {
            fputs("openclaw-node doctor: cannot determine this program's path\n", stderr)
            throw ExitCode(ExitStatus.config)
        }
        let net = workers.launch(.net)
        var checks: [DoctorCheck] = []
        var reports: [String: ConfinementReport] = [:]
        for role in WorkerRole.allCases where role.startsWithNode {
            let (check, report) = confinementCheck(role, launch: workers.launch(role))
            checks.append(check)
            reports[role.rawValue] = report
        }
        // The files role as a listing starts it (each request sets its own Landlock rules).
        var files = confinement.options(for: .files)
        files.filesMode = .list
        let (filesCheck, filesReport) = confinementCheck(.files, launch: workers.launch(.files), options: files)
        checks.append(filesCheck)
        reports[WorkerRole.files.rawValue] = filesReport
        let (mcpCheck, mcpReport) = confinementCheck(.mcp, launch: workers.launch(.mcp))
        checks.append(mcpCheck)
        reports[WorkerRole.mcp.rawValue] = mcpReport
        checks.append(userCheck())
        checks.append(execUserCheck())
        let paths = StatePaths.resolve()
        let (browserChecks, browserReport) = browserCheck(paths)
        checks += browserChecks
        if let browserReport { reports["browser"] = browserReport }
        checks += stateChecks(paths)
        checks += configChecks(paths)
        checks.append(surfaceCheck(paths))
        checks.append(Self.loginShellPathCheck(environment: ProcessEnvironment.current()))
        let gatewayReport = gatewayCheck(paths, netWorker: net)
        checks.append(gatewayReport)
        checks.append(authCheck(paths, program: me, gatewayOK: gatewayReport.status == .ok))
        if !skipSelfTest { checks.append(SelfTest(program: me, confinement: confinement).run()) }

        let ok = !checks.contains { $0.status == .fail }
        if json {
            var workers: [String: JSONValue] = [:]
            for (name, report) in reports {
                workers[name] = .array(report.entries.map { entry in
                    var item: [String: JSONValue] = ["step": .string(entry.step.rawValue), "state": .string(entry.state.rawValue)]
                    if let detail = entry.detail { item["detail"] = .string(detail) }
                    return .object(item)
                })
            }
            let object: JSONValue = .object([
                "ok": .bool(ok),
                "checks": .array(checks.map(\.json)),
                "workers": .object(workers),
                "kernel": .object(["landlockAbi": Landlock.abi().map { .number(Double($0)) } ?? .null,
                                   "uid": .number(Double(geteuid()))]),
                "problems": .array(checks.filter { $0.status == .fail }.map { .string("\($0.name): \($0.detail)") }),
            ])
            print((try? JSONText.encode(object)) ?? "{}")
        } else {
            for check in checks {
                print("\(check.status.rawValue.uppercased().padded(5)) \(check.name.padded(18)) \(check.detail)")
                if let fix = check.fix, check.status != .ok { print("      fix: \(fix)") }
            }
            for (name, report) in reports.sorted(by: { $0.key < $1.key }) {
                print("\(name) worker:")
                for entry in report.entries {
                    print("  \(entry.step.rawValue.padded(14)) \(entry.state.rawValue.padded(11)) \(entry.detail ?? "")")
                }
            }
        }
        if !ok { throw ExitCode(1) }
    }

    // MARK: Checks

    /// What the node advertises in `connect`: the running node's surface, else what this
    /// configuration gives.
    func surfaceCheck(_ paths: StatePaths) -> DoctorCheck {
        if let live = ControlSocket.query(path: ControlSocket.path(stateDir: paths.stateDir)), let surface = live.advertised {
            return DoctorCheck(name: "surface", status: .ok,
                               detail: "advertised by the running node (pid \(live.pid)): \(Self.describe(surface))")
        }
        let config = (try? OpenClawConfig.load(paths.configPath)) ?? OpenClawConfig(root: .object([:]))
        let surface = CommandSurface.configured(browserProxy: BrowserProxySettings.from(config).advertised)
        return DoctorCheck(name: "surface", status: .ok, detail: "advertised on connect: \(Self.describe(surface))")
    }

    static func describe(_ surface: CommandSurface) -> String {
        "commands \(surface.commands.joined(separator: ", ")); caps \(surface.caps.joined(separator: ", "))"
    }

    /// `browser.proxy`: disabled, or Chromium found and the BrowserWorker confined as `run` would start it.
    func browserCheck(_ paths: StatePaths) -> ([DoctorCheck], ConfinementReport?) {
        let config = (try? OpenClawConfig.load(paths.configPath)) ?? OpenClawConfig(root: .object([:]))
        let settings = BrowserProxySettings.from(config)
        guard settings.advertised else {
            return ([DoctorCheck(name: "browser", status: .ok, detail: "browser.proxy disabled in \(paths.configPath)")], nil)
        }
        let worker = confinement.browserWorker(launch: workers.launch(.browser), config: config,
                                               stateDir: paths.stateDir, settings: settings)
        let (confined, report) = confinementCheck(.browser, launch: worker.launch, options: worker.confinement)
        guard let chromium = worker.configuration.executablePath else {
            return ([confined, DoctorCheck(name: "browser", status: .warn, detail: "browser.proxy is advertised but no Chromium was found",
                                           fix: "apt install chromium, or set browser.executablePath to the browser binary")], report)
        }
        return ([confined, DoctorCheck(name: "browser", status: .ok, detail: "Chromium \(chromium); data in \(worker.configuration.dataDir)")],
                report)
    }

    func confinementCheck(_ role: WorkerRole, launch: WorkerLaunch, options given: ConfinementOptions? = nil) -> (DoctorCheck, ConfinementReport?) {
        let worker = role.rawValue
        let name = "confinement.\(worker)"
        let options = given ?? confinement.options(for: role)
        guard let output = ProgramRun.run([launch.argv0] + options.arguments + ["--confinement-report"],
                                          environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], path: launch.path),
              let report = try? JSONText.decode(ConfinementReport.self, from: output.stdout) else {
            return (DoctorCheck(name: name, status: .fail, detail: "the \(worker) worker did not report its confinement",
                                fix: "reinstall openclaw-node: \(launch.path) did not run as \(role.processName)"), nil)
        }
        if let failed = report.failure {
            return (DoctorCheck(name: name, status: .fail,
                                detail: "\(failed.step.rawValue) failed: \(failed.detail ?? "")",
                                fix: Self.fix(for: failed.step, worker: worker)), report)
        }
        let active = report.entries.filter { $0.state == .active }.map(\.step.rawValue)
        let optedOut = report.entries.filter { $0.state == .optedOut }.map(\.step.rawValue)
        var detail = "active: \(active.joined(separator: ", "))"
        if !optedOut.isEmpty { detail += "; opted out: \(optedOut.joined(separator: ", "))" }
        return (DoctorCheck(name: name, status: optedOut.isEmpty ? .ok : .warn, detail: detail,
                            fix: optedOut.isEmpty ? nil : "drop --unconfined when this kernel supports the step"), report)
    }

    static func fix(for step: ConfinementStep, worker: String) -> String {
        switch step {
        case .landlock: return "boot a kernel with Landlock enabled (lsm=…,landlock), or accept the risk: --unconfined \(worker):landlock"
        case .seccomp: return "a kernel with CONFIG_SECCOMP_FILTER and libseccomp2 installed, or --unconfined \(worker):seccomp"
        case .user: return "create the user (see packaging/sysusers.d) or name another with --\(worker)-user"
        case .capabilities: return "run under a manager that allows capset/PR_CAPBSET_DROP, or --unconfined \(worker):capabilities"
        case .noNewPrivs: return "a kernel with PR_SET_NO_NEW_PRIVS (3.5+), or --unconfined \(worker):no-new-privs"
        }
    }

    func userCheck() -> DoctorCheck {
        guard UserIdentity.isRoot else {
            return DoctorCheck(name: "net-user", status: .ok, detail: "not root: the network worker keeps uid \(geteuid())")
        }
        let name = confinement.netUser ?? ConfinementPolicy.defaultNetUser
        guard let user = UserIdentity.lookup(name) else {
            return DoctorCheck(name: "net-user", status: .fail, detail: "user \(name) does not exist",
                               fix: "useradd --system --no-create-home --shell /usr/sbin/nologin \(name), or --net-user <existing user>")
        }
        guard user.uid != 0 else {
            return DoctorCheck(name: "net-user", status: .fail, detail: "\(name) is root", fix: "--net-user nobody")
        }
        return DoctorCheck(name: "net-user", status: .ok, detail: "\(name) (uid \(user.uid))")
    }

    /// Who commands run as: `warn` for uid 0 (only ever explicit) and for the `nobody` fallback.
    func execUserCheck() -> DoctorCheck {
        let choice = confinement.execChoice
        guard UserIdentity.isRoot else {
            return DoctorCheck(name: "exec-user", status: .ok, detail: "not root: commands run as uid \(geteuid())")
        }
        if choice.name == nil, let warning = choice.warning {
            return DoctorCheck(name: "exec-user", status: .warn, detail: warning, fix: choice.fix)
        }
        guard let name = choice.name, let user = UserIdentity.lookup(name) else {
            return DoctorCheck(name: "exec-user", status: .fail, detail: "user \(choice.name ?? "-") does not exist",
                               fix: "create it (\(ExecUser.createCommand)) or name another with --exec-user")
        }
        if let warning = choice.warning { return DoctorCheck(name: "exec-user", status: .warn, detail: warning, fix: choice.fix) }
        return DoctorCheck(name: "exec-user", status: .ok, detail: "commands run as \(name) (uid \(user.uid))")
    }

    func stateChecks(_ paths: StatePaths) -> [DoctorCheck] {
        var info = stat()
        guard lstat(paths.stateDir, &info) == 0 else {
            return [DoctorCheck(name: "state-dir", status: .warn, detail: "\(paths.stateDir) does not exist yet",
                                fix: "created (0700) by the first `openclaw-node run`")]
        }
        var checks: [DoctorCheck] = []
        if (info.st_mode & S_IFMT) != S_IFDIR {
            checks.append(DoctorCheck(name: "state-dir", status: .fail, detail: "\(paths.stateDir) is not a directory",
                                      fix: "move it away; the node creates the directory"))
        } else if info.st_uid != geteuid() {
            checks.append(DoctorCheck(name: "state-dir", status: .fail, detail: "\(paths.stateDir) belongs to uid \(info.st_uid)",
                                      fix: "chown -R \(geteuid()) \(paths.stateDir)"))
        } else if info.st_mode & 0o777 == 0o711 {
            checks.append(DoctorCheck(name: "state-dir", status: .ok,
                                      detail: "\(paths.stateDir) (0711: searchable, not readable, for the exec and browser workers' users)"))
        } else if info.st_mode & 0o077 != 0 {
            checks.append(DoctorCheck(name: "state-dir", status: .warn,
                                      detail: "\(paths.stateDir) is mode \(String(info.st_mode & 0o777, radix: 8))",
                                      fix: "chmod 700 \(paths.stateDir)"))
        } else {
            checks.append(DoctorCheck(name: "state-dir", status: .ok, detail: "\(paths.stateDir) (0700)"))
        }
        let secrets = [paths.identityFile, paths.deviceAuthFile, paths.approvalsFile, "\(paths.stateDir)/node.systemd.env"]
        let loose = secrets.filter { path in
            var file = stat()
            return lstat(path, &file) == 0 && (file.st_mode & 0o077 != 0 || file.st_uid != geteuid())
        }
        checks.append(loose.isEmpty
            ? DoctorCheck(name: "state-files", status: .ok, detail: "secret files are owner-only (0600)")
            : DoctorCheck(name: "state-files", status: .warn, detail: "readable by others: \(loose.joined(separator: ", "))",
                          fix: "chmod 600 \(loose.joined(separator: " "))"))
        if let check = Self.importCheck(paths) { checks.append(check) }
        return checks
    }

    /// upstream #134354: agents run commands as `/bin/sh -lc …`, and a login shell reads
    /// /etc/profile, which on Debian and Ubuntu sets PATH anew: the allowlist resolves a name
    /// with the node's PATH while the shell finds another binary (or none). Compared here.
    static func loginShellPathCheck(environment: [String: String]) -> DoctorCheck {
        let nodePath = environment["PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? NodeSetup.defaultPath
        var shellEnvironment = environment
        shellEnvironment["PATH"] = nodePath
        guard let output = ProgramRun.run(["/bin/sh", "-lc", "printf '%s' \"$PATH\""], environment: shellEnvironment, path: "/bin/sh"),
              output.status == 0 else {
            return DoctorCheck(name: "login-path", status: .warn, detail: "could not run /bin/sh -lc to compare PATH", fix: nil)
        }
        let shellPath = output.stdout.trimmingWhitespace()
        guard shellPath != nodePath else {
            return DoctorCheck(name: "login-path", status: .ok, detail: "/bin/sh -lc keeps the node's PATH (\(nodePath))")
        }
        return DoctorCheck(name: "login-path", status: .warn,
                           detail: "/bin/sh -lc (how agents run shell commands) resets PATH to \(shellPath) (from /etc/profile or ~/.profile); "
                               + "the node resolves commands with \(nodePath), so an allowlisted name can run another binary or none",
                           fix: "set the PATH commands need in /etc/profile.d/openclaw-node.sh (or the exec user's ~/.profile): "
                               + "a unit's Environment=PATH does not reach a login shell")
    }

    /// What was taken over from the official node host's database, and what was not.
    static func importCheck(_ paths: StatePaths) -> DoctorCheck? {
        guard let report = ImportReport.load(stateDir: paths.stateDir) else {
            let database = UpstreamStateImport.databasePath(stateDir: paths.stateDir)
            guard access(database, F_OK) == 0, access(paths.identityFile, F_OK) != 0 else { return nil }
            return DoctorCheck(name: "import", status: .ok,
                               detail: "the official node host's state in \(database) is imported at the next `openclaw-node run` (read-only)")
        }
        let skipped = report.skipped.map { "\($0.item) (\($0.reason))" }
        var detail = "imported from \(report.database): \(report.imported.isEmpty ? "nothing" : report.imported.joined(separator: ", "))"
        if let device = report.deviceId { detail += "; device \(device)" }
        if !skipped.isEmpty { detail += "; not imported: \(skipped.joined(separator: "; "))" }
        return DoctorCheck(name: "import", status: report.imported.contains(ImportReport.Item.identity.rawValue) ? .ok : .warn, detail: detail,
                           fix: skipped.isEmpty ? nil : "the node made its own for what was not imported; pair it if it has no device token")
    }

    /// The config check, then one line per problem `config check` finds (errors fail).
    func configChecks(_ paths: StatePaths) -> [DoctorCheck] {
        var checks = [configCheck(paths)]
        for problem in ConfigCheck.run(configPath: paths.configPath, approvalsPath: paths.approvalsFile) {
            checks.append(DoctorCheck(name: "config", status: problem.severity == .error ? .fail : .warn, detail: problem.text,
                                      fix: problem.severity == .error ? "fix the value; until then the node applies it fail-closed"
                                          : "remove or correct the key (openclaw-node config check lists every problem)"))
        }
        return checks
    }

    /// Authentication against the gateway with the node's real credentials, through the
    /// confined NetWorker (`run --check-auth`); only once the gateway check (pin) passed. When a
    /// node already runs on this state dir, its live state answers instead (a second
    /// connection with the same device would replace the running one).
    func authCheck(_ paths: StatePaths, program: String, gatewayOK: Bool) -> DoctorCheck {
        if let holder = NodeLock.holder(stateDir: paths.stateDir) {
            guard let live = ControlSocket.query(path: ControlSocket.path(stateDir: paths.stateDir)) else {
                return DoctorCheck(name: "auth", status: .warn, detail: "a node (pid \(holder)) runs on \(paths.stateDir); its state is not readable",
                                   fix: "openclaw-node status")
            }
            if live.connected, live.pairing?.state == .surfacePending {
                let request = live.pairing?.surfaceRequestId
                return DoctorCheck(name: "auth", status: .warn,
                                   detail: "the running node (pid \(live.pid)) is connected; its command surface waits for approval\(request.map { " (requestId \($0))" } ?? "")",
                                   fix: "on the gateway: \(request.map(PairingApproval.surfaceCommand) ?? "openclaw nodes pending")")
            }
            if live.connected { return DoctorCheck(name: "auth", status: .ok, detail: "the running node (pid \(live.pid)) is connected") }
            if let request = live.pendingRequestId {
                return DoctorCheck(name: "auth", status: .warn, detail: "PAIRING_REQUIRED: the running node waits for approval (requestId \(request))",
                                   fix: "on the gateway: \(PairingApproval.command(request))")
            }
            return DoctorCheck(name: "auth", status: .warn, detail: "the running node (pid \(live.pid)) is not connected: \(live.lastError ?? live.phase)",
                               fix: "openclaw-node status")
        }
        guard gatewayOK else {
            return DoctorCheck(name: "auth", status: .warn, detail: "skipped: the gateway check did not pass, so no credential was sent",
                               fix: "fix the gateway check first")
        }
        var arguments = [program, "run", "--check-auth"]
        arguments += workers.arguments
        let flags = gateway.flags
        if let host = flags.host { arguments += ["--host", host] }
        if let port = flags.port { arguments += ["--port", String(port)] }
        if flags.tls { arguments.append("--tls") }
        if let pin = flags.tlsFingerprint { arguments += ["--tls-fingerprint", pin] }
        arguments += confinement.runArguments
        var environment = ProcessEnvironment.current()
        environment.removeValue(forKey: "NOTIFY_SOCKET")
        guard let output = ProgramRun.run(arguments, environment: environment, path: program),
              let report = try? JSONText.decode(JSONValue.self, from: output.stdout.split(separator: "\n").last.map(String.init) ?? "") else {
            return DoctorCheck(name: "auth", status: .fail, detail: "the authentication check did not run", fix: "openclaw-node run shows why")
        }
        let code = report["code"]?.stringValue
        let message = report["message"]?.stringValue ?? ""
        switch report["result"]?.stringValue {
        case "connected":
            return DoctorCheck(name: "auth", status: .ok, detail: "the gateway accepted this node's credentials (hello-ok)")
        case "pairing-pending":
            let request = report["requestId"]?.stringValue
            return DoctorCheck(name: "auth", status: .warn, detail: "PAIRING_REQUIRED: \(message)\(request.map { " (requestId \($0))" } ?? "")",
                               fix: "on the gateway: \(PairingApproval.command(request ?? "<requestId>"))")
        case "refused":
            let fix: String
            switch code {
            case "AUTH_TOKEN_MISSING": fix = "the gateway needs a token: set OPENCLAW_GATEWAY_TOKEN (or gateway.auth.token in the config)"
            case "AUTH_TOKEN_MISMATCH": fix = "the token is wrong: set the gateway's token in OPENCLAW_GATEWAY_TOKEN"
            case "AUTH_PASSWORD_MISSING", "AUTH_PASSWORD_MISMATCH": fix = "set the gateway's password in OPENCLAW_GATEWAY_PASSWORD"
            case "AUTH_DEVICE_TOKEN_MISMATCH":
                fix = "the gateway revoked this device's token: the node drops it and asks to pair again; approve it on the gateway, or give a gateway token"
            default: fix = "see the gateway's log for this code"
            }
            return DoctorCheck(name: "auth", status: .fail, detail: "\(code ?? "refused"): \(message)", fix: fix)
        default:
            return DoctorCheck(name: "auth", status: .fail, detail: "no verdict from the gateway: \(message)", fix: "openclaw-node run shows the connection attempts")
        }
    }

    func configCheck(_ paths: StatePaths) -> DoctorCheck {
        do {
            let config = try OpenClawConfig.load(paths.configPath)
            let credentials = try GatewayCredentials.resolve(config: config, resolver: SecretResolver(config: config))
            var what = access(paths.configPath, F_OK) == 0 ? "\(paths.configPath) parsed" : "no config file (\(paths.configPath))"
            what += credentials.token != nil ? "; gateway token resolved" : credentials.password != nil ? "; gateway password resolved" : "; no shared gateway secret"
            return DoctorCheck(name: "config", status: .ok, detail: what)
        } catch let error as ConfigError {
            return DoctorCheck(name: "config", status: .fail, detail: error.message,
                               fix: "fix \(paths.configPath) (JSON5) or the secret it references; `run` exits 78 until then")
        } catch {
            return DoctorCheck(name: "config", status: .fail, detail: "\(error)", fix: "fix \(paths.configPath)")
        }
    }

    func gatewayCheck(_ paths: StatePaths, netWorker: WorkerLaunch) -> DoctorCheck {
        let endpoint = GatewayEndpoint.resolve(flags: gateway.flags, node: try? NodeConfigFile.load(paths.nodeFile),
                                               config: try? OpenClawConfig.load(paths.configPath))
        let (host, port, tls, pin, url) = (endpoint.host, endpoint.port, endpoint.tls, endpoint.fingerprint, endpoint.url)
        let options = confinement.options(for: .net, connectPorts: [UInt16(clamping: port)])
        var arguments = [netWorker.argv0] + options.arguments + ["--check-gateway", url]
        if let pin { arguments += ["--pin", pin] }
        guard let output = ProgramRun.run(arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], path: netWorker.path),
              let report = try? JSONText.decode(JSONValue.self, from: output.stdout) else {
            return DoctorCheck(name: "gateway", status: .fail, detail: "the network worker could not run the check", fix: nil)
        }
        if report["reachable"]?.boolValue != true {
            return DoctorCheck(name: "gateway", status: .warn, detail: "\(url) not reachable: \(report["error"]?.stringValue ?? "?")",
                               fix: "start the gateway or pass --host/--port (the node keeps retrying meanwhile)")
        }
        if tls, report["handshake"]?.boolValue != true {
            let leaf = report["leafSha256"]?.stringValue
            if pin != nil, let leaf, leaf != pin {
                return DoctorCheck(name: "gateway", status: .fail, detail: "\(url) presents a certificate that does not match the pin",
                                   fix: "the gateway presents \(leaf): fix --tls-fingerprint if that is right")
            }
            return DoctorCheck(name: "gateway", status: .fail,
                               detail: "\(url): \(report["error"]?.stringValue ?? "TLS handshake failed")",
                               fix: pin != nil ? "check --tls-fingerprint\(leaf.map { " (the gateway presents \($0))" } ?? "")"
                                   : "the certificate is not trusted here: pin it with --tls-fingerprint")
        }
        if let matched = report["pinMatched"]?.boolValue, !matched {
            return DoctorCheck(name: "gateway", status: .fail, detail: "\(url) presents a certificate that does not match the pin",
                               fix: "the gateway presents \(report["leafSha256"]?.stringValue ?? "?"): fix --tls-fingerprint if that is right")
        }
        var detail = "\(url) reachable"
        if tls { detail += pin != nil ? ", TLS pin matches" : ", TLS verified (leaf \(report["leafSha256"]?.stringValue ?? "?"))" }
        if !tls, !GatewayURL.isLoopback(host) {
            return DoctorCheck(name: "gateway", status: .fail, detail: detail + " over plaintext ws://", fix: "use --tls")
        }
        return DoctorCheck(name: "gateway", status: .ok, detail: detail)
    }
}

extension String {
    func padded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
