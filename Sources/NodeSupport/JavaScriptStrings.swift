/// At most `limit` UTF-16 units of `text` (JavaScript's string length), never half a surrogate
/// pair: upstream's `truncateUtf16Safe`.
public func truncateUTF16(_ text: String, _ limit: Int) -> String {
    guard text.utf16.count > limit else { return text }
    var units = Array(text.utf16.prefix(limit))
    if let last = units.last, UTF16.isLeadSurrogate(last) { units.removeLast() }
    return String(decoding: units, as: UTF16.self)
}
