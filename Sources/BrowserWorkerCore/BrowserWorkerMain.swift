import Confinement
import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// Entry point of `openclaw-node-browser`: confine, then serve browser-control routes to the
/// Supervisor, launching Chromium on demand. Routes run one at a time on a serial queue
/// (each blocks on CDP answers up to its deadline); the IPC link stays on its event loop.
public enum BrowserWorkerMain {
    public static func run() -> Never {
        // Before any thread exists: Chromium inherits what is applied here (and adds its own sandbox).
        let started = WorkerStartup.confine(.browser) { BrowserToSupervisor.ready($0) }
        let logger = started.attachToSupervisor(.browser)
        let confinement = started.report
        // Chromium helpers whose parent dies are re-parented here, and killed with the rest.
        becomeChildSubreaper()
        signal(SIGPIPE, SIG_IGN)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let queue = DispatchQueue(label: "browser-routes")
        let state = WorkerState()

        @Sendable func stop(_ code: Int32) -> Never {
            state.routes?.service.stopAll()
            exit(code)
        }

        let adopted = IPCConnection<SupervisorToBrowser, BrowserToSupervisor>.adopt(
            fd: workerIPCDescriptor, group: group.next(),
            onMessage: { message in
                switch message {
                case let .configure(configuration):
                    queue.async {
                        state.routes?.service.stopAll()
                        state.routes = BrowserRoutes(service: BrowserService(configuration: configuration))
                        logger.info("configured", metadata: ["executable": "\(configuration.executablePath ?? "-")",
                                                             "dataDir": "\(configuration.dataDir)"])
                    }
                case let .request(request):
                    queue.async {
                        let (status, body): (Int, JSONValue)
                        if let routes = state.routes {
                            (status, body) = routes.dispatch(method: request.method, path: request.path, query: request.query,
                                                             body: request.body, timeoutMs: request.timeoutMs)
                        } else {
                            (status, body) = (503, .object(["error": .string("browser server not started")]))
                        }
                        logger.info("route", metadata: ["method": "\(request.method)", "path": "\(request.path)", "status": "\(status)"])
                        state.connection?.send(.response(BrowserResponse(id: request.id, status: status, body: body)))
                    }
                case .shutdown:
                    // Not queued behind a route that may wait on Chromium for seconds.
                    logger.info("shutting down")
                    stop(0)
                }
            },
            onViolation: { violation in
                logger.error("supervisor link violation", metadata: ["reason": "\(violation)"])
            },
            onClose: { stop(0) }
        )
        do {
            state.connection = try adopted.wait()
        } catch {
            logger.error("cannot open the supervisor link", metadata: ["error": "\(error)"])
            exit(70)
        }
        state.connection?.send(.ready(WorkerHello(pid: getpid(), role: .browser, confinement: confinement)))
        state.connection?.startReading()
        while true { pause() }
    }
}

/// What the IPC callbacks (event loop) and the route queue share. `routes` is only touched on
/// the route queue, except by `stop`, which kills Chromium and exits.
private final class WorkerState: @unchecked Sendable {
    var routes: BrowserRoutes?
    var connection: IPCConnection<SupervisorToBrowser, BrowserToSupervisor>?
}
