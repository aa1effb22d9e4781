import OpenClawIPC

// The whole attack surface a worker has on the Supervisor, on one screen
// (the OpenSSH monitor pattern: a closed menu of requests per phase).
//
// A compromised NetWorker can send any bytes. Anything that is not a well-formed message of a
// kind listed here for the worker's current phase is a violation: the Supervisor logs the
// reason, kills that worker and re-spawns it. Content checks (which nonce may be signed, which
// run may execute) happen in the handlers; this table only says what may be asked, and when.

/// Phases of the NetWorker link, as the Supervisor tracks them.
public enum NetPhase: String, Sendable, CaseIterable {
    /// Spawned; the first message must be `ready`.
    case awaitingReady
    /// Configured; connecting or handshaking with the gateway (no hello yet).
    case linking
    /// The gateway accepted `connect` (hello-ok); invokes may arrive.
    case linked
    /// The Supervisor is shutting down; late messages are dropped, not obeyed.
    case stopping
}

/// Phases of the ExecWorker, as the Supervisor tracks them.
public enum ExecPhase: String, Sendable, CaseIterable {
    case awaitingReady
    case ready
    case stopping
}

/// Phases of the BrowserWorker (started on the first `browser.proxy`).
public enum BrowserPhase: String, Sendable, CaseIterable {
    case notStarted
    case awaitingReady
    case ready
    case stopping
}

public enum IPCPolicy {
    /// What the NetWorker may send, and in which phases.
    public static let net: [NetToSupervisor.Kind: Set<NetPhase>] = [
        // Once, first thing after start.
        .ready: [.awaitingReady],
        // A connect signature over a payload the Supervisor builds; only before hello.
        .signRequest: [.linking],
        // The handshake succeeded: ends `linking`.
        .helloOk: [.linking],
        // The gateway refused `connect` (pairing, auth): only during the handshake.
        .connectRejected: [.linking],
        // Link progress for status and logs; `connecting`/`disconnected` ends `linked`.
        .linkState: [.linking, .linked, .stopping],
        // Work from the gateway: only on an accepted link.
        .invoke: [.linked],
        // A Prometheus scrape on the NetWorker's loopback listener: answered with counters only.
        .metricsRequest: [.linking, .linked],
        // Gateway frames the link could not serve, counted for the metrics: batched, one a second.
        .framesDropped: [.linking, .linked],
    ]

    /// What the ExecWorker may send, and in which phases.
    /// (Run ids must also name a run in flight; that is checked by the run registry.)
    public static let exec: [ExecToSupervisor.Kind: Set<ExecPhase>] = [
        .ready: [.awaitingReady],
        .runFinished: [.ready, .stopping],
    ]

    /// What the BrowserWorker may send, and in which phases.
    /// (Response ids must also name a request in flight; that is checked by the Supervisor.)
    public static let browser: [BrowserToSupervisor.Kind: Set<BrowserPhase>] = [
        .ready: [.awaitingReady],
        .response: [.ready],
    ]

    public static func permits(_ kind: BrowserToSupervisor.Kind, in phase: BrowserPhase) -> Bool {
        browser[kind]?.contains(phase) ?? false
    }

    public static func permits(_ kind: NetToSupervisor.Kind, in phase: NetPhase) -> Bool {
        net[kind]?.contains(phase) ?? false
    }

    public static func permits(_ kind: ExecToSupervisor.Kind, in phase: ExecPhase) -> Bool {
        exec[kind]?.contains(phase) ?? false
    }
}
