import Glibc
import Logging
import OpenClawIPC

/// Gateway-link settings the Supervisor resolved from flags, `node.json`, config and env.
public struct LinkSettings: Sendable {
    public var url: String
    public var tlsFingerprint: String?
    public var nodeId: String
    public var displayName: String
    public var version: String
    public var pathEnv: String
    public var sharedToken: String?
    public var password: String?
    /// `identity/device-auth.json`.
    public var deviceAuthPath: String
    /// Caps each handshake phase's deadline (OPENCLAW_HANDSHAKE_TIMEOUT_MS); nil: the defaults.
    public var handshakeTimeoutMs: Int?
    /// A setup code's bootstrap token (`run --pair`, `--pair-if-needed`, `connect`): presented
    /// until the first hello, never stored.
    public var bootstrapToken: String?
    /// `--pair`: present it even when a device token is stored (`--pair-if-needed`: only without one).
    public var preferBootstrapToken = false
    /// A setup code's further endpoints, tried after `url` until one reaches hello.
    public var fallbacks: [GatewayEndpoint] = []
    /// Cloudflare Access service-token headers for the WebSocket upgrade (wss only).
    public var accessHeaders: [String: String] = [:]
    /// `node.json`, where the endpoint that won among several is saved (nil: not saved).
    public var nodeFile: String?
    /// The first pause before asking again about a pending command surface (nil: 5 s; the
    /// backoff's cap is twelve times it). For tests.
    public var pairingRetryMs: Int?

    public init(url: String, tlsFingerprint: String?, nodeId: String, displayName: String, version: String,
                pathEnv: String, sharedToken: String?, password: String?, deviceAuthPath: String) {
        self.url = url
        self.tlsFingerprint = tlsFingerprint
        self.nodeId = nodeId
        self.displayName = displayName
        self.version = version
        self.pathEnv = pathEnv
        self.sharedToken = sharedToken
        self.password = password
        self.deviceAuthPath = deviceAuthPath
    }
}

/// What the Supervisor does about a refused `connect`.
public enum RejectionVerdict: Equatable {
    /// The NetWorker keeps reconnecting with its backoff.
    case keepRetrying
    /// Exit 1 so the service manager restarts us with fresh credentials.
    case exit(String)
}

/// The gateway of the current (or last) session, from its hello-ok.
public struct GatewaySession: Codable, Equatable, Sendable {
    public var `protocol`: Int
    public var serverVersion: String?
    /// `features.capabilities` (what upstream's node host reads of `features`).
    public var capabilities: [String]
}

/// The link as `status` reports it.
public struct LinkStatus: Equatable, Sendable {
    public var phase: LinkState.Phase = .connecting
    public var pairing = PairingStatus()
    public var gateway: GatewaySession?
    public var lastError: String?
    public var connects = 0
    /// The device is paired (its command surface may still wait).
    public var paired: Bool { pairing.state == .paired || pairing.state == .surfacePending }
    /// The device-pairing request waiting for `openclaw devices approve`.
    public var pendingRequestId: String? { pairing.deviceRequestId }
}

/// The Supervisor's side of the gateway link: it decides what the NetWorker may present
/// (connect template, signatures over payloads the Supervisor builds), keeps the device
/// token, classifies refusals, and keeps the link's status. (Invokes go from the NetWorker's
/// monitor straight to the `CommandRouter`.)
public final class LinkAuthority {
    /// Codes after which the node exits 1 (design §6).
    public static let terminalCodes: Set<String> = [
        "AUTH_TOKEN_MISSING", "AUTH_TOKEN_MISMATCH", "AUTH_PASSWORD_MISSING", "AUTH_PASSWORD_MISMATCH",
        "AUTH_BOOTSTRAP_TOKEN_INVALID", "CLIENT_VERSION_MISMATCH",
    ]
    /// This machine's model, read once (`client.modelIdentifier`).
    static let modelIdentifier = MachineModel.identifier()

