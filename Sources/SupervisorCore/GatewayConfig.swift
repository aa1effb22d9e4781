import FoundationEssentials
import Glibc
import OpenClawIPC

/// A setup problem that stops the node before any connection: exit 78 (EX_CONFIG).
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The parts of `openclaw.json` (JSON5) the node host reads.
public struct OpenClawConfig {
    public let root: JSONValue

    public init(root: JSONValue) { self.root = root }

    /// Loads the config at `path`; a missing file is an empty config, a malformed one an error.
    public static func load(_ path: String) throws -> OpenClawConfig {
        guard let bytes = try SecureFile.read(path) else { return OpenClawConfig(root: .object([:])) }
        switch ConfigCheck.parse(bytes, json5: true) {
        case let .success(root):
            guard case .object = root else { throw ConfigError("\(path): the top level must be an object") }
            return OpenClawConfig(root: root)
        case let .failure(failure):
            throw ConfigError("\(path):\(failure.line):\(failure.column): \(failure.message)")
        }
    }

    static func describe(_ error: Error) -> String {
        if case let DecodingError.dataCorrupted(context) = error {
            return (context.underlyingError.map { String(describing: $0) }) ?? context.debugDescription
        }
        return String(describing: error)
    }

    public func value(_ path: String) -> JSONValue? {
        var current: JSONValue? = root
        for key in path.split(separator: ".") {
            current = current?[String(key)]
        }
        return current
    }

    public func string(_ path: String) -> String? { value(path)?.stringValue }
    public func bool(_ path: String) -> Bool? { value(path)?.boolValue }
}

/// Resolves secret values: literals, SecretRef objects and the legacy `${NAME}` forms
/// (node-host.md §9.5). `env` and `file` sources are supported; anything else fails closed.
public struct SecretResolver {
    public let config: OpenClawConfig
    public let environment: (String) -> String?

    public init(config: OpenClawConfig, environment: @escaping (String) -> String? = SecretResolver.processEnvironment) {
        self.config = config
        self.environment = environment
    }

    public static func processEnvironment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    enum Reference {
        case env(provider: String, name: String)
        case file(provider: String, id: String)
        case other(source: String)
    }

    /// The secret at config `path`, or nil when unset. An explicit reference that cannot be
    /// resolved, or resolves to nothing, throws with upstream's message.
    public func resolve(_ path: String) throws -> String? {
        guard let raw = config.value(path) else { return nil }
        let reference: Reference
        switch raw {
        case .null:
            return nil
        case let .string(text):
            guard let parsed = Self.legacyReference(text) else {
                let trimmed = text.trimmingWhitespace()
                return trimmed.isEmpty ? nil : trimmed
            }
            reference = parsed
        case let .object(object):
            guard let source = object["source"]?.stringValue, let id = object["id"]?.stringValue else {
                throw ConfigError("\(path) secret reference could not be resolved: expected {source, provider, id}")
            }
            let provider = object["provider"]?.stringValue ?? config.string("secrets.defaults.\(source)") ?? "default"
            switch source {
            case "env": reference = .env(provider: provider, name: id)
            case "file": reference = .file(provider: provider, id: id)
            default: reference = .other(source: source)
            }
        default:
            throw ConfigError("\(path) resolved to an empty or non-string value.")
        }
        let value = try lookup(reference, path: path)
        guard let value, !value.trimmingWhitespace().isEmpty else {
            throw ConfigError("\(path) resolved to an empty or non-string value.")
        }
        return value.trimmingWhitespace()
    }

    static func legacyReference(_ text: String) -> Reference? {
        func isEnvName(_ name: Substring) -> Bool {
            guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 128,
                  (65...90).contains(first.value) else { return false }
            return name.unicodeScalars.allSatisfy { (65...90).contains($0.value) || (48...57).contains($0.value) || $0 == "_" }
        }
        if text.hasPrefix("${"), text.hasSuffix("}") {
            let name = text.dropFirst(2).dropLast()
            return isEnvName(name) ? .env(provider: "default", name: String(name)) : nil
        }
        if text.hasPrefix("$") {
            let name = text.dropFirst()
            return isEnvName(name) ? .env(provider: "default", name: String(name)) : nil
        }
        for prefix in ["secretref-env:", "__env__:"] where text.hasPrefix(prefix) {
            return .env(provider: "default", name: String(text.dropFirst(prefix.count)))
        }
        return nil
    }

