import Confinement
import Glibc
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// Entry point of `openclaw-node-net`: confine, then keep the gateway link for the Supervisor.
public enum NetWorkerMain {
    public static func run() -> Never {
        // Before any thread exists and before any byte from the network is parsed.
        let started = WorkerStartup.confine(.net) { NetToSupervisor.ready($0) }
        // `openclaw-node doctor`: reachability and TLS pin of the gateway, confined, then exit.
        if let url = started.value(of: "--check-gateway") {
            print((try? JSONText.encode(GatewayProbe.check(url: url, pin: started.value(of: "--pin")))) ?? "{}")
            exit(0)
        }
        // `openclaw-node connect <join URL>`: the one GET of the join URL, confined, then exit.
        // `--fetch-join -` reads the URL from stdin (its shortcode is a credential: not in argv).
        if var url = started.value(of: "--fetch-join") {
            if url == "-" {
                url = String(decoding: readStandardInput(limit: 16_384), as: UTF8.self)
                while url.hasSuffix("\n") { url.removeLast() }
            }
            print((try? JSONText.encode(JoinFetch.fetch(url: url))) ?? "{}")
            exit(0)
        }
        let logger = started.attachToSupervisor(.net)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var connection: IPCConnection<SupervisorToNet, NetToSupervisor>?
        let link = GatewayLink(loop: loop, logger: logger) { message in connection?.send(message) }
        let metrics = MetricsListener(loop: loop, logger: logger) { request in connection?.send(.metricsRequest(request)) }

        connection = IPCConnection<SupervisorToNet, NetToSupervisor>.adoptSupervisorLink(
            group: loop, logger: logger,
            onMessage: { message in
                switch message {
                case let .configure(configuration): link.configure(configuration)
                case let .signReply(reply): link.signed(reply)
                case let .invokeResult(result): link.sendInvokeResult(result)
                case let .nodeEvent(event): link.sendNodeEvent(event)
                case let .metricsReply(reply): metrics.replied(reply)
                case let .gatewayCall(call): link.call(call)
                case .shutdown:
                    link.shutdown { exit(0) }
                }
            },
            onClose: {
                // The Supervisor is gone: leave at once (the gateway sees the socket close).
                exit(0)
            }
        )
        connection?.send(.ready(WorkerHello(pid: getpid(), role: .net, confinement: started.report)))
        connection?.startReading()
        if let port = started.options.metricsPort { metrics.start(port: Int(port)) }
        while true { pause() }
    }
}

