import OpenClawIPC

/// RFC 6455 framing for the CDP client: masked text frames out; text, ping and close in.
/// Named apart from NIOWebSocket's `WebSocketFrame`, the gateway link's frame type.
enum CDPWebSocketFrame {
    enum Inbound {
        case text([UInt8])
        case ping([UInt8])
        case close
    }

    static func encode(text: [UInt8]) -> [UInt8] { encode(opcode: 0x1, payload: text) }

    static func encode(opcode: UInt8, payload: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [0x80 | opcode]
        let count = payload.count
        if count < 126 {
            frame.append(0x80 | UInt8(count))
        } else if count <= 0xFFFF {
            frame += [0x80 | 126, UInt8(count >> 8), UInt8(count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((UInt64(count) >> UInt64(shift)) & 0xFF)) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame.reserveCapacity(frame.count + count)
        for (index, byte) in payload.enumerated() { frame.append(byte ^ mask[index & 3]) }
        return frame
    }

    /// Incremental decoder; continuation frames are joined into one message.
    struct Decoder {
        private var buffer: [UInt8] = []
        private var start = 0
        private var fragments: [UInt8] = []
        private var fragmentedText = false
        /// Largest message accepted (Chromium's screenshots and PDFs are base64 in one message).
        static let maxMessage = 96 << 20

        mutating func append(_ bytes: [UInt8]) {
            if start > 0, start == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                start = 0
            }
            buffer += bytes
        }

        mutating func next() throws(BrowserError) -> Inbound? {
            while true {
                let available = buffer.count - start
                guard available >= 2 else { return nil }
                let first = buffer[start], second = buffer[start + 1]
                var length = Int(second & 0x7F)
                var offset = 2
                if length == 126 {
                    guard available >= 4 else { return nil }
                    length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
                    offset = 4
                } else if length == 127 {
                    guard available >= 10 else { return nil }
                    var value: UInt64 = 0
                    for index in 2..<10 { value = value << 8 | UInt64(buffer[start + index]) }
                    guard value <= UInt64(Self.maxMessage) else { throw BrowserError("CDP message too large") }
                    length = Int(value)
                    offset = 10
                }
                let masked = second & 0x80 != 0
                let maskOffset = offset
                if masked { offset += 4 }
                guard available >= offset + length else { return nil }
                var payload = Array(buffer[(start + offset)..<(start + offset + length)])
                if masked {
                    for index in payload.indices { payload[index] ^= buffer[start + maskOffset + (index & 3)] }
                }
                start += offset + length
                if start > (1 << 20), start * 2 > buffer.count {
                    buffer.removeFirst(start)
                    start = 0
                }
                let fin = first & 0x80 != 0
                switch first & 0x0F {
                case 0x0:
                    fragments += payload
                    guard fragments.count <= Self.maxMessage else { throw BrowserError("CDP message too large") }
                    if fin, fragmentedText {
                        defer { fragments = []; fragmentedText = false }
                        return .text(fragments)
                    }
                case 0x1:
                    if fin { return .text(payload) }
                    fragments = payload
                    fragmentedText = true
                case 0x8: return .close
                case 0x9: return .ping(payload)
                default: continue
                }
            }
        }
    }
}
