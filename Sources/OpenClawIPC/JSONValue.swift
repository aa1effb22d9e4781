/// Any JSON value, for the parts of messages whose shape the receiver does not fix
/// (gateway `details`, invoke params on their way to a handler).
public enum JSONValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(value): try container.encode(value)
        case let .number(value):
            if !value.isFinite {
                try container.encodeNil()  // JSON.stringify(Infinity) is null
            } else if value.rounded() == value, abs(value) < 9.007_199_254_740_992e15 {
                try container.encode(Int64(value))
            } else {
                try container.encode(value)
            }
        case let .string(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case let .object(object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case let .string(value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(value) = self { return value }
        return nil
    }

    public var numberValue: Double? {
        if case let .number(value) = self { return value }
        return nil
    }

    /// The number as an `Int` when it is a whole number JavaScript represents exactly
    /// (|n| ≤ 2^53); nil for fractions, ±Infinity and anything larger. Untrusted numbers are
    /// read through this (or `Double.saturatingInt`): `Int(1e300)` traps.
    public var intValue: Int? {
        guard case let .number(value) = self, value.isFinite, value.rounded() == value,
              abs(value) <= 9_007_199_254_740_992 else { return nil }
        return Int(value)
    }

    public var arrayValue: [JSONValue]? {
        if case let .array(value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case let .object(value) = self { return value }
        return nil
    }

    public var description: String {
        (try? JSONText.encode(self)) ?? "<unencodable>"
    }
}

extension Double {
    /// This number as an `Int`, truncated toward zero and clamped to `Int`'s range; NaN is 0.
    /// For untrusted numbers where "too large" means "as large as allowed" (a timeout).
    public var saturatingInt: Int {
        guard !isNaN else { return 0 }
        if self >= 9.2e18 { return Int.max }
        if self <= -9.2e18 { return Int.min }
        return Int(self)
    }
}

extension Double {
    /// JavaScript's `String(n)`: whole numbers below 1e21 in plain digits, ±Infinity and NaN
    /// by name, other numbers in their shortest round-trip form with JavaScript's exponent
    /// spelling (`1e-7`, `1.5e+300`). Never traps, whatever the number.
    public var javaScriptString: String {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        if self == 0 { return "0" }
        if rounded() == self, abs(self) < 1e21 {
            // Whole and below 2^70: exact in 128 bits.
            return (self < 0 ? "-" : "") + String(UInt128(abs(self)))
        }
        var text = "\(self)"
        if let e = text.firstIndex(of: "e") {
            var exponent = String(text[text.index(after: e)...])
            let sign = exponent.hasPrefix("-") ? "-" : "+"
            exponent = String(exponent.drop { $0 == "-" || $0 == "+" || $0 == "0" })
            text = String(text[..<e]) + "e" + sign + (exponent.isEmpty ? "0" : exponent)
        }
        return text
    }
}

extension JSONValue {
    /// JavaScript truthiness of a JSON value (`undefined`, `null`, `false`, `0`, `NaN` and `""`
    /// are false), as upstream's `if (x)` tests read its fields.
    public static func isTruthy(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: return false
        case let .bool(flag)?: return flag
        case let .number(number)?: return number != 0 && !number.isNaN
        case let .string(text)?: return !text.isEmpty
        default: return true
        }
    }
}
