import Glibc
import Logging
import NodeSupport
import NIOCore
import NIOPosix
import OpenClawIPC

/// What the running Supervisor tells `openclaw-node status`: link state, pairing, runs.
public struct NodeLiveStatus: Codable, Equatable, Sendable {
    public var pid: Int32
    public var version: String
    public var phase: String
    public var connected: Bool
    public var paired: Bool
    /// The device-pairing request waiting (as `pairing.deviceRequestId`; kept for scripts).
    public var pendingRequestId: String?
    /// Both pairing steps: the stage and each waiting request id.
    public var pairing: PairingStatus?
    /// The gateway of the current (or last) session: protocol, version, capabilities.
    public var gateway: GatewaySession?
    /// The last `system.run` denials, newest first: reason, message, policy, remedy, run id,
    /// command, time.
    public var lastDenials: [JSONValue]?
    public var lastError: String?
    public var connects: Int
    public var runsInFlight: Int
    public var runsQueued: Int
    public var workerRestarts: [String: Int]
    /// The commands and caps advertised in `connect`.
    public var advertised: CommandSurface?

    enum CodingKeys: String, CodingKey {
        case pid, version, phase, connected, paired, pendingRequestId, pairing, gateway, lastDenials, lastError, connects, runsInFlight, runsQueued, workerRestarts
        case advertised
    }

    /// Absent values are written as `null`: scripts reading `status --json` see every field.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(pid, forKey: .pid)
        try container.encode(version, forKey: .version)
        try container.encode(phase, forKey: .phase)
        try container.encode(connected, forKey: .connected)
        try container.encode(paired, forKey: .paired)
        try container.encode(pendingRequestId, forKey: .pendingRequestId)
        try container.encode(pairing, forKey: .pairing)
        try container.encode(gateway, forKey: .gateway)
        try container.encode(lastDenials ?? [], forKey: .lastDenials)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(connects, forKey: .connects)
        try container.encode(runsInFlight, forKey: .runsInFlight)
        try container.encode(runsQueued, forKey: .runsQueued)
        try container.encode(workerRestarts, forKey: .workerRestarts)
        try container.encode(advertised, forKey: .advertised)
    }
}

/// A read-only Unix socket in the state dir (`node.sock`, 0600): each connection gets one
/// line of JSON (`NodeLiveStatus`) and is closed. It accepts no input, so it is no way in.
public final class ControlSocket {
    public static func path(stateDir: String) -> String { "\(stateDir)/node.sock" }

    private var channel: Channel?

    /// Binds the socket (asynchronously: this runs on the Supervisor's event loop).
    func start(path: String, group: EventLoopGroup, logger: Logger, status: @escaping () -> NodeLiveStatus) {
        unlink(path)
        ServerBootstrap(group: group)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let line = ((try? JSONText.encode(status())) ?? "{}") + "\n"
                    child.writeAndFlush(ByteBuffer(string: line)).whenComplete { _ in child.close(promise: nil) }
                }
            }
            .childChannelOption(.autoRead, value: false)
            .bind(unixDomainSocketPath: path)
            .whenComplete { [weak self] result in
                switch result {
                case let .success(channel):
                    // The state dir is 0700 already; the socket itself is owner-only too.
                    chmod(path, 0o600)
                    self?.channel = channel
                case let .failure(error):
                    logger.warning("status socket unavailable; `openclaw-node status` will not show live state",
                                   metadata: ["path": "\(path)", "error": "\(error)"])
                }
            }
    }

    func stop(path: String) {
        channel?.close(promise: nil)
        channel = nil
        unlink(path)
    }

    /// Why `probe` got no status.
    public enum QueryFailure: Error, Equatable {
        /// No socket, or nothing listening on it: the node is not running.
        case notRunning
        /// The socket (or its directory) is not ours to use: run as the node's user or root.
        case permissionDenied
        /// Something answered, but not with a status.
        case unreadable
    }

    /// Reads the status line of a running node; nil when nothing answers.
    public static func query(path: String) -> NodeLiveStatus? {
        try? probe(path: path).get()
    }

    /// Reads the status line of a running node, or says why there is none.
    public static func probe(path: String) -> Result<NodeLiveStatus, QueryFailure> {
        guard let address = UnixSocketAddress(path: path) else { return .failure(.unreadable) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.unreadable) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = address.withSockaddr { connect(fd, $0, $1) }
        guard connected == 0 else { return .failure(errno == EACCES || errno == EPERM ? .permissionDenied : .notRunning) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while output.count < 65536 {
            let count = read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            output += chunk[0..<count]
        }
        guard let status = try? JSONText.decode(NodeLiveStatus.self, fromBytes: output) else { return .failure(.unreadable) }
        return .success(status)
    }
}
