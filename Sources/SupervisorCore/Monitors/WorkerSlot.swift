import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// One worker process the Supervisor keeps running: spawn, link, death, backoff, re-spawn.
///
/// Confined to the Supervisor's event loop. Each spawn gets a new `generation`; callbacks of
/// an older generation (a late close of a connection already replaced) are ignored.
final class WorkerSlot<Inbound: IPCMessage, Outbound: IPCMessage> {
    typealias Connection = IPCConnection<Inbound, Outbound>

    let role: WorkerRole
    let launch: WorkerLaunch
    let environment: [String: String]
    /// Command-line arguments after the executable (confinement options).
    let arguments: [String]
    private let loop: EventLoop
    private let logger: Logger

    private(set) var pid: pid_t?
    private(set) var connection: Connection?
    private(set) var generation = 0
    private var startedAt: NIODeadline?
    private var backoff = RestartBackoff()
    private var restartTask: Scheduled<Void>?
    private(set) var restarts = 0
    private var stopping = false

    /// Called with each message of the current generation.
    var onMessage: (Inbound) -> Void = { _ in }
    /// Called once per generation when the worker is gone (died, killed, violated).
    var onDown: (_ reason: String) -> Void = { _ in }
    /// Called when a new generation's link is up (before its `ready`).
    var onSpawned: () -> Void = {}
    /// Called when the worker's process has been reaped (whatever ended it): what it
    /// started is re-parented to the Supervisor by then.
    var onExited: () -> Void = {}

    init(role: WorkerRole, launch: WorkerLaunch, arguments: [String] = [], environment: [String: String], loop: EventLoop,
         logger: Logger) {
        self.role = role
        self.launch = launch
        self.arguments = arguments
        self.environment = environment
        self.loop = loop
        self.logger = logger
    }

    /// Spawns the worker with only its socketpair end on fd 3 (plus stdio).
    func spawn() {
        loop.preconditionInEventLoop()
        restartTask = nil
        generation += 1
        let generation = self.generation
        let sockets: (CInt, CInt)
        do {
            sockets = try makeSocketPair()
        } catch {
            logger.error("cannot create worker socketpair", metadata: ["worker": "\(role)", "error": "\(error)"])
            scheduleRestart(uptimeMs: 0)
            return
        }
        let (ours, theirs) = sockets
        let spec = SpawnSpec(
            path: launch.path, argv: [launch.argv0] + arguments, env: environment,
            fdMap: [(source: 2, target: 1), (source: 2, target: 2), (source: theirs, target: workerIPCDescriptor)],
            // Its own process group: a terminal's Ctrl-C reaches the Supervisor only, which
            // then stops the workers in order (no worker dies first and gets re-spawned).
            newProcessGroup: true
        )
        let childPid: pid_t
        do {
            childPid = try Spawner.spawn(spec)
        } catch {
            close(ours)
            close(theirs)
            logger.error("cannot start worker", metadata: ["worker": "\(role)", "path": "\(launch.path)", "error": "\(error)"])
            scheduleRestart(uptimeMs: 0)
            return
        }
        close(theirs)
        pid = childPid
        startedAt = .now()
        logger.info("worker started", metadata: ["worker": "\(role)", "pid": .typed(childPid)])

        Connection.adopt(
            fd: ours, group: loop,
            onMessage: { [weak self] message in
                guard let self, self.generation == generation else { return }
                self.onMessage(message)
            },
            onViolation: { [weak self] violation in
                guard let self, self.generation == generation else { return }
                self.logger.error("worker protocol violation; killing it", metadata: [
                    "worker": "\(self.role)", "pid": .typed(childPid), "reason": "\(violation)",
                ])
            },
            onClose: { [weak self] in
                guard let self, self.generation == generation else { return }
                self.down(reason: "ipc link closed")
            }
        ).hop(to: loop).whenComplete { [weak self] result in
            guard let self, self.generation == generation else { return }
            switch result {
            case let .success(connection):
                self.connection = connection
                self.onSpawned()
                connection.startReading()
            case let .failure(error):
                close(ours)
                self.logger.error("cannot adopt worker socket", metadata: ["worker": "\(self.role)", "error": "\(error)"])
                self.down(reason: "ipc setup failed")
            }
        }
    }

    /// Sends a message to the current generation (dropped if the worker is down).
    func send(_ message: Outbound) {
        connection?.send(message)
    }

    /// Sends messages in order, in one write.
    func send(contentsOf messages: [Outbound]) {
        connection?.send(contentsOf: messages)
    }

    /// Treats a well-formed but forbidden message as a violation: log, kill, re-spawn.
    func refuse(_ reason: String) {
        guard connection != nil else { return }
        logger.error("worker protocol violation; killing it", metadata: [
            "worker": "\(role)", "pid": .typed(pid), "reason": "\(reason)",
        ])
        down(reason: "protocol violation")
    }

    /// The process `pid` was reaped by the SIGCHLD handler.
    func reaped(pid reapedPid: pid_t, status: String) {
        guard reapedPid == pid else { return }
        let metadata: Logger.Metadata = ["worker": "\(role)", "pid": .typed(reapedPid), "status": "\(status)"]
        // Expected while stopping (the worker was asked to leave); news otherwise.
        if stopping { logger.info("worker exited", metadata: metadata) } else { logger.warning("worker exited", metadata: metadata) }
        pid = nil
        down(reason: status)
        onExited()
    }

    /// Marks the current generation dead: kill it, close the link, report, schedule a re-spawn.
    private func down(reason: String) {
        let wasUp = connection != nil || pid != nil
        // While stopping, the worker gets its grace period to clean up (see `stop`).
        if let pid, !stopping { kill(pid, SIGKILL) }
        connection?.close()
        connection = nil
        guard wasUp else { return }
        let uptime = startedAt.map { Int((NIODeadline.now() - $0).nanoseconds / 1_000_000) } ?? 0
        startedAt = nil
        generation += 1  // ignore anything the dead generation still delivers
        onDown(reason)
        scheduleRestart(uptimeMs: uptime)
    }

    private func scheduleRestart(uptimeMs: Int) {
        guard !stopping, restartTask == nil else { return }
        let delay = backoff.delayAfterDeath(uptimeMs: uptimeMs)
        restarts += 1
        logger.info("re-spawning worker", metadata: ["worker": "\(role)", "delayMs": .typed(delay)])
        restartTask = loop.scheduleTask(in: .milliseconds(Int64(delay))) { [weak self] in
            self?.spawn()
        }
    }

    /// Stops re-spawning; asks the worker to exit with `goodbye`, and kills it if it lingers.
    func stop(goodbye: Outbound, grace: TimeAmount) {
        stopping = true
        restartTask?.cancel()
        restartTask = nil
        guard let connection else {
            if let pid { kill(pid, SIGKILL) }
            return
        }
        connection.sendAndClose(goodbye)
        let pid = self.pid
        loop.scheduleTask(in: grace) {
            if let pid { kill(pid, SIGKILL) }
        }
    }

}
