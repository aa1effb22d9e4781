import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC

/// One Chromium this worker launched for a managed profile (`browser.md` §4.2).
final class ChromiumProcess {
    let pid: pid_t
    let port: Int
    let userDataDir: String
    let logPath: String

    private init(pid: pid_t, port: Int, userDataDir: String, logPath: String) {
        self.pid = pid
        self.port = port
        self.userDataDir = userDataDir
        self.logPath = logPath
    }

    /// The upstream launch recipe, in order (plugin era).
    static func arguments(port: Int, userDataDir: String, headless: Bool, noSandbox: Bool, extraArgs: [String]) -> [String] {
        var arguments = [
            "--remote-debugging-port=\(port)", "--user-data-dir=\(userDataDir)", "--no-first-run",
            "--no-default-browser-check", "--disable-sync", "--disable-background-networking",
            "--disable-component-update", "--disable-features=Translate,MediaRouter",
            "--disable-session-crashed-bubble", "--hide-crash-restore-bubble", "--password-store=basic",
        ]
        if headless { arguments += ["--headless=new", "--disable-gpu"] }
        if noSandbox { arguments += ["--no-sandbox"] }
        arguments.append("--disable-dev-shm-usage")
        if !extraArgs.contains(where: { $0.hasPrefix("--proxy-server") || $0.hasPrefix("--proxy-pac-url") || $0 == "--no-proxy-server" }) {
            arguments.append("--no-proxy-server")
        }
        arguments += extraArgs
        arguments.append("about:blank")
        return arguments
    }

    /// Starts Chromium and waits until `/json/version` answers (15 s launch window).
    static func launch(executable: String, profile: String, port: Int, dataDir: String, headless: Bool, noSandbox: Bool,
                       extraArgs: [String], deadline: Deadline) throws(BrowserError) -> ChromiumProcess {
        let profileDir = "\(dataDir)/\(profile)"
        let userDataDir = "\(profileDir)/user-data"
        for directory in [profileDir, userDataDir, "\(dataDir)/.chromium", "\(dataDir)/tmp"] {
            if mkdir(directory, 0o700) != 0, errno != EEXIST {
                throw BrowserError("cannot create \(directory): \(SystemError.text(errno))")
            }
        }
        removeStaleLocks(userDataDir)
        let logPath = "\(profileDir)/chromium.log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw BrowserError("cannot open \(logPath): \(SystemError.text(errno))") }
        defer { close(log) }
        var environment = ["PATH": ExecutableSearch.defaultPath, "HOME": profileDir,
                           "XDG_CONFIG_HOME": "\(dataDir)/.chromium", "XDG_CACHE_HOME": "\(dataDir)/.chromium",
                           "TMPDIR": "\(dataDir)/tmp"]
        for key in ["LANG", "LC_ALL", "TZ", "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        let spec = SpawnSpec(
            path: executable,
            argv: [executable] + arguments(port: port, userDataDir: userDataDir, headless: headless, noSandbox: noSandbox,
                                           extraArgs: extraArgs),
            env: environment, cwd: profileDir,
            fdMap: [(source: devNull >= 0 ? devNull : log, target: 1), (source: log, target: 2)],
            newProcessGroup: true
        )
        let pid: pid_t
        do {
            pid = try Spawner.spawn(spec)
        } catch {
            throw BrowserError("cannot start \(executable): \(error)")
        }
        GroupGuard.add(pid)
        let process = ChromiumProcess(pid: pid, port: port, userDataDir: userDataDir, logPath: logPath)
        let launchWindow = Deadline(ms: min(15_000, max(deadline.remaining, 1)))
        while !launchWindow.expired {
            if process.exited {
                throw BrowserError("Failed to start Chrome CDP on port \(port) for profile \"\(profile)\". Chromium exited.\(process.stderrTail())")
            }
            if (try? LoopbackHTTP.get(host: "127.0.0.1", port: port, path: "/json/version", timeoutMs: 300))?.status == 200 {
                return process
            }
            usleep(100_000)
        }
        process.stop()
        throw BrowserError("Failed to start Chrome CDP on port \(port) for profile \"\(profile)\". It did not answer in time.\(process.stderrTail())")
    }

    /// A crashed previous Chromium leaves `Singleton*` locks that make the next one exit.
    static func removeStaleLocks(_ userDataDir: String) {
        for name in ["SingletonLock", "SingletonSocket", "SingletonCookie"] { unlink("\(userDataDir)/\(name)") }
    }

    private var reaped = false

    /// Whether the process is gone (reaps it when it is).
    var exited: Bool {
        if reaped { return true }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid || (result < 0 && errno == ECHILD) {
            reaped = true
            GroupGuard.remove(pid)
        }
        return reaped
    }

    /// Kills Chromium and everything it started (its process group), then reaps it.
    func stop() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        if !reaped {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            reaped = true
            GroupGuard.remove(pid)
        }
    }

    /// The last lines Chromium wrote to stderr, for error messages.
    func stderrTail() -> String {
        guard let bytes = try? readWholeFile(logPath) else { return "" }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").suffix(5)
        return lines.isEmpty ? "" : "\nChromium stderr:\n" + lines.joined(separator: "\n")
    }
}
