/// Standard base64 (RFC 4648 §4, padded) held to its one canonical spelling, as upstream's
/// `isCanonicalTerminalUploadBase64` does: length a multiple of 4, only the 64 data
/// characters then at most two `=`, and zero bits where the last data character has unused
/// ones. Anything else is refused, never read leniently (no whitespace, no URL alphabet).
public enum Base64 {
    /// The bytes `text` would decode to (by length and padding; it is not validated).
    public static func decodedSize(_ text: String) -> Int {
        let utf8 = text.utf8
        let padding = utf8.reversed().prefix(2).prefix { $0 == UInt8(ascii: "=") }.count
        return utf8.count / 4 * 3 - padding
    }

    public static func isCanonical(_ text: String) -> Bool {
        decodeCanonical(text, keep: false) != nil
    }

    /// The bytes, or nil when `text` is not canonical base64.
    public static func decodeCanonical(_ text: String) -> [UInt8]? {
        decodeCanonical(text, keep: true)
    }

    private static func decodeCanonical(_ text: String, keep: Bool) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var padding = 0
        if input.last == UInt8(ascii: "=") { padding = input.count >= 2 && input[input.count - 2] == UInt8(ascii: "=") ? 2 : 1 }
        var output: [UInt8] = []
        if keep { output.reserveCapacity(input.count / 4 * 3) }
        var index = 0
        while index < input.count {
            let last = index + 4 == input.count
            var values: [UInt32] = [0, 0, 0, 0]
            let data = last ? 4 - padding : 4
            for offset in 0..<4 {
                if offset >= data { continue }
                guard let value = value(of: input[index + offset]) else { return nil }
                values[offset] = value
            }
            let group = values[0] << 18 | values[1] << 12 | values[2] << 6 | values[3]
            if last, padding == 2, values[1] & 0b1111 != 0 { return nil }
            if last, padding == 1, values[2] & 0b11 != 0 { return nil }
            if keep {
                output.append(UInt8(group >> 16 & 0xFF))
                if data > 2 { output.append(UInt8(group >> 8 & 0xFF)) }
                if data > 3 { output.append(UInt8(group & 0xFF)) }
            }
            index += 4
        }
        return output
    }

    private static func value(of byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(byte - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(byte - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