    private func lookup(_ reference: Reference, path: String) throws -> String? {
        func failure(_ detail: String) -> ConfigError {
            ConfigError("\(path) secret reference could not be resolved: \(detail)")
        }
        switch reference {
        case let .env(provider, name):
            if let allowlist = config.value("secrets.providers.\(provider).allowlist")?.arrayValue {
                guard allowlist.contains(.string(name)) else { throw failure("environment variable \(name) is not in the \(provider) provider's allowlist") }
            }
            guard let value = environment(name) else { throw failure("environment variable \(name) is not set") }
            return value
        case let .file(provider, id):
            guard let providerPath = config.string("secrets.providers.\(provider).path") else {
                throw failure("no file secret provider named \"\(provider)\"")
            }
            let bytes: [UInt8]
            do {
                guard let read = try SecureFile.read(providerPath) else { throw failure("\(providerPath) does not exist") }
                bytes = read
            } catch let error as ConfigError {
                throw error
            } catch {
                throw failure("\(error)")
            }
            let mode = config.string("secrets.providers.\(provider).mode") ?? "json"
            if mode == "singleValue" {
                // A secret file written by `echo` ends in a newline that is not part of the secret.
                var text = String(decoding: bytes, as: UTF8.self)
                if text.hasSuffix("\n") { text.removeLast() }
                if text.hasSuffix("\r") { text.removeLast() }
                return text
            }
            guard let document = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else {
                throw failure("\(providerPath) is not valid JSON")
            }
            guard let value = Self.pointer(id, in: document) else { throw failure("\(id) not found in \(providerPath)") }
            guard case let .string(text) = value else { return nil }
            return text
        case let .other(source):
            throw failure("secret source \"\(source)\" is not supported by this node host")
        }
    }

    /// RFC 6901 JSON pointer lookup (`/gateway/token`).
    static func pointer(_ pointer: String, in document: JSONValue) -> JSONValue? {
        guard pointer.hasPrefix("/") else { return document[pointer] }
        var current: JSONValue? = document
        for token in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let key = token.replacing("~1", with: "/").replacing("~0", with: "~")
            if case let .array(items)? = current, let index = Int(key), items.indices.contains(index) {
                current = items[index]
            } else {
                current = current?[String(key)]
            }
        }
        return current
    }
}

/// Gateway credentials, resolved as `resolveNodeHostGatewayCredentials` does (node-host.md §9.4).
public struct GatewayCredentials: Equatable {
    public var token: String?
    public var password: String?

    public static func resolve(config: OpenClawConfig, resolver: SecretResolver) throws -> GatewayCredentials {
        let remote = config.string("gateway.mode") == "remote"
        let envToken = resolver.environment("OPENCLAW_GATEWAY_TOKEN").map { $0.trimmingWhitespace() }.flatMap { $0.isEmpty ? nil : $0 }
        let token = try envToken ?? resolver.resolve(remote ? "gateway.remote.token" : "gateway.auth.token")
        let envPassword = resolver.environment("OPENCLAW_GATEWAY_PASSWORD").map { $0.trimmingWhitespace() }.flatMap { $0.isEmpty ? nil : $0 }
        var password = envPassword
        if password == nil, token == nil {
            let mode = config.string("gateway.auth.mode")
            let passwordMode = remote || mode == "password" || mode == nil || !["token", "none", "trusted-proxy"].contains(mode!)
            if passwordMode {
                password = try resolver.resolve(remote ? "gateway.remote.password" : "gateway.auth.password")
            }
        }
        return GatewayCredentials(token: token, password: password)
    }
}

/// Cloudflare Access service tokens for a gateway behind Cloudflare (upstream
/// `gateway-cloudflare-access.ts`): `CF_ACCESS_CLIENT_ID` / `CF_ACCESS_CLIENT_SECRET` from the
/// environment (the service env file for an installed node, never the unit), sent as
/// `CF-Access-Client-Id` / `CF-Access-Client-Secret` on the WebSocket upgrade, over TLS only.
public enum CloudflareAccess {
    public static let clientIdVariable = "CF_ACCESS_CLIENT_ID"
    public static let clientSecretVariable = "CF_ACCESS_CLIENT_SECRET"

    /// The headers, or none when neither variable is set; upstream's errors otherwise.
    public static func headers(environment: (String) -> String?, tls: Bool,
                               requirement: String = "Cloudflare Access credentials require a TLS Gateway connection") throws -> [String: String] {
        let id = environment(clientIdVariable)
        let secret = environment(clientSecretVariable)
        guard id != nil || secret != nil else { return [:] }
        guard let id, let secret else {
            throw ConfigError("\(clientIdVariable) and \(clientSecretVariable) must be configured together")
        }
        let trimmedId = id.trimmingWhitespace(), trimmedSecret = secret.trimmingWhitespace()
        guard !trimmedId.isEmpty, !trimmedSecret.isEmpty else { throw ConfigError("node-host Cloudflare Access credentials resolved empty") }
        guard tls else { throw ConfigError(requirement) }
        return ["CF-Access-Client-Id": trimmedId, "CF-Access-Client-Secret": trimmedSecret]
    }
}
