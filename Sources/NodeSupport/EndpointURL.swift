/// Scheme, host, port and path of a `scheme://host[:port][/path]` URL: the one URL parser of
/// the project (the gateway's `ws://`/`wss://` URL, Chromium's DevTools endpoints). IPv6
/// literals come in brackets (`[::1]:18789`); the host is returned without them.
public struct EndpointURL: Equatable, Sendable {
    public var scheme: String
    public var host: String
    /// The explicit port, or nil when the URL names none.
    public var explicitPort: Int?
    public var path: String

    public init(scheme: String, host: String, explicitPort: Int?, path: String) {
        self.scheme = scheme
        self.host = host
        self.explicitPort = explicitPort
        self.path = path
    }

    /// Parses `url` if its scheme is one of `schemes` (without `://`). A port, when given,
    /// must be 1–65535; the host must not be empty; the authority carries no user info, query,
    /// fragment or space.
    public init?(_ url: String, schemes: [String]) {
        guard let scheme = schemes.first(where: { url.hasPrefix($0 + "://") }) else { return nil }
        self.scheme = scheme
        let rest = url.dropFirst(scheme.count + 3)
        let authority = rest.prefix { $0 != "/" }
        // No user info, query or fragment where the host is: `wss://h?x` must not read as host `h?x`.
        guard !authority.contains(where: { $0 == "?" || $0 == "#" || $0 == "@" || $0 == " " }) else { return nil }
        path = rest.count > authority.count ? String(rest.dropFirst(authority.count)) : "/"
        let portText: Substring?
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { return nil }
            portText = after.isEmpty ? nil : after.dropFirst()
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
            portText = nil
        }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { return nil }
            explicitPort = port
        }
        guard !host.isEmpty else { return nil }
    }
}
