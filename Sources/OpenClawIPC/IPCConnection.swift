import Glibc
import Logging
import NIOCore
import NIOPosix

/// The fd number on which every worker finds its end of the Supervisor's socketpair.
public let workerIPCDescriptor: CInt = 3

/// Why an IPC link was torn down by this side.
public enum IPCViolation: Error, CustomStringConvertible {
    case frame(FrameError)
    case message(MessageDecodeError)
    /// The peer does not read what we send (its input buffer stays full).
    case peerNotReading(bufferedBytes: Int)
    /// A well-formed message the receiver's policy refuses (set by the receiver).
    case refused(String)

    public var description: String {
        switch self {
        case let .frame(error): return error.description
        case let .message(error): return error.description
        case let .peerNotReading(bytes): return "peer is not reading (\(bytes) bytes queued)"
        case let .refused(reason): return reason
        }
    }
}

/// One end of a worker socketpair, as typed messages.
///
/// Callbacks run on the connection's event loop in arrival order. A frame or message error
/// closes the link and is reported once through `onViolation`, then `onClose`. A `send` on the
/// loop writes at once, so a write that fails (the peer died) may run `onClose` before `send`
/// returns: callers must not assume they finish what they were doing first.
/// `send` never blocks: when the peer stops reading and the queue passes the high-water mark,
/// the link is closed as a violation instead of buffering without bound.
public final class IPCConnection<Inbound: IPCMessage, Outbound: IPCMessage>: @unchecked Sendable {
    public let channel: Channel
    public var eventLoop: EventLoop { channel.eventLoop }

    /// Bytes queued towards a peer before the link is declared dead.
    public static var maxQueuedBytes: Int { 2 * IPCLimits.maxFrameBody + 1024 * 1024 }

    private init(channel: Channel) {
        self.channel = channel
    }

    /// Wraps an already connected stream socket `fd` (ownership moves to the connection).
    /// Call `startReading` once the connection is stored.
    public static func adopt(
        fd: CInt,
        group: EventLoopGroup,
        onMessage: @escaping (Inbound) -> Void,
        onViolation: @escaping (IPCViolation) -> Void,
        onClose: @escaping () -> Void
    ) -> EventLoopFuture<IPCConnection> {
        let handler = IPCInboundHandler<Inbound>(onMessage: onMessage, onViolation: onViolation, onClose: onClose)
        return ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: false)
            // Nothing is read until the owner has stored the connection (`startReading`),
            // so no message can arrive before the owner can answer it.
            .channelOption(.autoRead, value: false)
            .channelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: maxQueuedBytes))
            .channelInitializer { channel in
                channel.pipeline.addHandler(handler)
            }
            .withConnectedSocket(fd)
            .map { IPCConnection(channel: $0) }
    }

    /// A worker's link to the Supervisor (its socket on `workerIPCDescriptor`), with violations
    /// logged; a worker that cannot open it exits 70. Call `startReading` once it is stored.
    public static func adoptSupervisorLink(
        group: EventLoopGroup,
        logger: Logger,
        onMessage: @escaping (Inbound) -> Void,
        onClose: @escaping () -> Void
    ) -> IPCConnection {
        let adopted = adopt(
            fd: workerIPCDescriptor, group: group, onMessage: onMessage,
            onViolation: { violation in logger.error("supervisor link violation", metadata: ["reason": "\(violation)"]) },
            onClose: onClose)
        do {
            return try adopted.wait()
        } catch {
            logger.error("cannot open the supervisor link", metadata: ["error": "\(error)"])
            exit(70)
        }
    }

    /// Starts delivering inbound messages.
    public func startReading() {
        channel.setOption(.autoRead, value: true).whenSuccess { [channel] in channel.read() }
    }

    /// Sends one message. Safe to call from any thread; on the connection's event loop it is
    /// written at once (not after the current task), so a latency-critical message (a run
    /// order) leaves before whatever its sender does next (an audit log line).
    public func send(_ message: Outbound) {
        send(contentsOf: CollectionOfOne(message))
    }

    /// Sends messages in order in one write (an event and the invoke result it precedes).
    public func send<Messages: Collection>(contentsOf messages: Messages) where Messages.Element == Outbound {
        var frames = ByteBuffer()
        do {
            for message in messages {
                var frame = try IPCCodec.encodeFrame(message)
                frames.writeBuffer(&frame)
            }
        } catch {
            // Only our own types are encoded here; a failure is a programming error we log via close.
            channel.close(promise: nil)
            return
        }
        if channel.eventLoop.inEventLoop {
            write(frames)
        } else {
            channel.eventLoop.execute { [self] in write(frames) }
        }
    }

    private func write(_ frames: ByteBuffer) {
        guard channel.isActive else { return }
        if !channel.isWritable {
            channel.pipeline.fireErrorCaught(IPCViolation.peerNotReading(bufferedBytes: Self.maxQueuedBytes))
            return
        }
        channel.writeAndFlush(frames, promise: nil)
    }

    /// Sends `message`, then closes once it is written (or immediately if the link is gone).
    public func sendAndClose(_ message: Outbound) {
        guard let frame = try? IPCCodec.encodeFrame(message) else {
            close()
            return
        }
        channel.writeAndFlush(NIOAny(frame)).whenComplete { [channel] _ in
            channel.close(promise: nil)
        }
    }

    public func close() {
        channel.close(promise: nil)
    }

    /// Tears the link down as a violation the receiver detected in a well-formed message.
    public func refuse(_ reason: String) {
        channel.eventLoop.execute { [channel] in
            channel.pipeline.fireErrorCaught(IPCViolation.refused(reason))
        }
    }
}

final class IPCInboundHandler<Inbound: IPCMessage>: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var splitter = FrameSplitter()
    private var failed = false
    private let onMessage: (Inbound) -> Void
    private let onViolation: (IPCViolation) -> Void
    private let onClose: () -> Void

    init(onMessage: @escaping (Inbound) -> Void, onViolation: @escaping (IPCViolation) -> Void, onClose: @escaping () -> Void) {
        self.onMessage = onMessage
        self.onViolation = onViolation
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        splitter.append(unwrapInboundIn(data))
        do {
            while !failed, let body = try splitter.next() {
                let message = try decode(body)
                onMessage(message)
            }
        } catch let error as IPCViolation {
            fail(context: context, error)
        } catch let error as FrameError {
            fail(context: context, .frame(error))
        } catch {
            fail(context: context, .refused(String(describing: error)))
        }
    }

    private func decode(_ body: ByteBuffer) throws -> Inbound {
        do {
            return try IPCCodec.decode(body, as: Inbound.self)
        } catch {
            throw IPCViolation.message(error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let violation = error as? IPCViolation {
            fail(context: context, violation)
        } else {
            // Socket errors (ECONNRESET, EPIPE): the peer is gone; not a violation.
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !failed {
            do {
                try splitter.finish()
            } catch {
                failed = true
                onViolation(.frame(error))
            }
        }
        onClose()
    }

    private func fail(context: ChannelHandlerContext, _ violation: IPCViolation) {
        guard !failed else { return }
        failed = true
        onViolation(violation)
        context.close(promise: nil)
    }
}
