import Glibc
import Logging
import NIOCore
import NIOPosix
import Prometheus

/// What the node counts, in Prometheus form (swift-prometheus): link state, reconnects,
/// invokes by command and outcome, run durations, denials by reason, worker restarts.
/// Cheap when nobody scrapes: counters only.
public final class NodeMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let connected: Gauge
    private let reconnects: Counter
    private let runDuration: DurationHistogram
    private var hellos = 0

    public init() {
        connected = registry.makeGauge(name: "openclaw_node_gateway_connected", help: "1 while the gateway link is up (after hello-ok)")
        reconnects = registry.makeCounter(name: "openclaw_node_gateway_reconnects_total", help: "hello-ok after the first one")
        runDuration = registry.makeDurationHistogram(
            name: "openclaw_node_run_duration_seconds",
            buckets: [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10),
                      .seconds(60), .seconds(300)],
            help: "Wall time of system.run commands")
    }

    func linkUp() {
        hellos += 1
        if hellos > 1 { reconnects.increment() }
        connected.set(1.0)
    }

    func linkDown() { connected.set(0.0) }

    func invoke(_ command: String, ok: Bool) {
        registry.makeCounter(name: "openclaw_node_invokes_total", labels: [("command", command), ("outcome", ok ? "ok" : "error")],
                             help: "Invokes answered, by command and outcome").increment()
    }

    func denied(_ reason: String) {
        registry.makeCounter(name: "openclaw_node_runs_denied_total", labels: [("reason", reason)],
                             help: "system.run requests denied by policy, by reason").increment()
    }

    func ran(milliseconds: Int) {
        runDuration.record(.milliseconds(milliseconds))
    }

    func workerRestarted(_ worker: String) {
        registry.makeCounter(name: "openclaw_node_worker_restarts_total", labels: [("worker", worker)],
                             help: "Worker processes re-spawned after they died or were killed").increment()
    }

    public func exposition() -> String { registry.emitToString() }
}

/// Serves `NodeMetrics` on a loopback TCP port for Prometheus. Deliberately not an HTTP
/// server: it reads at most 8 KiB up to the end of the request head, ignores what it says,
/// answers the exposition and closes. The privileged process parses nothing from the socket.
final class MetricsEndpoint {
    private var channel: Channel?

    func start(port: Int, group: EventLoopGroup, metrics: NodeMetrics, logger: Logger) {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(MetricsResponder(metrics: metrics))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .whenComplete { [weak self] result in
                switch result {
                case let .success(channel):
                    self?.channel = channel
                    logger.info("metrics on http://127.0.0.1:\(port)/metrics")
                case let .failure(error):
                    logger.warning("metrics endpoint unavailable", metadata: ["port": "\(port)", "error": "\(error)"])
                }
            }
    }

    func stop() {
        channel?.close(promise: nil)
    }
}

private final class MetricsResponder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let metrics: NodeMetrics
    private var seen: [UInt8] = []
    private var answered = false

    init(metrics: NodeMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        let buffer = unwrapInboundIn(data)
        seen += buffer.readableBytesView.prefix(8192 - seen.count)
        let endOfHead = seen.count >= 4 && seen.indices.dropFirst(3).contains { index in
            seen[index - 3] == 13 && seen[index - 2] == 10 && seen[index - 1] == 13 && seen[index] == 10
        }
        guard endOfHead || seen.count >= 8192 else { return }
        answered = true
        let body = metrics.exposition()
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(string: head + body))).whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
