import Confinement
import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// Entry point of `openclaw-node-mcp`: confine (the exec user, no capabilities, the kernel
/// attack surface denied for it and every server it starts), then keep the node's MCP servers
/// connected and run the tool calls the Supervisor sends. All server state lives on one queue.
public enum McpWorkerMain {
    public static func run() -> Never {
        let started = WorkerStartup.confine(.mcp) { McpToSupervisor.ready($0) }
        let logger = started.attachToSupervisor(.mcp)
        signal(SIGPIPE, SIG_IGN)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let queue = DispatchQueue(label: "mcp-servers")
        let state = McpWorkerState()

        @Sendable func stop(_ code: Int32) -> Never {
            queue.sync { for runner in state.runners.values { runner.stop() } }
            exit(code)
        }

        state.connection = IPCConnection<SupervisorToMcp, McpToSupervisor>.adoptSupervisorLink(
            group: group.next(), logger: logger,
            onMessage: { message in
                switch message {
                case let .configure(configuration):
                    queue.async { state.configure(configuration, queue: queue, group: group, logger: logger) }
                case let .call(call):
                    queue.async {
                        guard let runner = state.runners[call.server] else {
                            state.send(.result(McpCallResult(id: call.id, error: WireError(
                                code: "MCP_SERVER_UNAVAILABLE", message: "MCP server \"\(call.server)\" is unavailable"))))
                            return
                        }
                        runner.call(call)
                    }
                case let .cancel(cancel):
                    queue.async { for runner in state.runners.values { runner.cancel(cancel.id) } }
                case .shutdown:
                    logger.info("shutting down")
                    stop(0)
                }
            },
            onClose: { stop(0) }
        )
        state.connection?.send(.ready(WorkerHello(pid: getpid(), role: .mcp, confinement: started.report)))
        state.connection?.startReading()
        while true { pause() }
    }
}

/// The servers (touched on the server queue only) and the link.
private final class McpWorkerState: @unchecked Sendable {
    var runners: [String: McpServerRunner] = [:]
    var connection: IPCConnection<SupervisorToMcp, McpToSupervisor>?

    func send(_ message: McpToSupervisor) { connection?.send(message) }

    /// Once per worker: a second `configure` is refused by the Supervisor's menu anyway.
    func configure(_ configuration: McpConfiguration, queue: DispatchQueue, group: EventLoopGroup, logger: Logger) {
        guard runners.isEmpty else { return }
        for server in configuration.servers {
            let runner = McpServerRunner(
                server: server, clientVersion: configuration.clientVersion, queue: queue, group: group,
                logger: logger,
                report: { [weak self] tools in self?.send(.tools(tools)) },
                answer: { [weak self] result in self?.send(.result(result)) })
            runners[server.name] = runner
        }
        // upstream connects at most six at once; a stdio start is cheap, so they all start.
        for server in configuration.servers { runners[server.name]?.connect() }
    }
}
