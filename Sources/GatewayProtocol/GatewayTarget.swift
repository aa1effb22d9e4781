import Glibc
import NodeSupport

/// Host, port and path of a `ws://`/`wss://` URL: the one parser of gateway URLs (the link,
/// its probe, the Supervisor's confinement ports).
public struct GatewayTarget: Equatable, Sendable {
    public var secure: Bool
    public var host: String
    public var port: Int
    public var path: String

    public init?(url: String) {
        guard let parsed = EndpointURL(url, schemes: ["wss", "ws"]) else { return nil }
        secure = parsed.scheme == "wss"
        host = parsed.host
        port = parsed.explicitPort ?? (secure ? 443 : 80)
        path = parsed.path
    }

    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return "\(name):\(port)"
    }

    public static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
