import GatewayProtocol
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import OpenClawIPC

/// `openclaw-node doctor`'s reachability check, run inside the confined NetWorker: TCP
/// connect and, for `wss://`, the TLS handshake (with the pin when one is set). It reports the
/// leaf certificate's SHA-256 and never sends a byte of the gateway protocol, so no
/// credential can reach an unpinned or wrong peer.
public enum GatewayProbe {
    public static func check(url: String, pin: String?, timeout: TimeAmount = .seconds(5)) -> JSONValue {
        guard let target = GatewayTarget(url: url) else {
            return .object(["reachable": .bool(false), "error": .string("unusable gateway url \(url)")])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var report: [String: JSONValue] = ["url": .string(url), "tls": .bool(target.secure), "reachable": .bool(false)]
        do {
            let context = target.secure ? try GatewayTLS.context(pinned: pin != nil) : nil
            let handshake = group.next().makePromise(of: Void.self)
            let presented = AttemptObservations()
            let channel = try ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let context {
                            // The link's own TLS check, recording what the peer presented so a
                            // mismatch can be reported with the actual value.
                            try channel.pipeline.syncOperations.addHandler(try GatewayTLS.handler(
                                context, host: target.host, pin: pin) { presented.presented = $0 })
                            try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(done: handshake))
                        } else {
                            handshake.succeed(())
                        }
                    }
                }
                .connect(host: target.host, port: target.port)
                .wait()
            report["reachable"] = .bool(true)
            defer { channel.close(promise: nil) }
            let deadline = channel.eventLoop.scheduleTask(in: timeout) { handshake.fail(ChannelError.connectTimeout(timeout)) }
            do {
                try handshake.futureResult.wait()
                deadline.cancel()
                if target.secure {
                    report["handshake"] = .bool(true)
                    let certificate = try channel.pipeline.handler(type: NIOSSLClientHandler.self)
                        .flatMap { $0.peerCertificate.map { channel.eventLoop.makeSucceededFuture($0) }
                            ?? channel.eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState) }
                        .wait()
                    let fingerprint = GatewayTLS.fingerprint(der: try certificate.toDERBytes())
                    report["leafSha256"] = .string(fingerprint)
                    report["pinMatched"] = pin.map { .bool($0 == fingerprint) } ?? .null
                }
            } catch {
                deadline.cancel()
                report["handshake"] = .bool(false)
                if let fingerprint = presented.presented { report["leafSha256"] = .string(fingerprint) }
                if pin != nil { report["pinMatched"] = .bool(presented.presented == pin) }
                report["error"] = .string("TLS handshake failed: \(error)")
            }
        } catch {
            report["error"] = .string("\(error)")
        }
        return .object(report)
    }
}

/// Completes when the TLS handshake has finished (or fails with the channel's error).
private final class HandshakeWatcher: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>
    init(done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent { done.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(ChannelError.ioOnClosedChannel)
    }
}
