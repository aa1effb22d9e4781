/// Where a JSON5 text first stops being valid (1-based line and column, and a short reason),
/// or nil when the scanner finds no syntax error. Used only after the real decoder failed.
///
/// Foundation's `JSONDecoder` (with `allowsJSON5`) reports a syntax error only as "The given
/// data was not valid JSON." without a position. This re-reads the bytes with the same rules
/// as swift-foundation's JSON5 scanner (comments, single quotes, unquoted keys, hex, `+`/`.`
/// numbers, Infinity/NaN, trailing commas) and says where the text first goes wrong. It only
/// validates: it builds no values. With `json5: false` it applies plain JSON's rules.
///
/// Lines are separated by `\n`; columns count bytes from 1 on each line (a tab counts 1). A
/// leading UTF-8 byte-order mark is skipped and does not count as columns.
enum JSON5Locator {
    struct Location: Equatable {
        var line: Int
        var column: Int
        var reason: String
    }

    static func firstError(in bytes: [UInt8], json5: Bool = true) -> Location? {
        var reader = Reader(bytes: bytes, json5: json5)
        do {
            try reader.scanDocument()
            return nil
        } catch let failure as Failure {
            return location(of: failure, in: bytes, textStart: reader.textStart)
        } catch {
            return nil
        }
    }

    /// 1-based line and column of a byte offset (the offset may be `bytes.count`, for end of file).
    private static func location(of failure: Failure, in bytes: [UInt8], textStart: Int) -> Location {
        let end = max(textStart, min(failure.offset, bytes.count))
        var line = 1
        var lineStart = textStart
        var index = textStart
        while index < end {
            if bytes[index] == Byte.newline {
                line += 1
                lineStart = index + 1
            }
            index += 1
        }
        return Location(line: line, column: end - lineStart + 1, reason: failure.reason)
    }

    // MARK: - Scanner

    private struct Failure: Error {
        var offset: Int
        var reason: String
    }

    private enum Byte {
        static let newline = UInt8(ascii: "\n")
        static let carriageReturn = UInt8(ascii: "\r")
        static let space = UInt8(ascii: " ")
        static let tab = UInt8(ascii: "\t")
        static let verticalTab: UInt8 = 0x0B
        static let formFeed: UInt8 = 0x0C
        static let rawNoBreakSpace: UInt8 = 0xA0
        static let quote = UInt8(ascii: "\"")
        static let apostrophe = UInt8(ascii: "'")
        static let backslash = UInt8(ascii: "\\")
        static let slash = UInt8(ascii: "/")
        static let asterisk = UInt8(ascii: "*")
        static let openBrace = UInt8(ascii: "{")
        static let closeBrace = UInt8(ascii: "}")
        static let openBracket = UInt8(ascii: "[")
        static let closeBracket = UInt8(ascii: "]")
        static let comma = UInt8(ascii: ",")
        static let colon = UInt8(ascii: ":")
        static let plus = UInt8(ascii: "+")
        static let minus = UInt8(ascii: "-")
        static let dot = UInt8(ascii: ".")
        static let zero = UInt8(ascii: "0")
        static let nine = UInt8(ascii: "9")
        static let lowerX = UInt8(ascii: "x")
        static let lowerE = UInt8(ascii: "e")
        static let lowerU = UInt8(ascii: "u")
        static let underscore = UInt8(ascii: "_")
        static let dollar = UInt8(ascii: "$")
    }

    private enum Container {
        case object
        case array
    }

    /// What the scanner expects next; `afterComma` is the offset of the comma just read, if any.
    private enum Expect {
        case value
        case keyOrClose(afterComma: Int?)
        case elementOrClose(afterComma: Int?)
        case commaOrClose
    }

    /// Foundation's JSON5 scanner refuses objects and arrays nested deeper than this.
    private static let maximumDepth = 512

    private struct Reader {
        let bytes: [UInt8]
        let json5: Bool
        /// Offset of the first byte after a UTF-8 byte-order mark (0 when there is none).
        let textStart: Int
        var pos: Int

        init(bytes: [UInt8], json5: Bool) {
            self.bytes = bytes
            self.json5 = json5
            let hasByteOrderMark = bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
            self.textStart = hasByteOrderMark ? 3 : 0
            self.pos = textStart
        }

        // MARK: Document structure

        /// Whether `c` is the `closer` of the open container (then consumed and popped); a
        /// trailing comma before it is an error in plain JSON.
        mutating func closes(_ c: UInt8, _ closer: UInt8, afterComma commaOffset: Int?, stack: inout [Container]) throws -> Bool {
            guard c == closer else { return false }
            if let commaOffset, !json5 {
                throw Failure(offset: commaOffset, reason: "trailing comma is not allowed in json")
            }
            pos += 1
            stack.removeLast()
            return true
        }

