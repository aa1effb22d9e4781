import Confinement
import Glibc
import NodeSupport
import OpenClawIPC

/// What a service action reports (`--json`: upstream's field names, node-host.md §8).
public struct ServiceActionResult: Sendable {
    public var ok: Bool
    public var action: String
    public var result: String?
    public var message: String?
    public var error: String?
    public var hints: [String] = []
    public var warnings: [String] = []
    public var loaded: Bool?

    public var json: JSONValue {
        var object: [String: JSONValue] = ["ok": .bool(ok), "action": .string(action)]
        if let result { object["result"] = .string(result) }
        if let message { object["message"] = .string(message) }
        if let error { object["error"] = .string(error) }
        if !hints.isEmpty { object["hints"] = .array(hints.map(JSONValue.string)) }
        if !warnings.isEmpty { object["warnings"] = .array(warnings.map(JSONValue.string)) }
        if let loaded { object["service"] = ServiceManager.serviceLabel(loaded: loaded) }
        return .object(object)
    }

    public var text: String {
        var lines: [String] = []
        if let message { lines.append(message) }
        if let error { lines.append("error: \(error)") }
        lines += warnings.map { "warning: \($0)" }
        lines += hints.map { "hint: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// `install | uninstall | start | stop | restart | status` against systemd, through
/// `systemctl` (user manager by default, the system manager with `--system`).
public final class ServiceManager {
    public let scope: SystemdUnit.Scope
    /// Let Chromium's own sandbox create its namespaces under the system unit.
    public var browserSandbox = false
    /// `--exec-user` as given to `install` (nil: the dedicated user, created for a system unit).
    public var execUser: String?
    let environment: [String: String]
    /// Runs `systemctl` with these arguments (scope flag included by the caller).
    let systemctl: ([String]) -> ProgramRun.Output?

    public init(scope: SystemdUnit.Scope, environment: [String: String] = ProcessEnvironment.current(),
                systemctl: (([String]) -> ProgramRun.Output?)? = nil) {
        self.scope = scope
        self.environment = environment
        let scopeFlag = scope == .user ? ["--user"] : []
        self.systemctl = systemctl ?? { arguments in
            ProgramRun.run(["systemctl"] + scopeFlag + arguments, environment: environment)
        }
    }

    public var unitName: String { SystemdUnit.fileName }

    /// `$XDG_CONFIG_HOME/systemd/user` (or `~/.config/systemd/user`); `/etc/systemd/system`.
    public var unitDirectory: String {
        if scope == .system { return "/etc/systemd/system" }
        if let config = environment["XDG_CONFIG_HOME"], config.hasPrefix("/") { return "\(config)/systemd/user" }
        return "\(environment["HOME"] ?? "/root")/.config/systemd/user"
    }

    public var unitPath: String { "\(unitDirectory)/\(unitName)" }

    /// The state dir the service uses: `OPENCLAW_STATE_DIR` when set, else the scope default.
    public var stateDir: String {
        if let dir = environment["OPENCLAW_STATE_DIR"], !dir.isEmpty { return dir }
        return scope == .system ? "/var/lib/openclaw-node" : StatePaths.resolve { self.environment[$0] }.stateDir
    }

    var journalHint: String {
        "journalctl \(scope == .user ? "--user " : "")-u \(unitName) -n 200 --no-pager"
    }

    var cli: String { "openclaw-node" }
    var scopeFlag: String { scope == .system ? " --system" : "" }

    static func serviceLabel(loaded: Bool) -> JSONValue {
        .object(["label": .string("systemd"), "loaded": .bool(loaded), "loadedText": .string("enabled"),
                 "notLoadedText": .string("disabled")])
    }

    var unitExists: Bool { access(unitPath, F_OK) == 0 }

    var isEnabled: Bool {
        guard unitExists, let output = systemctl(["is-enabled", unitName]) else { return false }
        return output.stdout.trimmingWhitespace() == "enabled"
    }

    // MARK: Actions

    /// Gateway credentials from the installer's environment (for the 0600 file).
    var secrets: [(key: String, value: String)] {
        ServiceEnvironmentFile.secretKeys.compactMap { key in
            environment[key].flatMap { $0.isEmpty ? nil : (key, $0) }
        }
    }

    /// The unit `install` writes for `programArguments` (no side effects).
    public func unit(programArguments: [String], version: String) -> SystemdUnit {
        var plain: [(key: String, value: String)] = [
            ("OPENCLAW_SERVICE_MARKER", "openclaw"), ("OPENCLAW_SERVICE_KIND", "node"),
            ("OPENCLAW_SERVICE_VERSION", version), ("OPENCLAW_SYSTEMD_UNIT", SystemdUnit.name),
        ]
        for key in ["OPENCLAW_STATE_DIR", "OPENCLAW_CONFIG_PATH", "OPENCLAW_ALLOW_INSECURE_PRIVATE_WS"] {
            if let value = environment[key], !value.isEmpty { plain.append((key, value)) }
        }
        if scope == .system, environment["OPENCLAW_STATE_DIR"]?.isEmpty ?? true {
            plain.append(("OPENCLAW_STATE_DIR", stateDir))
        }
        plain.append(("PATH", servicePath()))
        // Only an unprivileged exec user's home is exposed under ProtectHome=; root's never.
        let execHome = execUser.flatMap(UserIdentity.lookup).flatMap { $0.uid == 0 ? nil : $0.home }
        return SystemdUnit(scope: scope, version: version, programArguments: programArguments, environment: plain,
                           environmentFile: ServiceEnvironmentFile.path(stateDir: stateDir), browserSandbox: browserSandbox,
                           execUserHome: execHome)
    }

    public func install(programArguments: [String], force: Bool, version: String) -> ServiceActionResult {
        var outcome = ServiceActionResult(ok: false, action: "install")
        if scope == .system, geteuid() != 0 {
            outcome.error = "installing a system service needs root"
            outcome.hints = ["sudo \(cli) install --system …"]
            return outcome
        }
        if isEnabled, !force {
            outcome.ok = true
            outcome.result = "already-installed"
            outcome.message = "Node service already enabled."
            outcome.hints = ["\(cli) install\(scopeFlag) --force"]
            outcome.loaded = true
            return outcome
        }
        let stateDir = self.stateDir
        if let refusal = foreignNodeRefusal(stateDir: stateDir) {
            outcome.error = refusal
            outcome.message = "Node service not installed: nothing was written."
            return outcome
        }
        let secrets = self.secrets
        let unit = self.unit(programArguments: programArguments, version: version)
        var created: String?
        if scope == .system, execUser == nil {
            switch ensureDedicatedExecUser() {
            case let .failure(failure):
                outcome.error = failure.message
                outcome.hints = [ExecUser.createCommand, "\(cli) install --system --exec-user <user> …"]
                return outcome
            case let .success(note): created = note
            }
        }
        do {
            try ServiceEnvironmentFile.write(secrets, stateDir: stateDir)
            try SecureFile.ensureDirectory(unitDirectory, mode: 0o755)
            // Atomic replace: a reinstall never leaves a half-written unit or a backup copy.
            try SecureFile.write(unitPath, Array(unit.render().utf8), mode: 0o644)
        } catch {
            outcome.error = "cannot write the service files: \(error)"
            outcome.warnings = removeService(stateDir: stateDir).failures
            return outcome
        }
        LastFailure.clear(stateDir: stateDir)
        // `restart` waits for the node's READY=1 (Type=notify), or for its failure.
        for step in [["daemon-reload"], ["enable", unitName], ["restart", unitName]] {
            let run = systemctl(step)
            guard let run, run.status == 0 else {
                let detail = run.map { $0.stderr.trimmingWhitespace() } ?? "systemctl not found"
                if step.first == "restart" {
                    outcome.error = "the node did not start: \(failureReason(stateDir: stateDir) ?? detail)"
                } else {
                    outcome.error = "systemctl\(scope == .user ? " --user" : "") \(step.joined(separator: " ")) failed: \(detail)"
                }
                outcome.warnings = removeService(stateDir: stateDir).failures
                outcome.message = "Node service not installed: the unit and its credentials file were removed again."
                outcome.hints = [journalHint]
                return outcome
            }
        }
        outcome.ok = true
        outcome.result = "installed"
        outcome.message = "Node service installed and started (\(unitPath)); \(liveSummary(stateDir: stateDir))."
        if let created { outcome.message! += " " + created }
        outcome.loaded = true
        if !secrets.isEmpty {
            outcome.message! += " Gateway credentials are in \(ServiceEnvironmentFile.path(stateDir: stateDir)) (0600), not in the unit."
        }
        if scope == .user, let warning = lingerWarning() { outcome.warnings.append(warning) }
        outcome.hints = ["\(cli) status\(scopeFlag)", journalHint]
        return outcome
    }

    /// What removing the service did, and what it could not do.
    struct Removal {
        var done: [String] = []
        var failures: [String] = []
        var stillRunning = false
    }

    /// Stops and disables the unit, removes it and the credentials file (`uninstall`, and a
    /// failed `install` undoing itself). The identity and the rest of the state dir stay.
    func removeService(stateDir: String) -> Removal {
        var removal = Removal()
        if unitExists {
            if let run = systemctl(["disable", "--now", unitName]), run.status == 0 {
                removal.done.append("stopped and disabled")
            } else {
                removal.stillRunning = true
            }
            if unlink(unitPath) == 0 {
                removal.done.append("removed \(unitPath)")
            } else {
                removal.failures.append("cannot remove \(unitPath): \(SystemError.text(errno))")
            }
            _ = systemctl(["daemon-reload"])
            _ = systemctl(["reset-failed", unitName])
        }
        let envFile = ServiceEnvironmentFile.path(stateDir: stateDir)
        if unlink(envFile) == 0 {
            removal.done.append("removed \(envFile)")
        } else if errno != ENOENT {
            removal.failures.append("cannot remove \(envFile): \(SystemError.text(errno))")
        }
        return removal
    }

    /// The lock holder's refusal when a node other than this unit's own (a foreground `run`)
    /// holds the state dir: the service's node would exit 75 on the same lock.
    func foreignNodeRefusal(stateDir: String) -> String? {
        guard let holder = NodeLock.holder(stateDir: stateDir), holder != mainPid() else { return nil }
        return NodeLock.Failure.held(path: NodeLock.path(stateDir: stateDir), pid: holder > 0 ? holder : nil).description
    }

    /// The unit's main process, when it runs.
    func mainPid() -> Int32? {
        guard unitExists, let shown = systemctl(["show", unitName, "--property=MainPID", "--value"]), shown.status == 0,
              let pid = Int32(shown.stdout.trimmingWhitespace()), pid > 0 else { return nil }
        return pid
    }

    /// Why the node last stopped on its own, from its last-error file.
    func failureReason(stateDir: String) -> String? {
        LastFailure.load(stateDir: stateDir)?.reason
    }

    /// The node's link state in a few words, from its status socket.
    func liveSummary(stateDir: String) -> String {
        switch ControlSocket.probe(path: ControlSocket.path(stateDir: stateDir)) {
        case let .success(live):
            if live.connected, live.pairing?.state == .surfacePending {
                let command = live.pairing?.surfaceRequestId.map(PairingApproval.surfaceCommand) ?? "openclaw nodes pending"
                return "connected; command surface waiting for approval: on the gateway run `\(command)`"
            }
            if live.connected { return "connected to the gateway" }
            if let request = live.pendingRequestId {
                return "waiting for pairing approval: on the gateway run `\(PairingApproval.command(request))`"
            }
            return "not connected yet: \(live.lastError ?? "connecting") (the node keeps retrying)"
        case .failure(.permissionDenied):
            return "its live state is not readable by this user (permission denied)"
        case .failure:
            return "no live state yet"
        }
    }

    /// Stops, disables and removes the unit and the credentials file, and says what it did
    /// and what it could not do. The identity and state dir stay.
    public func uninstall() -> ServiceActionResult {
        var outcome = ServiceActionResult(ok: true, action: "uninstall", result: "uninstalled")
        let existed = unitExists
        let stateDir = serviceStateDir()
        let removal = removeService(stateDir: stateDir)
        if removal.stillRunning {
            outcome.warnings.append("systemctl disable --now \(unitName) failed; the service may still be running")
        }
        if !removal.failures.isEmpty {
            outcome.ok = false
            outcome.result = "partial"
            outcome.error = removal.failures.joined(separator: "; ")
        }
        let what = removal.done.isEmpty ? (existed ? "Node service was not removed." : "Node service was not installed.")
            : "Node service: " + removal.done.joined(separator: ", ") + "."
        outcome.message = what + " Kept: the node's identity and state in \(stateDir) (remove that directory to forget this node; see docs/operations.md)."
        outcome.loaded = false
        return outcome
    }

    public func start() -> ServiceActionResult { control("start", past: "started") }
    public func restart() -> ServiceActionResult { control("restart", past: "restarted") }

    public func stop() -> ServiceActionResult {
        guard unitExists else {
            return ServiceActionResult(ok: true, action: "stop", result: "not-loaded",
                                       message: "Node service is not installed; nothing to stop.", loaded: false)
        }
        return control("stop", past: "stopped")
    }

    func control(_ verb: String, past: String) -> ServiceActionResult {
        var outcome = ServiceActionResult(ok: false, action: verb)
        guard unitExists else {
            outcome.result = "not-loaded"
            // upstream's words (its Linux service is "disabled" when absent), with the ways out.
            outcome.error = "Node service disabled."
            outcome.hints = ["\(cli) install\(scopeFlag)", "\(cli) start\(scopeFlag)",
                             "systemctl\(scope == .user ? " --user" : "") start \(unitName)"]
            outcome.loaded = false
            return outcome
        }
        let stateDir = serviceStateDir()
        if verb != "stop", let refusal = foreignNodeRefusal(stateDir: stateDir) {
            outcome.error = refusal
            return outcome
        }
        if verb != "stop" { LastFailure.clear(stateDir: stateDir) }
        let run = systemctl([verb, unitName])
        guard let run, run.status == 0 else {
            let detail = run.map { $0.stderr.trimmingWhitespace() } ?? "systemctl not found"
            outcome.error = verb == "stop" ? "systemctl stop \(unitName) failed: \(detail)"
                : "the node did not start: \(failureReason(stateDir: stateDir) ?? detail)"
            outcome.hints = [journalHint]
            return outcome
        }
        outcome.ok = true
        outcome.result = past
        outcome.message = verb == "stop" ? "Node service stopped." : "Node service \(past); \(liveSummary(stateDir: stateDir))."
        outcome.loaded = isEnabled
        return outcome
    }

    // MARK: Status

    /// `status`'s exit code, as `systemctl status`: 0 running, 3 not running, 4 no such unit
    /// (systemd's word when it answered; else no unit file we could read).
    public static func exitCode(of status: JSONValue) -> Int32 {
        let runtime = status["service"]?["runtime"]
        if let missing = runtime?["missingUnit"]?.boolValue {
            if missing { return 4 }
        } else if status["service"]?["command"] == .null {
            return 4
        }
        return status["service"]?["runtime"]?["status"]?.stringValue == "running" ? 0 : 3
    }

    public func status() -> JSONValue {
        let enabled = isEnabled
        var service: [String: JSONValue] = Self.serviceLabel(loaded: enabled).objectValue ?? [:]
        if let bytes = try? SecureFile.read(unitPath), let command = SystemdUnit.parseCommand(String(decoding: bytes, as: UTF8.self)) {
            var commandObject: [String: JSONValue] = [
                "programArguments": .array(command.programArguments.map(JSONValue.string)),
                "environment": .object(command.environment.mapValues(JSONValue.string)),
                "sourcePath": .string(unitPath),
            ]
            if let directory = command.workingDirectory { commandObject["workingDirectory"] = .string(directory) }
            service["command"] = .object(commandObject)
        } else {
            service["command"] = .null
        }
        let runtime = runtime()
        service["runtime"] = runtime
        let failed = runtime["state"]?.stringValue == "failed"
            || (runtime["status"]?.stringValue != "running" && (runtime["lastExitStatus"]?.numberValue ?? 0) != 0)
        var object: [String: JSONValue] = ["ok": .bool(!failed), "service": .object(service)]
        let stateDir = serviceStateDir()
        switch ControlSocket.probe(path: ControlSocket.path(stateDir: stateDir)) {
        case let .success(live):
            object["node"] = (try? JSONText.decode(JSONValue.self, from: JSONText.encode(live))) ?? .null
        case .failure(.permissionDenied):
            object["node"] = .null
            object["nodeError"] = .string("permission denied: \(ControlSocket.path(stateDir: stateDir)) is readable by the node's user and root only")
        case .failure:
            object["node"] = .null
        }
        if let failure = LastFailure.load(stateDir: stateDir), let value = try? JSONText.decode(JSONValue.self, from: JSONText.encode(failure)) {
            object["lastFailure"] = value
        } else if access(stateDir, X_OK) != 0, errno == EACCES {
            object["nodeError"] = .string("permission denied: cannot read \(stateDir)")
        }
        return .object(object)
    }

    func runtime() -> JSONValue {
        let properties = "LoadState,ActiveState,SubState,MainPID,ExecMainStatus,ExecMainCode,Result,NRestarts"
        let shown = systemctl(["show", unitName, "--property=\(properties)"])
        guard let output = shown, output.status == 0 else {
            return .object(["status": .string("unknown"),
                            "detail": .string(shown.map { $0.stderr.trimmingWhitespace() } ?? "systemctl not found")])
        }
        var fields: [String: String] = [:]
        for line in output.stdout.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        let active = fields["ActiveState"] ?? ""
        let sub = fields["SubState"] ?? ""
        var runtime: [String: JSONValue] = [
            "status": .string(active == "active" && sub == "running" ? "running"
                : ["inactive", "failed", "deactivating"].contains(active) ? "stopped" : "unknown"),
            "state": .string(active), "subState": .string(sub),
            "missingUnit": .bool(fields["LoadState"] == "not-found"),
        ]
        if let pid = fields["MainPID"].flatMap(Int.init), pid > 0 { runtime["pid"] = .number(Double(pid)) }
        if let status = fields["ExecMainStatus"].flatMap(Int.init), fields["ExecMainCode"] != "0" {
            runtime["lastExitStatus"] = .number(Double(status))
        }
        if let result = fields["Result"], !result.isEmpty { runtime["lastExitReason"] = .string(result) }
        if let restarts = fields["NRestarts"].flatMap(Int.init) { runtime["restarts"] = .number(Double(restarts)) }
        return .object(runtime)
    }

    // MARK: Helpers

    /// The state dir of the installed unit (its `OPENCLAW_STATE_DIR`), else ours.
    func serviceStateDir() -> String {
        if let bytes = try? SecureFile.read(unitPath),
           let command = SystemdUnit.parseCommand(String(decoding: bytes, as: UTF8.self)),
           let dir = command.environment["OPENCLAW_STATE_DIR"] {
            return dir
        }
        return stateDir
    }

    /// A minimal PATH for commands: the user's own bin dirs that exist, then the system's.
    func servicePath() -> String {
        var directories: [String] = []
        if scope == .user, let home = environment["HOME"] {
            for candidate in ["\(home)/.local/bin", "\(home)/bin"] where access(candidate, F_OK) == 0 {
                directories.append(candidate)
            }
        }
        directories += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        return directories.joined(separator: ":")
    }

    /// The system unit runs commands as `ExecUser.dedicated`: created here when missing (as the
    /// .deb's sysusers.d would), with its home under the state dir; the state dir made
    /// searchable for it. Returns what was created, or why it could not be.
    func ensureDedicatedExecUser() -> Result<String?, InstallFailure> {
        let home = ExecUser.dedicatedHome
        let parent = String(home[..<home.lastIndex(of: "/")!])
        if mkdir(parent, 0o711) != 0, errno != EEXIST { return .failure(InstallFailure("cannot create \(parent): \(SystemError.text(errno))")) }
        var info = stat()
        if stat(parent, &info) == 0, info.st_uid == 0, info.st_mode & 0o001 == 0 { chmod(parent, (info.st_mode & 0o7777) | 0o011) }
        var note: String?
        if UserIdentity.lookup(ExecUser.dedicated) == nil {
            let run = ProgramRun.run(["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
                                      "--shell", "/usr/sbin/nologin", "--comment", "OpenClaw node commands", ExecUser.dedicated],
                                     environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
            guard let run, run.status == 0, UserIdentity.lookup(ExecUser.dedicated) != nil else {
                let detail = run.map { $0.stderr.trimmingWhitespace() } ?? "useradd not found"
                return .failure(InstallFailure("cannot create the user \(ExecUser.dedicated) that commands run as: \(detail)"))
            }
            note = "Commands run as the new system user \(ExecUser.dedicated) (home \(home))."
        }
        guard let user = UserIdentity.lookup(ExecUser.dedicated) else { return .success(note) }
        if user.home.hasPrefix(parent + "/"), stat(user.home, &info) != 0 {
            guard mkdir(user.home, 0o700) == 0, chown(user.home, user.uid, user.gid) == 0 else {
                return .failure(InstallFailure("cannot create \(user.home) for \(ExecUser.dedicated): \(SystemError.text(errno))"))
            }
        }
        return .success(note)
    }

    func lingerWarning() -> String? {
        guard let user = environment["USER"] ?? environment["LOGNAME"] else { return nil }
        if access("/var/lib/systemd/linger/\(user)", F_OK) == 0 { return nil }
        return "Systemd lingering is disabled for \(user). The node service will stop when you log out. Run: sudo loginctl enable-linger \(user) "
            + "(or install the system service instead: \(cli) install --system)"
    }
}

/// Why `install` stopped before touching the service.
struct InstallFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

extension ServiceActionResult {
    /// A refusal before anything was touched.
    public init(refused action: String, error: String) {
        self.init(ok: false, action: action)
        self.error = error
    }
}
