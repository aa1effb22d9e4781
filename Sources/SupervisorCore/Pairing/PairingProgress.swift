import Logging
import OpenClawIPC

/// Where this node stands with the gateway's two approvals (upstream-2026 §2 "Two
/// approvals"): first the device (`openclaw devices approve`, refused at `connect` with
/// `PAIRING_REQUIRED` until then), then its command surface (`openclaw nodes approve`: the
/// connect succeeds, but the gateway routes none of the node's commands until then).
public enum PairingStage: String, Codable, Sendable, CaseIterable {
    /// Not connected yet, so nothing is known.
    case unknown
    /// The device waits for `openclaw devices approve <requestId>`.
    case devicePending = "device-pending"
    /// The device is paired; its command surface waits for `openclaw nodes approve <requestId>`.
    case surfacePending = "surface-pending"
    /// Both approved (or, on a gateway that does not report the surface's approval, the device).
    case paired
}

/// The pairing as `status --json` shows it: the stage and both request ids.
public struct PairingStatus: Codable, Equatable, Sendable {
    public var state: PairingStage = .unknown
    /// The device-pairing request (step 1), while it waits.
    public var deviceRequestId: String?
    /// The command-surface request (step 2), while it waits.
    public var surfaceRequestId: String?

    public init() {}

    enum CodingKeys: String, CodingKey { case state, deviceRequestId, surfaceRequestId }

    /// Absent ids are written as `null`, so scripts see every field.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(state, forKey: .state)
        try container.encode(deviceRequestId, forKey: .deviceRequestId)
        try container.encode(surfaceRequestId, forKey: .surfaceRequestId)
    }
}

/// What an operator runs on the gateway host for each step.
public enum PairingApproval {
    public static func command(_ requestId: String) -> String { "openclaw devices approve \(requestId)" }
    public static func surfaceCommand(_ requestId: String) -> String { "openclaw nodes approve \(requestId)" }
}

/// The gateway's answer to `node.runnerInventory.update`, the one request through which a
/// node learns whether its command surface is approved (a node connection receives no
/// pairing events on current gateways). The node declares no worker hosting
/// (`{"protocolFeatures": []}`, accepted by every gateway generation), so the answer only
/// says where the surface stands.
enum SurfaceAnswer: Equatable {
    static let method = "node.runnerInventory.update"
    static let paramsJSON = #"{"protocolFeatures":[]}"#

    /// Accepted: the surface is approved.
    case approved
    /// `UNAVAILABLE` naming the pending request (`openclaw nodes approve <id>`), or the older
    /// gateways' "not current; retry after pairing completes" without one.
    case pending(requestId: String?)
    /// Another `UNAVAILABLE` (lost pairing ownership, persistence failed, link closed): ask again.
    case retry(String)
    /// The gateway does not know the method (`unknown method`, or `unauthorized role: node` on
    /// protocol 3): it has no surface approval to report.
    case unsupported(String)
    /// Any other refusal: not asked again on this connection.
    case refused(String)

    init(_ reply: Result<GatewayReply, WireError>) {
        let error: WireError
        switch reply {
        case let .success(reply) where reply.ok: self = .approved; return
        case let .success(reply): error = reply.error ?? WireError(code: "UNAVAILABLE", message: "")
        case let .failure(failure): error = failure
        }
        let message = error.message
        if error.code == "UNAVAILABLE" || error.code == "TIMEOUT" {
            if message.hasPrefix("node capability surface is awaiting operator approval") {
                self = .pending(requestId: Self.requestId(in: message))
            } else if message.hasPrefix("node runner inventory publication is not current") {
                self = .pending(requestId: nil)
            } else {
                self = .retry(message)
            }
        } else if message.hasPrefix("unknown method") || message.hasPrefix("unauthorized role") {
            self = .unsupported(message)
        } else {
            self = .refused("\(error.code): \(message)")
        }
    }

    /// The id in "run `openclaw nodes approve <id>`", if it has upstream's request-id shape.
    static func requestId(in message: String) -> String? {
        guard let range = message.firstRange(of: "openclaw nodes approve ") else { return nil }
        let id = message[range.upperBound...].prefix { $0.isASCII && ($0.isLetter || $0.isNumber || "._:-".contains($0)) }
        guard let first = id.first, first.isLetter || first.isNumber, id.count <= 128 else { return nil }
        return String(id)
    }
}

/// The two pairing steps as a plain state machine: events in, effects out (no timers, no
/// I/O). It logs each state once with the operator's next command, asks the gateway about
/// the surface after every hello, and while the surface waits asks again on a slow, capped
/// backoff (upstream asked every 5 s forever, #128446) — at once when something says the
/// operator acted: a `node.pair.resolved` for this node, or an invoke arriving (the gateway
/// routes only approved commands).
public struct PairingProgress {
    enum Effect: Equatable {
        case log(Logger.Level, String)
        /// Send `node.runnerInventory.update` and feed the answer to `answered(_:)`.
        case askSurface
        case scheduleRetry(afterMs: Int)
        case cancelRetry
    }

    /// The first pause before asking again about a pending surface; it doubles up to `maxRetryMs`.
    public static let retryMs = 5_000
    static let maxRetryMs = 60_000

    private(set) var status = PairingStatus()
    let deviceId: String
    let firstRetryMs: Int
    let maxRetryMs: Int
    /// A `node.runnerInventory.update` is in flight.
    private var asking = false
    private var retryArmed = false
    private var nextRetryMs: Int
    /// The last retry/refusal sentence logged (each is logged once until it changes).
    private var lastNote: String?

