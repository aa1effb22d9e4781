import OpenClawIPC
import FoundationEssentials

/// `node.json`: the node's own settings (upstream `src/node-host/config.ts`).
public struct NodeConfigFile: Codable, Equatable {
    public struct Gateway: Codable, Equatable {
        public var host: String?
        public var port: Int?
        public var tls: Bool?
        public var tlsFingerprint: String?
        /// A path the WebSocket URL ends in (a gateway behind a reverse proxy), e.g. `/openclaw-gw`.
        public var contextPath: String?
    }

    public var version: Int
    public var nodeId: String
    /// Legacy pairing token of old builds; kept if present, never written anew.
    public var token: String?
    public var displayName: String?
    public var gateway: Gateway?
    /// `--commands`: the exact command ids the node advertises and serves (nil: all).
    public var commands: [String]?

    /// Loads `node.json`; a missing or unusable file (or a blank `nodeId`) gives a fresh id.
    /// A `commands` allowlist that is not a list of non-empty ids fails closed (never the
    /// full surface in its place, as upstream).
    public static func load(_ path: String) throws -> NodeConfigFile {
        let bytes = try SecureFile.read(path)
        if let bytes, let raw = try? JSONText.decode(JSONValue.self, from: String(decoding: bytes, as: UTF8.self)),
           let commands = raw["commands"], commands != .null {
            guard let ids = commands.arrayValue?.compactMap(\.stringValue).map({ $0.trimmingWhitespace() }),
                  ids.count == commands.arrayValue?.count, !ids.contains(where: \.isEmpty) else {
                throw ConfigError("invalid node-host commands in \(path): expected an array of non-empty command ids")
            }
        }
        if let bytes,
           var file = try? JSONDecoder().decode(NodeConfigFile.self, from: Data(bytes)),
           file.version == 1 {
            file.commands = file.commands.map { Array(Set($0.map { $0.trimmingWhitespace() })).sorted() }
            file.nodeId = file.nodeId.trimmingWhitespace()
            if !file.nodeId.isEmpty { return file }
            file.nodeId = RandomID.uuid()
            return file
        }
        return NodeConfigFile(version: 1, nodeId: RandomID.uuid(), token: nil, displayName: nil, gateway: nil, commands: nil)
    }

    public func save(_ path: String) throws {
        try SecureFile.write(path, try StateJSON.encode(self))
    }
}

/// `identity/device-auth.json`: device tokens the gateway issued, keyed by role.
public struct DeviceAuthFile: Codable, Equatable {
    public struct Entry: Codable, Equatable {
        public var token: String
        public var role: String
        public var scopes: [String]
        public var updatedAtMs: Int64
    }

    public var version: Int
    public var deviceId: String
    public var tokens: [String: Entry]

    /// The stored token for `role`, if the file belongs to `deviceId`.
    public static func token(at path: String, deviceId: String, role: String) -> String? {
        guard let bytes = try? SecureFile.read(path),
              let file = try? JSONDecoder().decode(DeviceAuthFile.self, from: Data(bytes)),
              file.version == 1, file.deviceId == deviceId,
              let entry = file.tokens[role.trimmingWhitespace()] else { return nil }
        let token = entry.token.trimmingWhitespace()
        return token.isEmpty ? nil : token
    }

    /// Stores `token` for `role` (a file for another device is overwritten).
    public static func store(token: String, role: String, scopes: [String], at path: String, deviceId: String, now: Int64) throws {
        var file = DeviceAuthFile(version: 1, deviceId: deviceId, tokens: [:])
        if let bytes = try? SecureFile.read(path),
           let existing = try? JSONDecoder().decode(DeviceAuthFile.self, from: Data(bytes)),
           existing.version == 1, existing.deviceId == deviceId {
            file = existing
        }
        let role = role.trimmingWhitespace()
        let normalizedScopes = Array(Set(scopes.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty })).sorted()
        file.tokens[role] = Entry(token: token, role: role, scopes: normalizedScopes, updatedAtMs: now)
        try SecureFile.write(path, try StateJSON.encode(file))
    }

    /// Deletes the stored token for `role`.
    public static func remove(role: String, at path: String, deviceId: String) throws {
        guard let bytes = try SecureFile.read(path),
              var file = try? JSONDecoder().decode(DeviceAuthFile.self, from: Data(bytes)),
              file.deviceId == deviceId else { return }
        file.tokens[role.trimmingWhitespace()] = nil
        try SecureFile.write(path, try StateJSON.encode(file))
    }
}
