import Glibc
import NodeSupport
import OpenClawIPC

/// `<state dir>/node.last-error.json`: why the node last stopped on its own (a refused
/// credential, a config error, a worker that could not confine itself), for `status` and
/// `install` to show after the fact. Written when the node exits for such a reason, removed
/// once it connects again.
public struct LastFailure: Codable, Equatable, Sendable {
    /// Milliseconds since the epoch, and the same as ISO-8601 text.
    public var atMs: Int64
    public var at: String
    public var exitCode: Int32
    /// The gateway's error code when it refused us (`AUTH_TOKEN_MISSING`, …).
    public var code: String?
    public var reason: String
    public var pid: Int32

    public init(exitCode: Int32, code: String? = nil, reason: String, now: Int64 = Int64(Clock.wallMs())) {
        atMs = now
        at = Clock.isoTimestamp(ms: Double(now))
        self.exitCode = exitCode
        self.code = code
        self.reason = reason
        pid = getpid()
    }

    public static func path(stateDir: String) -> String { "\(stateDir)/node.last-error.json" }

    public func save(stateDir: String) {
        guard let bytes = try? StateJSON.encode(self) else { return }
        try? SecureFile.write(Self.path(stateDir: stateDir), bytes)
    }

    public static func load(stateDir: String) -> LastFailure? {
        guard let bytes = try? SecureFile.read(path(stateDir: stateDir)) else { return nil }
        return try? JSONText.decode(LastFailure.self, from: String(decoding: bytes, as: UTF8.self))
    }

    public static func clear(stateDir: String) { SecureFile.remove(path(stateDir: stateDir)) }
}