        mutating func scanDocument() throws {
            var stack: [Container] = []
            var expect = Expect.value
            while true {
                try skipTrivia()
                switch expect {
                case .value:
                    let c = try current()
                    if c == Byte.openBrace || c == Byte.openBracket {
                        guard stack.count < JSON5Locator.maximumDepth else {
                            throw Failure(offset: pos, reason: "too deeply nested")
                        }
                        pos += 1
                        if c == Byte.openBrace {
                            stack.append(.object)
                            expect = .keyOrClose(afterComma: nil)
                        } else {
                            stack.append(.array)
                            expect = .elementOrClose(afterComma: nil)
                        }
                    } else {
                        try scalar(c)
                        expect = .commaOrClose
                    }

                case .keyOrClose(let commaOffset):
                    let c = try current()
                    if try closes(c, Byte.closeBrace, afterComma: commaOffset, stack: &stack) {
                        expect = .commaOrClose
                        continue
                    }
                    try key(c)
                    try skipTrivia()
                    let separator = try current()
                    guard separator == Byte.colon else {
                        throw Failure(offset: pos, reason: "expected ':' after key")
                    }
                    pos += 1
                    expect = .value

                case .elementOrClose(let commaOffset):
                    let c = try current()
                    if try closes(c, Byte.closeBracket, afterComma: commaOffset, stack: &stack) {
                        expect = .commaOrClose
                        continue
                    }
                    if c == Byte.comma {
                        throw unexpected(at: pos)
                    }
                    expect = .value

                case .commaOrClose:
                    guard let top = stack.last else {
                        if pos < bytes.count {
                            throw Failure(offset: pos, reason: "unexpected text after the end")
                        }
                        return
                    }
                    let c = try current()
                    let isObject: Bool
                    switch top {
                    case .object: isObject = true
                    case .array: isObject = false
                    }
                    if c == Byte.comma {
                        let commaOffset = pos
                        pos += 1
                        expect = isObject ? .keyOrClose(afterComma: commaOffset) : .elementOrClose(afterComma: commaOffset)
                    } else if c == (isObject ? Byte.closeBrace : Byte.closeBracket) {
                        pos += 1
                        stack.removeLast()
                        expect = .commaOrClose
                    } else {
                        throw Failure(offset: pos, reason: isObject ? "expected ',' or '}'" : "expected ',' or ']'")
                    }
                }
            }
        }

        /// The byte at `pos`, or an end-of-file failure.
        func current() throws -> UInt8 {
            guard pos < bytes.count else { throw endOfFile() }
            return bytes[pos]
        }

        func endOfFile() -> Failure {
            Failure(offset: bytes.count, reason: "unexpected end of file")
        }

        func unexpected(at offset: Int) -> Failure {
            Failure(offset: offset, reason: "unexpected character \(describe(at: offset))")
        }

        // MARK: Whitespace and comments

        mutating func skipTrivia() throws {
            while pos < bytes.count {
                let c = bytes[pos]
                if c == Byte.space || c == Byte.tab || c == Byte.newline || c == Byte.carriageReturn {
                    pos += 1
                    continue
                }
                if json5 && (c == Byte.verticalTab || c == Byte.formFeed || c == Byte.rawNoBreakSpace) {
                    pos += 1
                    continue
                }
                if c == Byte.slash && pos + 1 < bytes.count {
                    let next = bytes[pos + 1]
                    if next == Byte.slash || next == Byte.asterisk {
                        guard json5 else {
                            throw Failure(offset: pos, reason: "comments are not allowed in json")
                        }
                        if next == Byte.slash {
                            pos += 2
                            while pos < bytes.count && bytes[pos] != Byte.newline && bytes[pos] != Byte.carriageReturn {
                                pos += 1
                            }
                        } else {
                            let start = pos
                            pos += 2
                            var closed = false
                            while pos + 1 < bytes.count {
                                if bytes[pos] == Byte.asterisk && bytes[pos + 1] == Byte.slash {
                                    pos += 2
                                    closed = true
                                    break
                                }
                                pos += 1
                            }
                            guard closed else {
                                throw Failure(offset: start, reason: "unterminated comment")
                            }
                        }
                        continue
                    }
                }
                return
            }
        }

        // MARK: Keys

