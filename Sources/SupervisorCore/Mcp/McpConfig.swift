import NodeSupport
import OpenClawIPC

/// `nodeHost.mcp.servers` in the node's `openclaw.json` (upstream's node-hosted MCP):
/// enabled servers, sorted by name, each resolved to a stdio or Streamable HTTP transport,
/// with upstream's warnings for what is skipped or dropped. OAuth servers are refused.
public struct McpSettings: Equatable, Sendable {
    public var servers: [McpServerConfig]
    /// Per server: its `toolFilter` (include / exclude globs).
    public var filters: [String: McpToolFilter]
    /// Lines to log once at start (upstream's texts).
    public var warnings: [String]
    /// Per server: a tool call's cap (`requestTimeoutMs` when set, else 120 000 ms).
    public var callCaps: [String: Int] = [:]

    public static let empty = McpSettings(servers: [], filters: [:], warnings: [])

    /// With Streamable HTTP servers only, the TCP ports they are reached on (the McpWorker
    /// may connect to those and nothing else); empty when a stdio server is configured.
    public var httpOnlyPorts: [UInt16] {
        guard !servers.isEmpty, servers.allSatisfy({ $0.command == nil }) else { return [] }
        let ports = servers.compactMap { server in
            server.url.flatMap { EndpointURL($0, schemes: ["https", "http"]) }.map { UInt16(clamping: $0.explicitPort ?? ($0.scheme == "https" ? 443 : 80)) }
        }
        return Array(Set(ports)).sorted()
    }

    /// upstream's `MCP_EXPLICIT_CREDENTIAL_ENV_KEYS`: allowed in a server's `env` although
    /// the host policy strips them from inherited environments.
    static let credentialKeys: Set<String> = [
        "AMQP_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN", "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET", "DATABASE_URL", "GH_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN", "MONGODB_URI", "NODE_AUTH_TOKEN",
        "NPM_TOKEN", "REDIS_URL",
    ]

    /// `base`: the environment every stdio server starts from: upstream's default environment
    /// (the SDK's `getDefaultEnvironment`: `HOME LOGNAME PATH SHELL TERM USER` of the user the
    /// servers run as), nothing else inherited.
    /// `readPEM`: a `clientCert` / `clientKey` file's content (nil: it cannot be read).
    public static func from(_ config: OpenClawConfig, base: [String: String], policy: HostEnvPolicy = .upstream,
                            readPEM: (String) -> String? = McpSettings.readPEM) -> McpSettings {
        guard case let .object(entries)? = config.value("nodeHost.mcp.servers") else { return .empty }
        var settings = McpSettings.empty
        for name in entries.keys.sorted(by: McpCatalog.localeLess) {
            guard let raw = entries[name], case let .object(server) = raw, !name.isEmpty,
                  name == name.trimmingWhitespace(), server["enabled"] != .bool(false) else { continue }
            if server["auth"] == .string("oauth") || JSONValue.isTruthy(server["oauth"]) {
                settings.warnings.append("node host MCP server \"\(name)\" skipped: OAuth is not supported")
                continue
            }
            var resolved = McpServerConfig(name: name, connectionTimeoutMs: timeout(server["connectionTimeoutMs"], default: 30_000),
                                           requestTimeoutMs: timeout(server["requestTimeoutMs"], default: 60_000))
            if case let .string(command)? = server["command"], !command.trimmingWhitespace().isEmpty {
                resolved.command = command
                resolved.args = server["args"]?.arrayValue?.compactMap(\.stringValue) ?? []
                for key in ["cwd", "workingDirectory"] {
                    if case let .string(cwd)? = server[key], !cwd.trimmingWhitespace().isEmpty { resolved.cwd = cwd; break }
                }
                var env = base
                if case let .object(values)? = server["env"] {
                    for key in values.keys.sorted() {
                        guard let value = stringValue(values[key]), !blocked(key, policy: policy) else {
                            settings.warnings.append("bundle-mcp: server \"\(name)\": env \"\(key)\" is blocked for stdio startup safety and was ignored.")
                            continue
                        }
                        env[key] = value
                    }
                }
                resolved.env = env
            } else {
                let transport = (server["transport"]?.stringValue ?? server["type"]?.stringValue)?.lowercased()
                switch transport {
                case "streamable-http"?, "http"?:
                    guard case let .string(rawURL)? = server["url"], let url = httpURL(rawURL) else {
                        settings.warnings.append("bundle-mcp: skipped server \"\(name)\" because its url is missing")
                        continue
                    }
                    resolved.url = url
                    if let headers = server["headers"] {
                        guard case let .object(values) = headers else {
                            settings.warnings.append("bundle-mcp: server \"\(name)\": \"headers\" must be a JSON object; the value was ignored.")
                            break
                        }
                        for key in values.keys.sorted() {
                            guard let value = stringValue(values[key]) else {
                                settings.warnings.append("bundle-mcp: server \"\(name)\": header \"\(key)\" has an unsupported value type and was ignored.")
                                continue
                            }
                            resolved.headers[key] = value
                        }
                    }
                    guard tlsOptions(server, name: name, into: &resolved, warnings: &settings.warnings, readPEM: readPEM) else { continue }
                case nil where server["url"] != nil, "sse"?:
                    // upstream's default for a bare `url`; this node speaks Streamable HTTP only.
                    settings.warnings.append("bundle-mcp: skipped server \"\(name)\" because transport \"sse\" is not supported.")
                    continue
                case let other?:
                    settings.warnings.append("bundle-mcp: skipped server \"\(name)\" because transport \"\(other)\" is not supported.")
                    continue
                case nil:
                    settings.warnings.append("bundle-mcp: skipped server \"\(name)\" because its command is missing and its url is missing.")
                    continue
                }
            }
            settings.servers.append(resolved)
            settings.filters[name] = McpToolFilter(server["toolFilter"])
            settings.callCaps[name] = timeout(server["requestTimeoutMs"], default: 120_000)
        }
        return settings
    }

