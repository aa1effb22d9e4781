import OpenClawIPC
import Prometheus

/// What the node counts, in Prometheus form (swift-prometheus): link state, reconnects,
/// invokes by command and outcome, run durations, denials by reason, worker restarts.
/// Every series exists from the start (at zero), so a dashboard or alert never sees a gap;
/// health gauges say whether the node is connected, waiting for pairing, and when an invoke
/// last succeeded. Cheap when nobody scrapes: counters only. The Supervisor keeps them; the NetWorker serves
/// them on loopback (`--metrics-port`) by asking for the text over IPC on each scrape.
public final class NodeMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let connected: Gauge
    private let reconnects: Counter
    private let runDuration: DurationHistogram
    private var hellos = 0
    private let droppedFrames: Counter
    private let pairingPending: Gauge
    private let lastInvokeOk: Gauge

    public init() {
        connected = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "openclaw_node", metricName: "gateway_connected", unitName: "",
            helpText: "1 while the gateway link is up (after hello-ok)"))
        reconnects = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "openclaw_node", metricName: "gateway_reconnects", unitName: "total", helpText: "hello-ok after the first one"))
        droppedFrames = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "openclaw_node", metricName: "gateway_frames_dropped", unitName: "total",
            helpText: "Gateway frames the node could not read or serve (each logged; invokes with a readable id answered INVALID_REQUEST)"))
        pairingPending = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "openclaw_node", metricName: "pairing_pending", unitName: "",
            helpText: "1 while the gateway waits for an operator to approve this node's pairing (its device or its command surface)"))
        lastInvokeOk = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "openclaw_node", metricName: "last_successful_invoke_timestamp", unitName: "seconds",
            helpText: "Unix time of the last invoke answered ok (0: none yet)"))
        runDuration = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "openclaw_node", metricName: "run_duration", unitName: "seconds",
                                             helpText: "Wall time of system.run commands"),
            buckets: [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10),
                      .seconds(60), .seconds(300)])
        connected.set(0.0)
        lastInvokeOk.set(0.0)
        pairing(PairingStatus())
        for worker in WorkerRole.allCases.map(\.rawValue) { _ = registry.makeCounter(descriptor: Self.restarts, labels: [("worker", worker)]) }
        for reason in ExecPolicy.Reason.all { _ = registry.makeCounter(descriptor: Self.denials, labels: [("reason", reason)]) }
        declare(commands: [])
    }

    /// Creates the invoke counters of `commands` (and of "other") at zero.
    public func declare(commands: [String]) {
        for command in commands + ["other"] {
            for outcome in ["ok", "error"] {
                _ = registry.makeCounter(descriptor: Self.invokes, labels: [("command", command), ("outcome", outcome)])
            }
        }
    }

    func linkUp() {
        hellos += 1
        if hellos > 1 { reconnects.increment() }
        connected.set(1.0)
    }

    func linkDown() { connected.set(0.0) }

    /// The pairing stage (one series per stage, 1 for the current one) and the request
    /// waiting for an operator, by step, as an info series (only the current one exists).
    func pairing(_ status: PairingStatus) {
        pairingPending.set(status.state == .devicePending || status.state == .surfacePending ? 1.0 : 0.0)
        for stage in PairingStage.allCases {
            registry.makeGauge(descriptor: Self.pairingState, labels: [("state", stage.rawValue)]).set(stage == status.state ? 1.0 : 0.0)
        }
        let request = status.deviceRequestId.map { ("device", $0) } ?? status.surfaceRequestId.map { ("surface", $0) }
        guard request?.0 != pairingRequest?.step || request?.1 != pairingRequest?.id else { return }
        if let old = pairingRequest { registry.unregisterGauge(old.gauge) }
        pairingRequest = request.map { step, id in
            let gauge = registry.makeGauge(descriptor: Self.pairingRequest, labels: [("step", step), ("request_id", id)])
            gauge.set(1.0)
            return (step, id, gauge)
        }
    }

    private var pairingRequest: (step: String, id: String, gauge: Gauge)?

    func invoke(_ command: String, ok: Bool) {
        registry.makeCounter(descriptor: Self.invokes, labels: [("command", command), ("outcome", ok ? "ok" : "error")]).increment()
        if ok { lastInvokeOk.set(Double(currentTimeMillis()) / 1000) }
    }

    func denied(_ reason: String) {
        registry.makeCounter(descriptor: Self.denials, labels: [("reason", reason)]).increment()
    }

    func ran(milliseconds: Int) {
        runDuration.record(.milliseconds(milliseconds))
    }

    func framesDropped(_ count: Int) {
        droppedFrames.increment(by: Int64(count))
    }

    func workerRestarted(_ worker: String) {
        registry.makeCounter(descriptor: Self.restarts, labels: [("worker", worker)]).increment()
    }

    static let invokes = MetricNameDescriptor(namespace: "openclaw_node", metricName: "invokes", unitName: "total",
                                              helpText: "Invokes answered, by command and outcome")
    static let denials = MetricNameDescriptor(namespace: "openclaw_node", metricName: "runs_denied", unitName: "total",
                                              helpText: "system.run requests denied by policy, by reason")
    static let pairingState = MetricNameDescriptor(namespace: "openclaw_node", metricName: "pairing_state", unitName: "",
                                                   helpText: "1 for the node's pairing stage: unknown, device-pending, surface-pending or paired")
    static let pairingRequest = MetricNameDescriptor(namespace: "openclaw_node", metricName: "pairing_request", unitName: "",
                                                     helpText: "The pairing request waiting for an operator, by step (device: openclaw devices approve; surface: openclaw nodes approve)")
    static let restarts = MetricNameDescriptor(namespace: "openclaw_node", metricName: "worker_restarts", unitName: "total",
                                               helpText: "Worker processes re-spawned after they died or were killed")

    public func exposition() -> String { registry.emitToString() }
}
