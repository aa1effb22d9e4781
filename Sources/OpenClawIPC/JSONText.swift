import FoundationEssentials

/// JSON text in and out, with the settings every process uses: no escaped slashes,
/// sorted keys (stable bytes, stable hashes), and compact output.
public enum JSONText {
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encodeBytes(value), as: UTF8.self)
    }

    public static func encodeBytes<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let json = value as? JSONValue { return json.serialized() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        if type == JSONValue.self { return try JSONValue.parse(Array(text.utf8)) as! T }
        return try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    public static func decode<T: Decodable>(_ type: T.Type, fromBytes bytes: [UInt8]) throws -> T {
        if type == JSONValue.self { return try JSONValue.parse(bytes) as! T }
        return try JSONDecoder().decode(type, from: Data(bytes))
    }
}
