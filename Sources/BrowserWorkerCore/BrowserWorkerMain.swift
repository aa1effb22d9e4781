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

        state.connection = IPCConnection<SupervisorToBrowser, BrowserToSupervisor>.adoptSupervisorLink(
            group: group.next(), logger: logger,
            onMessage: { message in
                switch message {
                case let .configure(configuration):
                    queue.async {
                        state.routes?.service.stopAll()
                        state.routes = BrowserRoutes(service: BrowserService(configuration: configuration))
                        logger.info("configured", metadata: ["executable": "\(configuration.executablePath ?? "-")",
                                                             "dataDir": "\(configuration.dataDir)"])
                        // Uploads a previous run staged expire on their own clock, hourly.
                        ProxyUploads.sweep(dataDir: configuration.dataDir, nowMs: Int64(Clock.wallMs()))
                        if state.uploadSweeper == nil {
                            let timer = DispatchSource.makeTimerSource(queue: queue)
                            timer.schedule(deadline: .now() + .seconds(3600), repeating: .seconds(3600))
                            timer.setEventHandler {
                                if let dataDir = state.routes?.service.configuration.dataDir {
                                    ProxyUploads.sweep(dataDir: dataDir, nowMs: Int64(Clock.wallMs()))
                                }
                            }
                            timer.resume()
                            state.uploadSweeper = timer
                        }
                    }
                case let .request(request):
                    queue.async {
                        state.connection?.send(.response(serve(request, routes: state.routes, logger: logger)))
                    }
                case .shutdown:
                    // Not queued behind a route that may wait on Chromium for seconds.
                    logger.info("shutting down")
                    stop(0)
                }
            },
            onClose: { stop(0) }
        )
        state.connection?.send(.ready(WorkerHello(pid: getpid(), role: .browser, confinement: confinement)))
        state.connection?.startReading()
        while true { pause() }
    }
}

/// One route call, on the route queue: an upload's files staged first (named in the body's
/// `paths`; discarded again when the route fails), then the route.
private func serve(_ request: BrowserRequest, routes: BrowserRoutes?, logger: Logger) -> BrowserResponse {
    guard let routes else {
        return BrowserResponse(id: request.id, status: 503, body: .object(["error": .string("browser server not started")]))
    }
    var body = request.body
    var staged: ProxyUploads.Staged?
    if let upload = request.upload {
        switch ProxyUploads.stage(upload, dataDir: routes.service.configuration.dataDir, nowMs: Int64(Clock.wallMs())) {
        case let .failure(error):
            logger.warning("browser proxy upload not staged", metadata: ["error": "\(error.text)"])
            return BrowserResponse(id: request.id, status: 500, body: .object([:]), commandError: error.text)
        case let .success(files):
            staged = files
            var object = body?.objectValue ?? [:]
            object["paths"] = .array(files.paths.map(JSONValue.string))
            body = .object(object)
        }
    }
    let (status, answer) = routes.dispatch(method: request.method, path: request.path, query: request.query, body: body,
                                           timeoutMs: request.timeoutMs)
    if let staged, status >= 400 { removeTree(staged.directory) }
    logger.info("route", metadata: ["method": "\(request.method)", "path": "\(request.path)", "status": "\(status)"])
    return BrowserResponse(id: request.id, status: status, body: answer)
}

/// What the IPC callbacks (event loop) and the route queue share. `routes` is only touched on
/// the route queue, except by `stop`, which kills Chromium and exits.
private final class WorkerState: @unchecked Sendable {
    var routes: BrowserRoutes?
    var connection: IPCConnection<SupervisorToBrowser, BrowserToSupervisor>?
    var uploadSweeper: DispatchSourceTimer?
}
