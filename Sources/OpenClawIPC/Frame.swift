import NIOCore

/// Limits of the IPC wire. Both sides enforce them; a peer that exceeds one is in violation.
public enum IPCLimits {
    /// Largest gateway payload the NetWorker accepts after hello (`policy.maxPayload`, 25 MiB).
    public static let maxGatewayPayload = 25 * 1024 * 1024
    /// Room for the IPC envelope around a maximal gateway payload.
    public static let envelopeAllowance = 64 * 1024
    /// Largest frame body (the JSON object), in bytes: a 25 MiB payload plus envelope, no larger.
    public static let maxFrameBody = maxGatewayPayload + envelopeAllowance
    /// Most requests a worker may have outstanding with the Supervisor at once
    /// (invokes and signature requests). A NetWorker answers further invokes itself.
    public static let maxInFlight = 256
    /// The longest deadline a timer is armed with (2^31 − 1 ms, as the gateway's).
    public static let maxTimerMs = 2_147_483_647
}

/// Why a byte stream is not a valid sequence of IPC frames.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    /// The length prefix announced a zero-length body.
    case emptyFrame
    /// The length prefix announced more than `IPCLimits.maxFrameBody` bytes.
    case frameTooLarge(length: Int, limit: Int)
    /// The stream ended in the middle of a frame.
    case truncated(expected: Int, received: Int)

    public var description: String {
        switch self {
        case .emptyFrame:
            return "zero-length frame"
        case let .frameTooLarge(length, limit):
            return "frame of \(length) bytes exceeds the \(limit)-byte limit"
        case let .truncated(expected, received):
            return "stream ended inside a frame (\(received) of \(expected) bytes)"
        }
    }
}

/// Splits a byte stream into frame bodies: 4-byte big-endian length, then that many bytes.
///
/// A plain value type, driven by `append` and `next`, so it can be tested without a socket.
/// It rejects an oversize length as soon as the 4 header bytes have arrived, so a peer
/// cannot make it buffer more than one maximal frame.
public struct FrameSplitter {
    public let maxBody: Int
    private var buffer: ByteBuffer

    public init(maxBody: Int = IPCLimits.maxFrameBody) {
        self.maxBody = maxBody
        self.buffer = ByteBufferAllocator().buffer(capacity: 0)
    }

    /// Adds received bytes.
    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// Adds received bytes.
    public mutating func append<Bytes: Sequence>(contentsOf bytes: Bytes) where Bytes.Element == UInt8 {
        buffer.writeBytes(bytes)
    }

    /// The next complete frame body, `nil` if more bytes are needed.
    public mutating func next() throws(FrameError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        let bodyLength = Int(length)
        if bodyLength == 0 { throw .emptyFrame }
        if bodyLength > maxBody { throw .frameTooLarge(length: bodyLength, limit: maxBody) }
        guard buffer.readableBytes >= 4 + bodyLength else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readSlice(length: bodyLength)!
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 1 << 20 {
            buffer.discardReadBytes()
        }
        return body
    }

    /// Call at end of stream: throws if a partial frame is pending.
    public func finish() throws(FrameError) {
        let pending = buffer.readableBytes
        guard pending > 0 else { return }
        if pending < 4 { throw .truncated(expected: 4, received: pending) }
        let length = Int(buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self)!)
        throw .truncated(expected: 4 + length, received: pending)
    }

    /// Bytes received but not yet returned as a frame.
    public var pendingBytes: Int { buffer.readableBytes }
}

/// Writes one frame: the big-endian length of `body`, then `body`.
public func writeFrame(_ body: ByteBuffer, into out: inout ByteBuffer) {
    out.writeInteger(UInt32(body.readableBytes), endianness: .big)
    var body = body
    out.writeBuffer(&body)
}
