// JavaScript string operations upstream relies on, for text that must read as upstream writes it.

/// At most `limit` UTF-16 units of `text` (JavaScript's string length), never half a surrogate
/// pair: upstream's `truncateUtf16Safe`.
public func truncateUTF16(_ text: String, _ limit: Int) -> String {
    guard text.utf16.count > limit else { return text }
    var units = Array(text.utf16.prefix(limit))
    if let last = units.last, UTF16.isLeadSurrogate(last) { units.removeLast() }
    return String(decoding: units, as: UTF16.self)
}

/// JavaScript's `decodeURIComponent`: `%XX` escapes (two hex digits) to bytes, which must form
/// UTF-8; nil where it would throw.
public func percentDecode(_ text: String) -> String? {
    func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
    var bytes: [UInt8] = []
    var iterator = Array(text.utf8).makeIterator()
    while let byte = iterator.next() {
        guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
        guard let high = iterator.next().flatMap(hex), let low = iterator.next().flatMap(hex) else { return nil }
        bytes.append(high << 4 | low)
    }
    return String(validating: bytes, as: UTF8.self)
}
