import Glibc
import Confinement
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// How the Supervisor runs the BrowserWorker.
public struct BrowserWorkerSettings: Sendable {
    public var path: String
    public var confinement: ConfinementOptions
    public var configuration: BrowserConfiguration

    public init(path: String, confinement: ConfinementOptions, configuration: BrowserConfiguration) {
        self.path = path
        self.confinement = confinement
        self.configuration = configuration
    }
}

/// Route calls waiting for the BrowserWorker: queued until it is ready, then in flight.
struct BrowserCalls {
    struct Call {
        var request: BrowserRequest
        var completion: (Result<BrowserResponse, WireError>) -> Void
        var timer: Scheduled<Void>?
    }

    var queued: [String] = []
    var calls: [String: Call] = [:]
    /// At most this many calls wait at once; more are refused.
    static let limit = 32

    mutating func take(_ id: String) -> Call? {
        queued.removeAll { $0 == id }
        let call = calls.removeValue(forKey: id)
        call?.timer?.cancel()
        return call
    }
}

extension Supervisor: BrowserRunner {
    public func submitBrowser(_ request: BrowserRequest, timeoutMessage: String,
                              completion: @escaping (Result<BrowserResponse, WireError>) -> Void) {
        loop.preconditionInEventLoop()
        guard settings.browser != nil, !stopping else {
            return completion(.failure(WireError(code: "UNAVAILABLE", message: "Error: browser server not started")))
        }
        guard browserCalls.calls.count < BrowserCalls.limit else {
            return completion(.failure(WireError(code: "UNAVAILABLE", message: "Error: too many browser requests in flight")))
        }
        let timer = loop.scheduleTask(in: .milliseconds(Int64(request.timeoutMs))) { [weak self] in
            guard let self, let call = browserCalls.take(request.id) else { return }
            logger.warning("browser request timed out", metadata: ["path": "\(request.path)", "timeoutMs": .typed(request.timeoutMs)])
            call.completion(.failure(WireError(code: "INVALID_REQUEST", message: "Error: \(timeoutMessage)")))
        }
        browserCalls.calls[request.id] = BrowserCalls.Call(request: request, completion: completion, timer: timer)
        if browserPhase == .ready {
            browser?.send(.request(request))
        } else {
            browserCalls.queued.append(request.id)
            if browser == nil { startBrowser() }
        }
    }

    private func startBrowser() {
        guard let browserSettings = settings.browser else { return }
        prepareBrowserDirectory(browserSettings)
        let slot = WorkerSlot<BrowserToSupervisor, SupervisorToBrowser>(
            kind: .browser, executable: browserSettings.path, arguments: browserSettings.confinement.arguments,
            environment: Self.workerEnvironment().merging(Self.displayEnvironment()) { _, display in display }, loop: loop, logger: logger
        )
        slot.onSpawned = { [weak self] in self?.browserPhase = .awaitingReady }
        slot.onMessage = { [weak self] message in self?.handleBrowser(message) }
        slot.onDown = { [weak self] reason in self?.browserDown(reason) }
        // Its Chromium is re-parented to us by the time the worker is reaped.
        slot.onExited = { [weak self] in self?.sweepOrphanedBrowsers() }
        browser = slot
        browserPhase = .awaitingReady
        slot.spawn()
    }

    /// `DISPLAY`/`WAYLAND_DISPLAY` (and the runtime dir) so a headed profile can reach a display.
    static func displayEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        for key in ["DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "OPENCLAW_BROWSER_HEADLESS"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return environment
    }

    /// `<state>/browser` belongs to the user the BrowserWorker runs as; when that is another
    /// user, the state dir must be searchable (not readable) for it: 0711. Everything secret
    /// in it stays 0600 / 0700.
    private func prepareBrowserDirectory(_ browserSettings: BrowserWorkerSettings) {
        let directory = browserSettings.configuration.dataDir
        if mkdir(directory, 0o700) != 0, errno != EEXIST {
            logger.error("cannot create the browser data directory", metadata: ["path": "\(directory)", "error": "\(String(cString: strerror(errno)))"])
        }
        let media = directory + "/media"
        if mkdir(media, 0o700) != 0, errno != EEXIST {
            logger.error("cannot create the browser media directory", metadata: ["path": "\(media)"])
        }
        guard UserIdentity.isRoot, !browserSettings.confinement.optedOut.contains(.user) else { return }
        let name = browserSettings.confinement.user ?? ConfinementPolicy.defaultNetUser
        guard let user = UserIdentity.lookup(name), user.uid != 0 else { return }
        // `media` sits in a directory the browser user owns and could swap for a symlink:
        // never chown by path, only the directory actually opened (O_NOFOLLOW).
        for path in [directory, media] {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                logger.error("browser data directory is not a plain directory; not handing it over", metadata: ["path": "\(path)"])
                continue
            }
            var info = stat()
            if fstat(fd, &info) == 0, info.st_uid != user.uid { fchown(fd, user.uid, user.gid) }
            close(fd)
        }
        let stateDir = String(directory.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
        if SecureFile.allowSearch(stateDir) {
            logger.info("state dir made searchable for the browser worker", metadata: ["path": "\(stateDir)", "user": "\(name)"])
        }
    }

    func handleBrowser(_ message: BrowserToSupervisor) {
        guard let browser, !stopping else { return }
        guard IPCPolicy.permits(message.kind, in: browserPhase) else {
            browser.refuse("\"\(message.kind.rawValue)\" is not allowed while the browser worker is \(browserPhase.rawValue)")
            return
        }
        switch message {
        case let .ready(hello):
            guard let browserSettings = settings.browser,
                  confined(hello, kind: "browser", pid: browser.pid, options: browserSettings.confinement) else { return }
            browserPhase = .ready
            browser.send(.configure(browserSettings.configuration))
            let queued = browserCalls.queued
            browserCalls.queued = []
            for id in queued {
                if let call = browserCalls.calls[id] { browser.send(.request(call.request)) }
            }
        case let .response(response):
            guard let call = browserCalls.take(response.id) else {
                // Late answers to calls that timed out are expected; unknown ids are not.
                logger.debug("browser answer for a call no longer waiting", metadata: ["id": "\(response.id.prefix(64))"])
                return
            }
            call.completion(.success(response))
        }
    }

    private func browserDown(_ reason: String) {
        if !stopping { link.metrics.workerRestarted("browser") }
        browserPhase = stopping ? .stopping : .awaitingReady
        // Calls in flight are lost with the worker; queued ones wait for the next one.
        let inFlight = browserCalls.calls.keys.filter { !browserCalls.queued.contains($0) }
        for id in inFlight {
            browserCalls.take(id)?.completion(.failure(WireError(code: "UNAVAILABLE", message: "Error: browser worker exited (\(reason))")))
        }
    }

    func stopBrowser() {
        browserPhase = .stopping
        for id in Array(browserCalls.calls.keys) {
            browserCalls.take(id)?.completion(.failure(WireError(code: "UNAVAILABLE", message: "Error: node host is shutting down")))
        }
        browser?.stop(goodbye: .shutdown(Empty()), grace: settings.shutdownGrace)
    }

    /// Kills our children that are Chromium processes of our browser data dir (their command
    /// line names it): what a dead BrowserWorker left behind.
    func sweepOrphanedBrowsers() {
        guard let dataDir = settings.browser?.configuration.dataDir else { return }
        let marker = Array("--user-data-dir=\(dataDir)/".utf8)
        sweepOrphans(log: "killed a Chromium left by the browser worker") { pid in
            (try? readWholeFile("/proc/\(pid)/cmdline"))?.firstRange(of: marker) != nil
        }
    }
}