        mutating func key(_ c: UInt8) throws {
            if c == Byte.quote || (json5 && c == Byte.apostrophe) {
                try string()
                return
            }
            guard json5 else {
                if isIdentifierStart(c) || c == Byte.apostrophe {
                    throw Failure(offset: pos, reason: "expected a double-quoted key")
                }
                throw unexpected(at: pos)
            }
            guard isIdentifierStart(c) || c == Byte.backslash else {
                if isDigit(c) {
                    throw Failure(offset: pos, reason: "unquoted key cannot start with a digit")
                }
                throw unexpected(at: pos)
            }
            while pos < bytes.count {
                let b = bytes[pos]
                if isIdentifierCharacter(b) {
                    pos += 1
                } else if b == Byte.backslash {
                    // An unquoted key may spell a character as \uXXXX.
                    let escapeStart = pos
                    pos += 1
                    guard pos < bytes.count else { throw endOfFile() }
                    guard bytes[pos] == Byte.lowerU else {
                        throw Failure(offset: escapeStart, reason: "invalid escape sequence")
                    }
                    pos += 1
                    for _ in 0..<4 {
                        guard pos < bytes.count else { throw endOfFile() }
                        guard isHexDigit(bytes[pos]) else {
                            throw Failure(offset: escapeStart, reason: "invalid escape sequence")
                        }
                        pos += 1
                    }
                } else {
                    return
                }
            }
        }

        // MARK: Values

        mutating func scalar(_ c: UInt8) throws {
            if c == Byte.quote {
                try string()
            } else if c == Byte.apostrophe {
                guard json5 else {
                    throw Failure(offset: pos, reason: "single-quoted strings are not allowed in json")
                }
                try string()
            } else if c == Byte.minus || isDigit(c) || (json5 && (c == Byte.plus || c == Byte.dot)) {
                try number()
            } else if isLetter(c) || c == Byte.underscore || c == Byte.dollar {
                try word(allowed: json5 ? ["true", "false", "null", "Infinity", "NaN"] : ["true", "false", "null"])
            } else if c == Byte.comma || c == Byte.closeBrace || c == Byte.closeBracket || c == Byte.colon {
                throw Failure(offset: pos, reason: "missing value before \(describe(at: pos))")
            } else {
                throw unexpected(at: pos)
            }
        }

        /// A bare word: one of the `allowed` literals, else an error at its first byte.
        mutating func word(allowed: [String]) throws {
            let start = pos
            while pos < bytes.count && isIdentifierCharacter(bytes[pos]) {
                pos += 1
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            if allowed.contains(text) { return }
            if pos == bytes.count && !text.isEmpty && allowed.contains(where: { $0.hasPrefix(text) }) {
                throw endOfFile()
            }
            if text.isEmpty { throw unexpected(at: start) }
            let shown = text.count > 24 ? String(text.prefix(24)) + "…" : text
            throw Failure(offset: start, reason: "invalid value '\(shown)'")
        }

        mutating func number() throws {
            let count = bytes.count
            if bytes[pos] == Byte.minus || (json5 && bytes[pos] == Byte.plus) {
                pos += 1
            }
            let first = try current()
            if json5 && isLetter(first) {
                try word(allowed: ["Infinity", "NaN"])
                return
            }
            if json5 && first == Byte.zero && pos + 1 < count && (bytes[pos + 1] | 0x20) == Byte.lowerX {
                pos += 2
                let digitsStart = pos
                while pos < count && isHexDigit(bytes[pos]) {
                    pos += 1
                }
                if pos == digitsStart { throw digitExpected() }
                try endOfNumber()
                return
            }
            var integerDigits = 0
            if first == Byte.zero {
                pos += 1
                integerDigits = 1
                if pos < count && isDigit(bytes[pos]) {
                    throw Failure(offset: pos, reason: "leading zero in number")
                }
            } else {
                while pos < count && isDigit(bytes[pos]) {
                    pos += 1
                    integerDigits += 1
                }
            }
            var fractionDigits = 0
            if pos < count && bytes[pos] == Byte.dot && (json5 || integerDigits > 0) {
                pos += 1
                while pos < count && isDigit(bytes[pos]) {
                    pos += 1
                    fractionDigits += 1
                }
                if !json5 && fractionDigits == 0 { throw digitExpected() }
            }
            if integerDigits == 0 && fractionDigits == 0 { throw digitExpected() }
            if pos < count && (bytes[pos] | 0x20) == Byte.lowerE {
                pos += 1
                if pos < count && (bytes[pos] == Byte.plus || bytes[pos] == Byte.minus) {
                    pos += 1
                }
                var exponentDigits = 0
                while pos < count && isDigit(bytes[pos]) {
                    pos += 1
                    exponentDigits += 1
                }
                if exponentDigits == 0 { throw digitExpected() }
            }
            try endOfNumber()
        }

        /// A digit was required at `pos`.
        func digitExpected() -> Failure {
            pos < bytes.count ? Failure(offset: pos, reason: "invalid number") : endOfFile()
        }

        /// A number must not run straight into a letter, digit or another decimal point.
        func endOfNumber() throws {
            if pos < bytes.count && (isIdentifierCharacter(bytes[pos]) || bytes[pos] == Byte.dot) {
                throw Failure(offset: pos, reason: "invalid number")
            }
        }

        /// A string in double or (JSON5) single quotes, starting at its opening quote.
        mutating func string() throws {
            let start = pos
            let quote = bytes[pos]
            pos += 1
            while true {
                guard pos < bytes.count else {
                    throw Failure(offset: start, reason: "unterminated string")
                }
                let c = bytes[pos]
                if c == quote {
                    pos += 1
                    return
                }
                if c == Byte.backslash {
                    try escape(stringStart: start)
                    continue
                }
                if c == Byte.newline || c == Byte.carriageReturn {
                    throw Failure(offset: pos, reason: "newline inside string")
                }
                if c < 0x20 {
                    throw Failure(offset: pos, reason: "control character inside string")
                }
                pos += 1
            }
        }

        /// A backslash escape inside a string, starting at the backslash.
        mutating func escape(stringStart: Int) throws {
            let escapeStart = pos
            pos += 1
            guard pos < bytes.count else {
                throw Failure(offset: stringStart, reason: "unterminated string")
            }
            let c = bytes[pos]
            pos += 1
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"),
                 UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                return
            case UInt8(ascii: "u"):
                try hexEscape(digits: 4, escapeStart: escapeStart, stringStart: stringStart)
                return
            default:
                break
            }
            if json5 {
                switch c {
                case Byte.apostrophe, Byte.newline:
                    return
                case Byte.carriageReturn:
                    // A line continuation may end in \r\n.
                    if pos < bytes.count && bytes[pos] == Byte.newline { pos += 1 }
                    return
                case Byte.lowerX:
                    try hexEscape(digits: 2, escapeStart: escapeStart, stringStart: stringStart)
                    return
                default:
                    break
                }
            }
            throw Failure(offset: escapeStart, reason: "invalid escape sequence")
        }