    init(deviceId: String, firstRetryMs: Int = PairingProgress.retryMs, maxRetryMs: Int = PairingProgress.maxRetryMs) {
        self.deviceId = deviceId
        self.firstRetryMs = max(1, firstRetryMs)
        self.maxRetryMs = max(self.firstRetryMs, maxRetryMs)
        nextRetryMs = self.firstRetryMs
    }

    /// `connect` was refused with `PAIRING_REQUIRED` (step 1).
    mutating func deviceRequired(requestId: String?) -> [Effect] {
        var effects: [Effect] = []
        let changed = status.state != .devicePending || requestId != status.deviceRequestId
        status.state = .devicePending
        status.surfaceRequestId = nil
        guard changed else { return effects }
        status.deviceRequestId = requestId
        if let requestId {
            effects.append(.log(.notice, "pairing required: approve this node on the gateway with: \(PairingApproval.command(requestId))"))
        } else {
            effects.append(.log(.notice, "pairing required: approve this node on the gateway ('openclaw devices list' shows its request)"))
        }
        return effects
    }

    /// hello-ok: the device is paired; ask where the surface stands.
    mutating func connected() -> [Effect] {
        status.deviceRequestId = nil
        if status.state == .devicePending || status.state == .unknown { status.state = .paired }
        nextRetryMs = firstRetryMs
        return ask()
    }

    /// The connection is gone: nothing is asked on it any more.
    mutating func disconnected() -> [Effect] {
        asking = false
        return disarm()
    }

    mutating func retryDue() -> [Effect] {
        retryArmed = false
        return ask()
    }

    /// An invoke arrived: the gateway routes only approved commands, so a pending surface
    /// was approved since we last asked.
    mutating func invokeArrived() -> [Effect] {
        status.state == .surfacePending ? ask(now: true) : []
    }

    /// `node.pair.requested` / `node.pair.resolved` from the gateway (current gateways send
    /// them to operators only; handled when one reaches the node). Others' are ignored.
    mutating func gatewayEvent(_ event: PairingEvent) -> [Effect] {
        guard event.nodeId == deviceId else { return [] }
        switch (event.event, event.decision) {
        case ("node.pair.requested", _):
            return surfacePending(requestId: event.requestId)
        case ("node.pair.resolved", "approved"?):
            return ask(now: true)
        case let ("node.pair.resolved", decision?) where event.requestId == status.surfaceRequestId && status.state == .surfacePending:
            // Rejected (or removed): the gateway files a new request when the node connects again.
            return [.log(.warning, "command surface request \(event.requestId ?? "-") was \(decision) on the gateway; "
                    + "this node's commands stay unavailable until an operator approves a new request (the gateway files one "
                    + "when the node reconnects: openclaw-node restart)")]
        default:
            return []
        }
    }

    /// The gateway's answer to `node.runnerInventory.update`.
    mutating func answered(_ answer: SurfaceAnswer) -> [Effect] {
        asking = false
        switch answer {
        case .approved:
            var effects: [Effect] = []
            if status.state == .surfacePending {
                effects.append(.log(.notice, "command surface approved; the gateway now routes this node's commands"))
            }
            status.state = .paired
            status.surfaceRequestId = nil
            lastNote = nil
            nextRetryMs = firstRetryMs
            return effects + disarm()
        case let .pending(requestId):
            return surfacePending(requestId: requestId) + scheduleRetry()
        case let .retry(message):
            return note(.debug, "command surface state not known yet (\(message)); asking the gateway again") + scheduleRetry()
        case let .unsupported(message):
            return note(.debug, "gateway does not report command-surface approval (\(SurfaceAnswer.method): \(message))")
        case let .refused(message):
            return note(.warning, "gateway refused \(SurfaceAnswer.method) (\(message)); not asking again on this connection")
        }
    }

    // MARK: Internals

    private mutating func surfacePending(requestId: String?) -> [Effect] {
        let changed = status.state != .surfacePending || (requestId != nil && requestId != status.surfaceRequestId)
        status.state = .surfacePending
        status.deviceRequestId = nil
        if let requestId { status.surfaceRequestId = requestId }
        guard changed else { return [] }
        lastNote = nil
        let next = status.surfaceRequestId.map { "run '\(PairingApproval.surfaceCommand($0))' on the gateway host (see 'openclaw nodes pending')" }
            ?? "run 'openclaw nodes pending' on the gateway host, then 'openclaw nodes approve <requestId>'"
        return [.log(.notice, "device paired; command surface pending approval: \(next)")]
    }

    private mutating func ask(now: Bool = false) -> [Effect] {
        guard !asking else { return [] }
        asking = true
        if now { nextRetryMs = firstRetryMs }
        return disarm() + [.askSurface]
    }

    private mutating func scheduleRetry() -> [Effect] {
        guard !retryArmed else { return [] }
        retryArmed = true
        let delay = nextRetryMs
        nextRetryMs = min(maxRetryMs, nextRetryMs * 2)
        return [.scheduleRetry(afterMs: delay)]
    }

    private mutating func disarm() -> [Effect] {
        guard retryArmed else { return [] }
        retryArmed = false
        return [.cancelRetry]
    }

    private mutating func note(_ level: Logger.Level, _ sentence: String) -> [Effect] {
        guard sentence != lastNote else { return [] }
        lastNote = sentence
        return [.log(level, sentence)]
    }
}
