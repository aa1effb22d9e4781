import Crypto
import FoundationEssentials
import Glibc
import NodeSupport

/// The node's Ed25519 device key. Lives only in the Supervisor; the NetWorker sees the
/// public key and signatures, never the private key.
///
/// `deviceId` is the lowercase hex SHA-256 of the raw 32-byte public key (protocol.md §3.1).
public struct DeviceIdentity {
    public let privateKey: Curve25519.Signing.PrivateKey
    public let createdAtMs: Int64

    public init(privateKey: Curve25519.Signing.PrivateKey, createdAtMs: Int64) {
        self.privateKey = privateKey
        self.createdAtMs = createdAtMs
    }

    public var publicKeyRaw: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }

    public var deviceId: String { Hex.encode(Array(SHA256.hash(data: publicKeyRaw))) }

    /// base64url without padding, as `device.publicKey` on the wire.
    public var publicKeyBase64Url: String { Base64URL.encode(publicKeyRaw) }

    /// Signs `payload` (UTF-8 bytes, no pre-hash) and returns base64url without padding.
    public func sign(_ payload: String) throws -> String {
        Base64URL.encode(Array(try privateKey.signature(for: Array(payload.utf8))))
    }

    // MARK: PEM (the upstream TS file shape)

    static let spkiPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]
    static let pkcs8Prefix: [UInt8] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    public var publicKeyPem: String { Self.pem("PUBLIC KEY", Self.spkiPrefix + publicKeyRaw) }
    public var privateKeyPem: String { Self.pem("PRIVATE KEY", Self.pkcs8Prefix + Array(privateKey.rawRepresentation)) }

    static func pem(_ label: String, _ der: [UInt8]) -> String {
        let body = Data(der).base64EncodedString()
        var lines: [String] = []
        var index = body.startIndex
        while index < body.endIndex {
            let end = body.index(index, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[index..<end]))
            index = end
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }

    /// The 32-byte seed inside a PKCS#8 Ed25519 PEM.
    static func seed(fromPrivateKeyPem pem: String) -> [UInt8]? {
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let der = Data(base64Encoded: body).map(Array.init), der.count == 48,
              Array(der.prefix(16)) == pkcs8Prefix else { return nil }
        return Array(der.suffix(32))
    }
}

/// The identity file, `identity/device.json`.
///
/// Reads the TS shape (`publicKeyPem`/`privateKeyPem`) and the Swift shape (standard base64
/// raw `publicKey`/`privateKey`); always writes the TS shape, 0600.
public enum IdentityFile {
    struct TSShape: Codable {
        var version: Int
        var deviceId: String
        var publicKeyPem: String
        var privateKeyPem: String
        var createdAtMs: Int64
    }

    struct SwiftShape: Codable {
        var deviceId: String?
        var publicKey: String
        var privateKey: String
        var createdAtMs: Int64?
    }

    public enum LoadResult {
        case loaded(DeviceIdentity)
        /// Loaded, but the stored id or shape differed; the file was rewritten.
        case repaired(DeviceIdentity)
        case created(DeviceIdentity)
        /// The old file could not be parsed; it was kept at `backup` and a new key made.
        case replaced(DeviceIdentity, backup: String)

        public var identity: DeviceIdentity {
            switch self {
            case let .loaded(identity), let .repaired(identity), let .created(identity), let .replaced(identity, _):
                return identity
            }
        }
    }

    /// The identity at `path`, read only: nil when there is none; an error when the file
    /// cannot be read or parsed (nothing is created, repaired or moved).
    public static func load(at path: String) throws -> DeviceIdentity? {
        guard let bytes = try SecureFile.read(path) else { return nil }
        guard let (identity, _) = parse(bytes) else { throw ConfigError("\(path) is not a device identity file") }
        return identity
    }

    /// Loads the identity at `path`, creating (and saving) a new one if there is none.
    public static func loadOrCreate(at path: String, now: Int64 = currentTimeMillis()) throws -> LoadResult {
        if let bytes = try SecureFile.read(path) {
            if let (identity, exact) = parse(bytes) {
                if exact { return .loaded(identity) }
                try save(identity, to: path)
                return .repaired(identity)
            }
            let backup = "\(path).unreadable-\(now)"
            rename(path, backup)
            let identity = DeviceIdentity(privateKey: .init(), createdAtMs: now)
            try save(identity, to: path)
            return .replaced(identity, backup: backup)
        }
        let identity = DeviceIdentity(privateKey: .init(), createdAtMs: now)
        try save(identity, to: path)
        return .created(identity)
    }

    /// Parses either shape; `exact` is false when the file should be rewritten.
    static func parse(_ bytes: [UInt8]) -> (DeviceIdentity, exact: Bool)? {
        let decoder = JSONDecoder()
        if let ts = try? decoder.decode(TSShape.self, from: Data(bytes)),
           let seed = DeviceIdentity.seed(fromPrivateKeyPem: ts.privateKeyPem),
           let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) {
            let identity = DeviceIdentity(privateKey: key, createdAtMs: ts.createdAtMs)
            let exact = ts.version == 1 && ts.deviceId == identity.deviceId && ts.publicKeyPem == identity.publicKeyPem
            return (identity, exact)
        }
        if let swift = try? decoder.decode(SwiftShape.self, from: Data(bytes)),
           let seed = Data(base64Encoded: swift.privateKey), seed.count == 32,
           let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) {
            return (DeviceIdentity(privateKey: key, createdAtMs: swift.createdAtMs ?? currentTimeMillis()), false)
        }
        return nil
    }

    public static func save(_ identity: DeviceIdentity, to path: String) throws {
        let shape = TSShape(version: 1, deviceId: identity.deviceId, publicKeyPem: identity.publicKeyPem,
                            privateKeyPem: identity.privateKeyPem, createdAtMs: identity.createdAtMs)
        try SecureFile.write(path, try StateJSON.encode(shape))
    }
}

public func currentTimeMillis() -> Int64 { Int64(Clock.wallMs()) }

public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        text = text.replacing("+", with: "-").replacing("/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    /// Decodes base64url with or without padding; nil when it is not base64url.
    public static func decode(_ text: String) -> [UInt8]? {
        var standard = text.replacing("-", with: "+").replacing("_", with: "/")
        while standard.utf8.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard).map(Array.init)
    }
}