        mutating func hexEscape(digits: Int, escapeStart: Int, stringStart: Int) throws {
            var value: UInt32 = 0
            for _ in 0..<digits {
                guard pos < bytes.count else {
                    throw Failure(offset: stringStart, reason: "unterminated string")
                }
                guard let digit = hexValue(bytes[pos]) else {
                    throw Failure(offset: escapeStart, reason: "invalid escape sequence")
                }
                value = value * 16 + UInt32(digit)
                pos += 1
            }
            // Foundation's JSON5 reader refuses an escaped NUL.
            if json5 && value == 0 {
                throw Failure(offset: escapeStart, reason: "escaped null character")
            }
        }

        // MARK: Character classes

        func isDigit(_ c: UInt8) -> Bool {
            c >= Byte.zero && c <= Byte.nine
        }

        func isLetter(_ c: UInt8) -> Bool {
            let lower = c | 0x20
            return lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "z")
        }

        func hexValue(_ c: UInt8) -> UInt8? {
            if isDigit(c) { return c - Byte.zero }
            let lower = c | 0x20
            if lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "f") { return lower - UInt8(ascii: "a") + 10 }
            return nil
        }

        func isHexDigit(_ c: UInt8) -> Bool {
            hexValue(c) != nil
        }

        /// Letters, `_`, `$` and (leniently) any non-ASCII byte.
        func isIdentifierStart(_ c: UInt8) -> Bool {
            isLetter(c) || c == Byte.underscore || c == Byte.dollar || c >= 0x80
        }

        func isIdentifierCharacter(_ c: UInt8) -> Bool {
            isIdentifierStart(c) || isDigit(c)
        }

        // MARK: Describing a character

        /// `','` for printable ASCII, `"'"` for an apostrophe, `'é'` for a visible non-ASCII
        /// character, `U+0009` for control, format and space characters, `byte 0xFF` for bad UTF-8.
        func describe(at offset: Int) -> String {
            let c = bytes[offset]
            if c == Byte.apostrophe { return "\"'\"" }
            if c > 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
            if c < 0x80 { return "U+" + hex(UInt32(c), width: 4) }
            var iterator = bytes[offset...].makeIterator()
            var decoder = UTF8()
            guard case .scalarValue(let scalar) = decoder.decode(&iterator) else {
                return "byte 0x" + hex(UInt32(c), width: 2)
            }
            if scalar.properties.isWhitespace { return "U+" + hex(scalar.value, width: 4) }
            switch scalar.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned,
                 .nonspacingMark, .spacingMark, .enclosingMark,
                 .spaceSeparator, .lineSeparator, .paragraphSeparator:
                return "U+" + hex(scalar.value, width: 4)
            default:
                return "'\(Character(scalar))'"
            }
        }

        func hex(_ value: UInt32, width: Int) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
    }
}
