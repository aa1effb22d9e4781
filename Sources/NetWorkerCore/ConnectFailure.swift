import GatewayProtocol
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NodeSupport

/// Why one connection attempt failed, as an operator reads it: one sentence saying what
/// failed, where, and what to try. The library's own error goes to the debug log.
enum ConnectFailure: Equatable {
    case refused
    case unresolved
    case unreachable(String)
    case timedOut(phase: String, milliseconds: Int)
    /// A plaintext `ws://` attempt answered with TLS bytes.
    case speaksTLS
    /// A plaintext attempt closed or garbled before the upgrade answer.
    case closedDuringUpgrade
    /// A `wss://` attempt whose peer does not answer TLS.
    case notTLS
    /// The certificate chain is not trusted here (no pin); the leaf's SHA-256 when known.
    case untrusted(fingerprint: String?)
    case pinMismatch(expected: String, actual: String)
    case upgradeRefused
    case other(String)

    /// Classifies a failed attempt from the error and what the attempt saw.
    static func classify(_ error: Error, secure: Bool, pin: String?, presented: String?, sawTLSReply: Bool) -> ConnectFailure {
        if let pin, let presented, presented != pin { return .pinMismatch(expected: pin, actual: presented) }
        if let connection = error as? NIOConnectionError {
            if connection.connectionErrors.isEmpty { return .unresolved }
            if let first = connection.connectionErrors.first?.error { return classify(first, secure: secure, pin: pin, presented: presented, sawTLSReply: sawTLSReply) }
        }
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED: return .refused
            case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL: return .unreachable(SystemError.text(io.errnoCode))
            case ETIMEDOUT: return .timedOut(phase: "TCP connect", milliseconds: 0)
            default: break
            }
        }
        if case let ChannelError.connectTimeout(amount) = error { return .timedOut(phase: "TCP connect", milliseconds: Int(amount.nanoseconds / 1_000_000)) }
        if error is GatewayLinkError { return .upgradeRefused }
        let text = "\(error)"
        if secure {
            // BoringSSL's reasons, as NIOSSL describes them.
            if text.contains("CERTIFICATE_VERIFY_FAILED") { return .untrusted(fingerprint: nil) }
            let notTLS = ["WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_TOO_LARGE", "uncleanShutdown"]
            return notTLS.contains { text.contains($0) } ? .notTLS : .other(text)
        }
        if sawTLSReply { return .speaksTLS }
        switch error {
        case is HTTPParserError, ChannelError.inappropriateOperationForState, ChannelError.ioOnClosedChannel, ChannelError.eof:
            return .closedDuringUpgrade
        default:
            return .other(text)
        }
    }

    /// The sentence for the attempt to `target`.
    func sentence(for target: GatewayTarget) -> String {
        let place = target.hostHeader
        switch self {
        case .refused:
            return "cannot connect to the gateway at \(place): connection refused; is the gateway running on \(place)?"
        case .unresolved:
            return "cannot resolve the gateway host \(target.host); check --host and this machine's DNS"
        case let .unreachable(reason):
            return "cannot reach the gateway at \(place): \(reason); check the network route to it"
        case let .timedOut(phase, ms):
            let within = ms <= 0 ? "" : ms % 1000 == 0 ? " within \(ms / 1000) s" : " within \(ms) ms"
            return "no answer from the gateway at \(place)\(within) (\(phase)); is \(place) reachable from here (firewall, VPN)?"
        case .speaksTLS:
            return "the gateway at \(place) speaks TLS: add --tls (and --tls-fingerprint to pin its certificate)"
        case .closedDuringUpgrade:
            return "the gateway at \(place) closed the connection during the WebSocket upgrade; if it speaks TLS, add --tls"
        case .notTLS:
            return "the gateway at \(place) did not answer the TLS handshake; if it is a plain ws:// gateway on loopback, drop --tls"
        case let .untrusted(fingerprint?):
            return "the gateway at \(place): certificate not trusted; its SHA-256 is \(fingerprint); pin it with --tls-fingerprint \(fingerprint)"
        case .untrusted(nil):
            return "the gateway at \(place): certificate not trusted; pin it with --tls-fingerprint <sha256> (openclaw-node doctor shows it)"
        case let .pinMismatch(expected, actual):
            return "gateway tls fingerprint mismatch; not sending credentials: the gateway at \(place) presents SHA-256 \(actual), not the pinned \(expected); if its certificate was renewed, pin the new one with --tls-fingerprint \(actual)"
        case .upgradeRefused:
            return "the gateway at \(place) refused the WebSocket upgrade; is \(place) the OpenClaw gateway's port?"
        case let .other(detail):
            return "cannot connect to the gateway at \(place): \(detail)"
        }
    }
}

/// Notes whether the first bytes a plaintext peer sends look like a TLS record (a handshake
/// or an alert), which is how a TLS gateway answers a plain HTTP request. Then steps aside.
final class TLSReplySniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let seen: (Bool) -> Void

    init(seen: @escaping (Bool) -> Void) { self.seen = seen }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)
        if let first { seen(first == 0x15 || first == 0x16) }
        // Pass the bytes on first: a removed handler's context forwards nothing.
        context.fireChannelRead(data)
        if first != nil { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }
}