    /// upstream's TLS options of an HTTP server: `sslVerify` when it is a boolean, `clientCert` /
    /// `clientKey` (trimmed paths of PEM files, both or neither). The files are read here, once;
    /// false (with a warning) when the server cannot be used as configured.
    static func tlsOptions(_ server: [String: JSONValue], name: String, into resolved: inout McpServerConfig,
                           warnings: inout [String], readPEM: (String) -> String?) -> Bool {
        if case let .bool(verify)? = server["sslVerify"] {
            resolved.sslVerify = verify
            if !verify {
                warnings.append("node host MCP server \"\(name)\": sslVerify is false; its TLS certificate is not verified")
            }
        }
        let paths = ["clientCert", "clientKey"].map { key -> String? in
            guard case let .string(path)? = server[key] else { return nil }
            let trimmed = path.trimmingWhitespace()
            return trimmed.isEmpty ? nil : trimmed
        }
        switch (paths[0], paths[1]) {
        case (nil, nil):
            return true
        case let (cert?, key?):
            guard let certificate = readPEM(cert) else {
                warnings.append("node host MCP server \"\(name)\" skipped: clientCert \"\(cert)\" cannot be read")
                return false
            }
            guard let privateKey = readPEM(key) else {
                warnings.append("node host MCP server \"\(name)\" skipped: clientKey \"\(key)\" cannot be read")
                return false
            }
            resolved.clientCertificatePEM = certificate
            resolved.clientKeyPEM = privateKey
            return true
        default:
            warnings.append("node host MCP server \"\(name)\" skipped: clientCert and clientKey must be set together")
            return false
        }
    }

    /// A PEM file of at most 1 MiB: a regular file, not through a link.
    public static func readPEM(_ path: String) -> String? {
        guard path.hasPrefix("/"), let bytes = readRegularFile(path, limit: 1 << 20), bytes.count <= 1 << 20 else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// upstream's `isDangerousMcpStdioEnvVarName`: the host policy's everywhere keys and
    /// prefixes always; the inherited-strip list unless the key is a named credential.
    static func blocked(_ key: String, policy: HostEnvPolicy) -> Bool {
        let upper = key.trimmingWhitespace().uppercased()
        guard !upper.isEmpty else { return true }
        if policy.blockedEverywhere.contains(upper) || policy.blockedPrefixes.contains(where: upper.hasPrefix) { return true }
        return !credentialKeys.contains(upper) && policy.stripsInherited(upper)
    }

    /// A string, or a number or boolean as JavaScript's `String()` writes it.
    static func stringValue(_ value: JSONValue?) -> String? {
        switch value {
        case let .string(text)?: return text
        case let .bool(flag)?: return flag ? "true" : "false"
        case let .number(number)?: return number.javaScriptString
        default: return nil
        }
    }

    /// A positive number of ms (floored, at most 2^31 - 1); anything else is the default.
    static func timeout(_ value: JSONValue?, default fallback: Int) -> Int {
        guard case let .number(number)? = value, number.isFinite, number > 0 else { return fallback }
        return Int(min(max(number.rounded(.down), 1), 2_147_483_647))
    }

    static func httpURL(_ raw: String) -> String? {
        let url = raw.trimmingWhitespace()
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), EndpointURLCheck.valid(url) else { return nil }
        return url
    }
}

/// upstream's `toolFilter`: globs (`*` only) on the trimmed tool name; a non-empty `include`
/// must match, any `exclude` removes.
public struct McpToolFilter: Equatable, Sendable {
    public var include: [String]
    public var exclude: [String]

    init(_ value: JSONValue?) {
        include = value?["include"]?.arrayValue?.compactMap(\.stringValue) ?? []
        exclude = value?["exclude"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    public init(include: [String] = [], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    public func allows(_ name: String) -> Bool {
        (include.isEmpty || include.contains { Self.matches($0, name) }) && !exclude.contains { Self.matches($0, name) }
    }

    /// upstream's `matchesMcpToolFilterPattern`.
    static func matches(_ pattern: String, _ value: String) -> Bool {
        let trimmed = pattern.trimmingWhitespace()
        guard !trimmed.isEmpty else { return false }
        guard trimmed.contains("*") else { return trimmed == value }
        let parts = trimmed.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
        let first = parts.first ?? "", last = parts.last ?? ""
        let units = Array(value.utf16)
        let firstUnits = Array(first.utf16), lastUnits = Array(last.utf16)
        if !first.isEmpty, !units.starts(with: firstUnits) { return false }
        var cursor = firstUnits.count
        let endBound = last.isEmpty ? units.count : units.count - lastUnits.count
        if !last.isEmpty, !units.reversed().starts(with: lastUnits.reversed()) || endBound < cursor { return false }
        for part in parts.dropFirst().dropLast() where !part.isEmpty {
            let needle = Array(part.utf16)
            guard let index = firstIndex(of: needle, in: units, from: cursor), index + needle.count <= endBound else { return false }
            cursor = index + needle.count
        }
        return true
    }

    static func firstIndex(of needle: [UInt16], in haystack: [UInt16], from start: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }
}

/// `new URL(url)` succeeding, roughly: a scheme, `//`, and a host.
enum EndpointURLCheck {
    static func valid(_ url: String) -> Bool {
        guard let parsed = EndpointURL(url, schemes: ["http", "https"]) else { return false }
        return !parsed.host.isEmpty
    }
}
