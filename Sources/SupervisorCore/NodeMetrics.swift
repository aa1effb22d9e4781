import Prometheus

/// What the node counts, in Prometheus form (swift-prometheus): link state, reconnects,
/// invokes by command and outcome, run durations, denials by reason, worker restarts.
/// Cheap when nobody scrapes: counters only. The Supervisor keeps them; the NetWorker serves
/// them on loopback (`--metrics-port`) by asking for the text over IPC on each scrape.
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
