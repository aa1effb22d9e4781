import FoundationEssentials
import NIOCore

/// A closed set of messages one side of an IPC link may send.
///
/// On the wire every message is one JSON object whose `type` member names its `Kind`;
/// the other members are the payload. Decoding an unknown `type` is an error, never a default.
public protocol IPCMessage: Sendable {
    associatedtype Kind: RawRepresentable & CaseIterable & Hashable & Sendable where Kind.RawValue == String
    var kind: Kind { get }
    /// Decodes the payload of a message whose `type` was `kind`.
    static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self
    /// Encodes the payload members (not `type`).
    func encodePayload(to encoder: Encoder) throws
    /// The payload members of a message sent on every invoke, written without `Codable`;
    /// nil (the default) encodes through `Codable`.
    var directPayload: [String: JSONValue]? { get }
    /// The message of `kind` read from already parsed members without `Codable`, or nil
    /// (the default, and the answer to anything unexpected) to decode through `Codable`,
    /// which then also explains a malformed payload.
    static func decodeDirect(kind: Kind, members: [String: JSONValue]) -> Self?
}

extension IPCMessage {
    public var directPayload: [String: JSONValue]? { nil }
    public static func decodeDirect(kind: Kind, members: [String: JSONValue]) -> Self? { nil }
}

/// Why a frame body is not a valid message. Each case is a protocol violation by the sender.
public enum MessageDecodeError: Error, Equatable, CustomStringConvertible {
    case invalidUTF8
    case notJSON(String)
    case notAnObject
    case missingType
    case unknownType(String)
    case invalidPayload(type: String, reason: String)

    public var description: String {
        switch self {
        case .invalidUTF8: return "frame is not valid UTF-8"
        case let .notJSON(reason): return "frame is not JSON (\(reason))"
        case .notAnObject: return "frame is not a JSON object"
        case .missingType: return "frame has no string `type`"
        case let .unknownType(type): return "unknown message type \"\(type.prefix(64))\""
        case let .invalidPayload(type, reason): return "invalid \"\(type)\" message: \(reason)"
        }
    }
}

/// Encodes and decodes `IPCMessage`s to and from frame bodies.
public enum IPCCodec {
    public static func encode<M: IPCMessage>(_ message: M) throws -> ByteBuffer {
        if var members = message.directPayload {
            members["type"] = .string(message.kind.rawValue)
            return ByteBuffer(bytes: JSONValue.object(members).serialized())
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = try encoder.encode(Envelope(message: message))
        return ByteBuffer(bytes: data)
    }

    /// Encodes a message as a complete frame (length prefix included).
    public static func encodeFrame<M: IPCMessage>(_ message: M) throws -> ByteBuffer {
        let body = try encode(message)
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 4)
        writeFrame(body, into: &out)
        return out
    }

    public static func decode<M: IPCMessage>(_ body: ByteBuffer, as type: M.Type = M.self) throws(MessageDecodeError) -> M {
        let bytes = body.readableBytesView
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .invalidUTF8 }
        // The invoke path's messages: parsed once by the direct reader, no `Codable`.
        if let message = decodeDirect(Array(bytes), as: M.self) { return message }
        return try decodeCodable(Array(bytes), as: M.self)
    }

    /// The direct reader alone: nil when it does not take this body (then `Codable` decides).
    static func decodeDirect<M: IPCMessage>(_ bytes: [UInt8], as type: M.Type) -> M? {
        guard let parsed = try? JSONValue.parse(bytes), case let .object(members) = parsed,
              case let .string(type)? = members["type"], let kind = M.Kind(rawValue: type) else { return nil }
        return M.decodeDirect(kind: kind, members: members)
    }

    /// The `Codable` path alone (the fuzz target checks it agrees with the direct reader).
    static func decodeCodable<M: IPCMessage>(_ bytes: [UInt8], as type: M.Type) throws(MessageDecodeError) -> M {
        do {
            return try JSONDecoder().decode(Envelope<M>.self, from: Data(bytes)).message
        } catch let error as MessageDecodeError {
            throw error
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            throw .notJSON(Self.reason(context))
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            throw .notAnObject
        } catch {
            throw .notJSON(String(describing: error))
        }
    }

    static func reason(_ context: DecodingError.Context) -> String {
        if let underlying = context.underlyingError { return String(describing: underlying) }
        return context.debugDescription
    }
}

private struct TypeKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    static let type = TypeKey(stringValue: "type")
}

private struct Envelope<M: IPCMessage>: Codable {
    let message: M

    init(message: M) { self.message = message }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: TypeKey.self)
        guard let type = try? container.decode(String.self, forKey: .type) else {
            throw MessageDecodeError.missingType
        }
        guard let kind = M.Kind(rawValue: type) else { throw MessageDecodeError.unknownType(type) }
        do {
            message = try M.decodePayload(kind: kind, from: decoder)
        } catch let error as MessageDecodeError {
            throw error
        } catch let error as DecodingError {
            throw MessageDecodeError.invalidPayload(type: type, reason: Self.describe(error))
        } catch {
            throw MessageDecodeError.invalidPayload(type: type, reason: String(describing: error))
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: TypeKey.self)
        try container.encode(message.kind.rawValue, forKey: .type)
        try message.encodePayload(to: encoder)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case let .keyNotFound(key, context):
            let prefix = path(context)
            return "missing `\(prefix.isEmpty ? "" : prefix + ".")\(key.stringValue)`"
        case let .typeMismatch(_, context), let .valueNotFound(_, context):
            return "wrong type at `\(path(context))`"
        case let .dataCorrupted(context):
            return "bad value at `\(path(context))`: \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}

/// A payload with no members (for messages such as `shutdown`).
public struct Empty: Codable, Equatable, Sendable {
    public init() {}
}