    /// How far a requested `signedAt` may be from our clock. It is the gateway's own time (the
    /// challenge `ts`), so this allows for a gateway whose clock is off; the signature is bound
    /// to that gateway's single-use nonce either way.
    static let maxSignSkewMs: Int64 = 600_000

    let settings: LinkSettings
    let identity: DeviceIdentity
    let router: CommandRouter
    let logger: Logger
    let clock: () -> Int64
    public let metrics: NodeMetrics
    private(set) var storedDeviceToken: String?
    /// The setup code's token until the first hello-ok (single use; nothing stores it).
    private var bootstrapToken: String?
    public private(set) var status = LinkStatus()
    /// A pairing request was refused as pending since the last hello.
    private var awaitingApproval = false
    /// The fallback endpoint already written to node.json this run (each reconnect to it would
    /// otherwise rewrite the file).
    private var savedWinnerURL: String?
    /// Both pairing steps; its logs and metrics are applied here, the rest by `perform`.
    private var pairing: PairingProgress
    /// Performs the pairing effects that need the link (ask the gateway, arm or cancel the
    /// retry timer); set by the NetWorker's monitor.
    var perform: (PairingProgress.Effect) -> Void = { _ in }

    public init(settings: LinkSettings, identity: DeviceIdentity, router: CommandRouter, metrics: NodeMetrics = NodeMetrics(),
                logger: Logger, clock: @escaping () -> Int64 = currentTimeMillis) {
        self.settings = settings
        self.identity = identity
        self.router = router
        self.logger = logger
        self.clock = clock
        self.metrics = metrics
        pairing = PairingProgress(deviceId: identity.deviceId, firstRetryMs: settings.pairingRetryMs ?? PairingProgress.retryMs,
                                  maxRetryMs: settings.pairingRetryMs.map { $0 * 12 } ?? PairingProgress.maxRetryMs)
        metrics.declare(commands: router.commands)
        storedDeviceToken = DeviceAuthFile.token(at: settings.deviceAuthPath, deviceId: identity.deviceId, role: "node")
        bootstrapToken = settings.bootstrapToken
    }

    /// Whether `connect` presents the setup code's bootstrap token: with `--pair` always (until
    /// the first hello), with `--pair-if-needed` only when no device token is stored.
    var presentsBootstrapToken: Bool {
        bootstrapToken != nil && (settings.preferBootstrapToken || storedDeviceToken == nil)
    }

    /// What `connect.auth` carries, and so what the signature covers.
    var credentials: NetConfiguration.Auth {
        if presentsBootstrapToken { return NetConfiguration.Auth(token: nil, password: nil, bootstrapToken: bootstrapToken) }
        return NetConfiguration.Auth(token: authToken, password: settings.password)
    }

    /// The token `connect` carries in `auth.token`: the shared token, else the stored device
    /// token (design §6: every gateway generation accepts it there).
    var authToken: String? { settings.sharedToken ?? (settings.password == nil ? storedDeviceToken : nil) }

    /// Whether `connect` presents the stored device token rather than a shared secret.
    var usesDeviceToken: Bool { !presentsBootstrapToken && settings.sharedToken == nil && authToken != nil }

    public func configuration() -> NetConfiguration {
        var configuration = NetConfiguration(
            url: settings.url,
            tlsFingerprint: settings.tlsFingerprint,
            minProtocol: 3,
            maxProtocol: 4,
            client: .init(id: "node-host", displayName: settings.displayName, version: settings.version,
                          platform: "linux", deviceFamily: "Linux", modelIdentifier: Self.modelIdentifier, mode: "node",
                          instanceId: settings.nodeId),
            role: "node",
            scopes: [],
            caps: router.caps,
            commands: router.commands,
            pathEnv: settings.pathEnv,
            deviceId: identity.deviceId,
            publicKey: identity.publicKeyBase64Url
        )
        configuration.handshakeTimeoutMs = settings.handshakeTimeoutMs
        configuration.upgradeHeaders = settings.accessHeaders
        configuration.fallbacks = settings.fallbacks.map { NetConfiguration.Endpoint(url: $0.url, tlsFingerprint: $0.fingerprint) }
        return configuration
    }

