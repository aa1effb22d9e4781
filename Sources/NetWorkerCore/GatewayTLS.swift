import GatewayProtocol
import NIOCore
import NIOSSL
import NIOTLS
import NodeSupport

/// TLS for the gateway link, its probe (`doctor`) and the fingerprint lookup: CA validation,
/// or with a pin (`--tls-fingerprint`) the pin alone.
enum GatewayTLS {
    static func context(pinned: Bool) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if pinned {
            // The pin replaces CA validation: the custom callback is the only check.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates([])
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Lowercase hex SHA-256 of a certificate's DER: what `--tls-fingerprint` pins.
    static func fingerprint(der: [UInt8]) -> String {
        FileDigest.sha256Hex(bytes: der)
    }

    /// TLS for the gateway: CA validation, or with a pin the pin alone. `presented` sees the
    /// leaf fingerprint the peer offered (the connect-failure sentence and doctor report it on
    /// a mismatch; no credential is sent to a peer that does not match).
    static func handler(_ context: NIOSSLContext, host: String, pin: String?,
                           presented: @escaping @Sendable (String) -> Void = { _ in }) throws -> NIOSSLClientHandler {
        let sni = GatewayTarget.isIPLiteral(host) ? nil : host
        guard let pin else { return try NIOSSLClientHandler(context: context, serverHostname: sni) }
        return try NIOSSLClientHandler(context: context, serverHostname: sni, customVerificationCallback: { certificates, promise in
            guard let leaf = certificates.first, let der = try? leaf.toDERBytes() else {
                promise.succeed(.failed)
                return
            }
            let actual = Self.fingerprint(der: der)
            presented(actual)
            if actual == pin {
                promise.succeed(.certificateVerified)
            } else {
                promise.succeed(.failed)
            }
        })
    }
}

/// What one attempt saw before it failed (written on its channel's loop, read after).
final class AttemptObservations: @unchecked Sendable {
    /// The leaf certificate's SHA-256 the peer presented.
    var presented: String?
    /// A plaintext attempt was answered with TLS bytes.
    var tlsReply = false
}

/// Reports the end of the TLS handshake, where the next phase's deadline starts.
final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let completed: () -> Void

    init(completed: @escaping () -> Void) {
        self.completed = completed
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { completed() }
        context.fireUserInboundEventTriggered(event)
    }
}
