import Confinement
import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// How the Supervisor runs the BrowserWorker.
public struct BrowserWorkerSettings: Sendable {
    public var launch: WorkerLaunch
    public var confinement: ConfinementOptions
    public var configuration: BrowserConfiguration

    public init(launch: WorkerLaunch = .ownBinary(as: .browser), confinement: ConfinementOptions, configuration: BrowserConfiguration) {
        self.launch = launch
        self.confinement = confinement
        self.configuration = configuration
    }
}

/// Phases of the BrowserWorker (started on the first `browser.proxy`).
public enum BrowserPhase: String, Sendable, CaseIterable {
    case notStarted
    case awaitingReady
    case ready
    case stopping
}

/// The BrowserWorker's monitor: route calls for it, queued until it is ready, then in flight
/// with a deadline each. The worker is started on the first call.
final class BrowserMonitor: WorkerMonitor<BrowserToSupervisor, SupervisorToBrowser, BrowserPhase>, BrowserRunner {
    typealias Completion = (Result<BrowserResponse, WireError>) -> Void
    /// At most this many calls wait at once; more are refused.
    static let limit = 32

    let settings: BrowserWorkerSettings
    private let calls: PendingCalls<String, BrowserResponse>
    /// Calls waiting for the worker to be ready (in `calls` too), oldest first.
    private var queued: [BrowserRequest] = []

    init(settings: BrowserWorkerSettings, environment: [String: String], context: MonitorContext) {
        self.settings = settings
        calls = PendingCalls(loop: context.loop)
        super.init(role: .browser, launch: settings.launch, confinement: settings.confinement,
                   environment: environment.merging(Self.displayEnvironment()) { _, display in display },
                   initialPhase: .notStarted, context: context)
        menu = Menu(subject: "the browser worker", rows: [
            .init(.ready, in: [.awaitingReady], limit: .once) { [unowned self] in
                if case let .ready(hello) = $0 { ready(hello) }
            },
            // Each answers a call in flight (a late answer to an expired call is dropped).
            .init(.response, in: [.ready]) { [unowned self] in
                if case let .response(response) = $0 { answered(response) }
            },
        ])
    }

    override var spawnedPhase: BrowserPhase { .awaitingReady }

    // MARK: The typed call

    func call(_ request: BrowserRequest, timeoutMessage: String, completion: @escaping Completion) {
        context.loop.preconditionInEventLoop()
        guard !context.stopping else {
            return completion(.failure(WireError(code: "UNAVAILABLE", message: "Error: browser server not started")))
        }
        guard calls.count < Self.limit else {
            return completion(.failure(WireError(code: "UNAVAILABLE", message: "Error: too many browser requests in flight")))
        }
        let logger = context.logger
        let added = calls.add(request.id, deadline: .milliseconds(Int64(request.timeoutMs)), expired: { [weak self] in
            logger.warning("browser request timed out", metadata: ["path": "\(request.path)", "timeoutMs": .typed(request.timeoutMs)])
            self?.queued.removeAll { $0.id == request.id }
            return WireError(code: "INVALID_REQUEST", message: "Error: \(timeoutMessage)")
        }, completion: completion)
        guard added else {
            return completion(.failure(WireError(code: "INVALID_REQUEST", message: "Error: duplicate browser request id")))
        }
        if phase == .ready {
            slot.send(.request(request))
        } else {
            queued.append(request)
            if phase == .notStarted { start() }
        }
    }

    private func start() {
        prepareDirectory()
        phaseChanged(to: .awaitingReady)
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
    private func prepareDirectory() {
        let logger = context.logger
        let directory = settings.configuration.dataDir
        if mkdir(directory, 0o700) != 0, errno != EEXIST {
            logger.error("cannot create the browser data directory", metadata: ["path": "\(directory)", "error": "\(SystemError.text(errno))"])
        }
        let media = directory + "/media"
        if mkdir(media, 0o700) != 0, errno != EEXIST {
            logger.error("cannot create the browser media directory", metadata: ["path": "\(media)"])
        }
        guard UserIdentity.isRoot, !settings.confinement.optedOut.contains(.user) else { return }
        let name = settings.confinement.user ?? ConfinementPolicy.defaultNetUser
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

    // MARK: Menu handlers

    private func ready(_ hello: WorkerHello) {
        guard accept(hello) else { return }
        phaseChanged(to: .ready)
        slot.send(.configure(settings.configuration))
        let waiting = queued
        queued = []
        for request in waiting where calls.contains(request.id) { slot.send(.request(request)) }
    }

    private func answered(_ response: BrowserResponse) {
        guard calls.complete(response.id, with: .success(response)) else {
            // Late answers to calls that timed out are expected; unknown ids are not.
            context.logger.debug("browser answer for a call no longer waiting", metadata: ["id": "\(response.id.prefix(64))"])
            return
        }
    }

    // MARK: Worker death and shutdown

    /// Calls in flight are lost with the worker; queued ones wait for the next one.
    override func workerDown(reason: String) {
        phaseChanged(to: context.stopping ? .stopping : .awaitingReady)
        let waiting = Set(queued.map(\.id))
        calls.failAll(WireError(code: "UNAVAILABLE", message: "Error: browser worker exited (\(reason))")) { !waiting.contains($0) }
    }

    /// Its Chromium is re-parented to us by the time the worker is reaped.
    override func workerExited() { sweepOrphanedBrowsers() }

    /// Kills our children that are Chromium processes of our browser data dir (their command
    /// line names it): what a dead BrowserWorker left behind.
    func sweepOrphanedBrowsers() {
        let marker = Array("--user-data-dir=\(settings.configuration.dataDir)/".utf8)
        context.reaper.sweepOrphans(log: "killed a Chromium left by the browser worker") { pid in
            (try? readWholeFile("/proc/\(pid)/cmdline"))?.firstRange(of: marker) != nil
        }
    }

    func shutdown() {
        queued = []
        calls.failAll(WireError(code: "UNAVAILABLE", message: "Error: node host is shutting down"))
        stop(goodbye: .shutdown(Empty()), stoppingPhase: .stopping)
    }

    /// A worker killed at the end leaves its Chromium to us only once it is gone: wait for it
    /// (it was just sent SIGKILL), then sweep what it left.
    func finalSweep() {
        if let pid = slot.pid { context.reaper.wait(for: pid) }
        sweepOrphanedBrowsers()
    }
}