    /// Signs the connect payload for `request`, built from our own settings. Refuses nonces
    /// that could change the payload's structure and timestamps far from our clock, so a
    /// compromised NetWorker cannot obtain signatures for payloads of its choosing.
    public func sign(_ request: SignRequest) -> SignReply {
        let nonce = request.nonce
        let nonceOK = !nonce.isEmpty && nonce.utf8.count <= 128 && nonce.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value < 0x7f && scalar != "|"
        }
        guard nonceOK else {
            logger.warning("refused to sign: malformed nonce")
            return SignReply(requestId: request.requestId, refused: "nonce refused")
        }
        let skew = request.signedAt.subtractingReportingOverflow(clock())
        guard !skew.overflow, skew.partialValue.magnitude <= UInt64(Self.maxSignSkewMs) else {
            logger.warning("refused to sign: signedAt too far from now", metadata: ["signedAt": .typed(request.signedAt)])
            return SignReply(requestId: request.requestId, refused: "signedAt refused")
        }
        let configuration = configuration()
        let auth = credentials
        let payload = ConnectPayload(
            deviceId: identity.deviceId, clientId: configuration.client.id, clientMode: configuration.client.mode,
            role: configuration.role, scopes: configuration.scopes, signedAtMs: request.signedAt,
            token: auth.token ?? auth.bootstrapToken ?? "", nonce: nonce,
            platform: configuration.client.platform, deviceFamily: configuration.client.deviceFamily
        )
        do {
            return SignReply(requestId: request.requestId, signature: try identity.sign(payload.text(request.version)), auth: auth)
        } catch {
            return SignReply(requestId: request.requestId, refused: "signing failed")
        }
    }

    /// hello-ok: keep the device token the gateway issued.
    public func accepted(_ hello: HelloSummary) {
        let approvedRequest = awaitingApproval ? status.pendingRequestId ?? "-" : nil
        awaitingApproval = false
        status.phase = .connected
        status.lastError = nil
        // Spent: the gateway paired the device and issued its token.
        bootstrapToken = nil
        status.gateway = GatewaySession(protocol: hello.protocol, serverVersion: hello.serverVersion, capabilities: hello.capabilities ?? [])
        status.connects += 1
        metrics.linkUp()
        if let token = hello.deviceToken?.trimmingWhitespace(), !token.isEmpty {
            storedDeviceToken = token
            do {
                try DeviceAuthFile.store(token: token, role: hello.role ?? "node", scopes: hello.scopes ?? [],
                                         at: settings.deviceAuthPath, deviceId: identity.deviceId, now: clock())
            } catch {
                logger.error("cannot store device token", metadata: ["error": "\(error)"])
            }
        }
        if let approvedRequest {
            logger.notice("pairing approved, connected", metadata: ["requestId": "\(approvedRequest)", "url": "\(settings.url)"])
        }
        logger.info("node host gateway connected", metadata: ["url": "\(settings.url)", "protocol": .typed(hello.protocol)])
        apply(pairing.connected())
    }

    public func rejected(_ rejection: ConnectRejection) -> RejectionVerdict {
        let detail = rejection.detail
        status.lastError = "\(detail): \(rejection.message)"
        if Self.terminalCodes.contains(detail) {
            return .exit("\(rejection.message) (\(detail))")
        }
        if rejection.isPairingRequired {
            status.phase = .pairingPending
            awaitingApproval = true
            apply(pairing.deviceRequired(requestId: rejection.requestId))
            return .keepRetrying
        }
        if detail == "AUTH_DEVICE_TOKEN_MISMATCH", usesDeviceToken {
            // The next signature (and so the next connect) goes without it.
            logger.warning("gateway rejected the stored device token; deleting it and reconnecting without it")
            storedDeviceToken = nil
            try? DeviceAuthFile.remove(role: "node", at: settings.deviceAuthPath, deviceId: identity.deviceId)
            return .keepRetrying
        }
        logger.warning("gateway refused connect; retrying", metadata: ["code": "\(detail)", "message": "\(rejection.message)"])
        return .keepRetrying
    }

    public func report(_ state: LinkState) {
        if state.phase == .connected, let url = state.detail, url != settings.url, url != savedWinnerURL,
           let winner = settings.fallbacks.first(where: { $0.url == url }) {
            savedWinnerURL = url
            saveWinner(winner)
        }
        if state.phase != .pairingPending || status.phase != .pairingPending {
            status.phase = state.phase == .pairingPending ? status.phase : state.phase
        }
        if state.phase != .connected { metrics.linkDown() }
        if state.phase == .disconnected, let detail = state.detail {
            status.lastError = detail
            logger.info("gateway link down", metadata: ["detail": "\(detail)"])
        }
    }

    public func linkLost(reason: String) {
        metrics.linkDown()
        if status.phase == .connected { status.phase = .disconnected }
    }

    /// The endpoint that reached hello among a setup code's several is the one kept (upstream's
    /// persistWinningGateway); the next start uses it.
    private func saveWinner(_ winner: GatewayEndpoint) {
        guard let path = settings.nodeFile else { return }
        do {
            var node = try NodeConfigFile.load(path)
            node.gateway = .init(host: winner.host, port: winner.port, tls: winner.tls, tlsFingerprint: winner.fingerprint,
                                 contextPath: winner.contextPath)
            try node.save(path)
            logger.info("saved the gateway endpoint that answered", metadata: ["url": "\(winner.url)"])
        } catch {
            logger.warning("node host gateway endpoint persistence failed: \(error)")
        }
    }

    // MARK: Pairing

    /// The connection went down (the NetWorker's report): no more questions on it.
    func pairingDisconnected() { apply(pairing.disconnected()) }
    func pairingRetryDue() { apply(pairing.retryDue()) }
    func pairingInvokeArrived() { apply(pairing.invokeArrived()) }
    func pairingEvent(_ event: PairingEvent) { apply(pairing.gatewayEvent(event)) }
    func surfaceAnswered(_ answer: SurfaceAnswer) { apply(pairing.answered(answer)) }

    /// Logs (with the operator's next command, framed on a terminal too), the status and the
    /// metrics follow each pairing step; the link's effects go to `perform`.
    private func apply(_ effects: [PairingProgress.Effect]) {
        for effect in effects {
            guard case let .log(level, sentence) = effect else {
                perform(effect)
                continue
            }
            var metadata: Logger.Metadata = ["deviceId": "\(identity.deviceId)"]
            if let id = pairing.status.deviceRequestId ?? pairing.status.surfaceRequestId { metadata["requestId"] = "\(id)" }
            logger.log(level: level, "\(sentence)", metadata: metadata)
            switch pairing.status.state {
            case .devicePending:
                pairing.status.deviceRequestId.map { Self.announce(command: PairingApproval.command($0), deviceId: identity.deviceId) }
            case .surfacePending:
                pairing.status.surfaceRequestId.map { Self.announce(command: PairingApproval.surfaceCommand($0), deviceId: identity.deviceId) }
            case .paired, .unknown:
                break
            }
        }
        status.pairing = pairing.status
        metrics.pairing(pairing.status)
    }
}

extension LinkAuthority {
    /// The approval command, printed where an operator at the terminal sees it (the log line
    /// carries it too): a framed block on standard error when that is a terminal.
    static func announce(command: String, deviceId: String) {
        guard isatty(2) == 1 else { return }
        let text = """

        ┌─ Pairing approval needed ─────────────────────────────────────────
        │ On the gateway host, run:
        │     \(command)
        │ (device \(deviceId); the node picks up the approval by itself)
        └───────────────────────────────────────────────────────────────────

        """
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}
