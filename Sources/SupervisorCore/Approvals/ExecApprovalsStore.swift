import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC

/// A failure of an exec-approvals operation, as a value. The invoke handlers answer
/// `system.execApprovals.get/set` failures with code `INVALID_REQUEST` and the text
/// `"Error: " + message` (upstream sends `String(err)` of a JS `Error`); `wireMessage` is that text.
public struct ApprovalsError: Error, Equatable, CustomStringConvertible {
    public static let code = "INVALID_REQUEST"
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
    public var wireMessage: String { "Error: " + message }
}

/// `<stateDir>/exec-approvals.json`, read and written the way upstream does, with its
/// safety rules: every write is atomic (0600 file, 0700 directory) and preserves the rest of
/// the (normalised) file; a symlinked or hard-linked file, a symlinked state directory, or a
/// file that cannot be read or parsed is never used and never overwritten. Resolution then
/// falls back to deny-all and every other operation throws. Operations on one store are
/// serialised, so a `set` cannot interleave with allowlist bookkeeping in this process.
public final class ExecApprovalsStore: @unchecked Sendable {
    /// The file as `get` sees it. `hash` is the SHA-256 hex of the file's bytes as they are on
    /// disk, or of the empty string when there is no file.
    public struct Snapshot: Equatable, Sendable {
        public var path: String
        public var exists: Bool
        public var hash: String
        public var file: ExecApprovalsFile
    }

    public static let fileName = "exec-approvals.json"
    public static let socketName = "exec-approvals.sock"

    public let path: String
    public let directory: String
    /// Written into `socket.path` when the file has none. Nothing listens there on Linux.
    public let defaultSocketPath: String
    private let builtIn: ExecApprovalDefaults
    private let sha256Hex: ([UInt8]) -> String
    private let makeID: () -> String
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// `sha256Hex` is injected so this module needs no crypto dependency; `makeID` creates
    /// allowlist entry ids (lower-case UUID v4 by default).
    public init(stateDir: String, builtIn: ExecApprovalDefaults = .node,
                sha256Hex: @escaping ([UInt8]) -> String,
                makeID: @escaping () -> String = ExecApprovalsFile.randomID) {
        directory = stateDir
        path = stateDir + "/" + Self.fileName
        defaultSocketPath = stateDir + "/" + Self.socketName
        self.builtIn = builtIn
        self.sha256Hex = sha256Hex
        self.makeID = makeID
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    // MARK: get / set

    /// `ensureExecApprovals`: load (missing → empty), normalise, fill a missing socket path and
    /// token, and rewrite the file, even if unchanged, so mode and format are always restored.
    public func ensure() throws(ApprovalsError) -> Snapshot {
        try locked { () throws(ApprovalsError) in try ensureLocked() }
    }

    /// The file as on disk now, without rewriting it.
    public func readSnapshot() throws(ApprovalsError) -> Snapshot {
        try locked { () throws(ApprovalsError) in
            switch try load() {
            case .missing:
                return Snapshot(path: path, exists: false, hash: sha256Hex([]), file: .empty)
            case let .present(raw, file):
                return Snapshot(path: path, exists: true, hash: sha256Hex(raw), file: file)
            }
        }
    }

    /// `system.execApprovals.get` (params ignored): `{path, exists, hash, file}`, with
    /// `file.socket` reduced to `{path}`. The socket token never leaves this store.
    public func getPayload() throws(ApprovalsError) -> JSONValue {
        Self.payload(try ensure())
    }

    /// `system.execApprovals.set`: `{file, baseHash}`. `baseHash` must equal the hash of the
    /// file after `ensure` (which always leaves a file, so it is always required). The incoming
    /// file is normalised without a version check, like upstream; a socket path or token it
    /// omits (a redacted `get` omits the token) is kept from the current file.
    public func set(params: JSONValue) throws(ApprovalsError) -> JSONValue {
        // Checked before `ensure`, as upstream does, so a malformed request touches nothing.
        // Arrays are rejected too: normalising one would silently write an empty policy.
        guard case let .object(incoming)? = params["file"] else {
            throw ApprovalsError("INVALID_REQUEST: exec approvals file required")
        }
        return try locked { () throws(ApprovalsError) in
            let current = try ensureLocked()
            let baseHash = params["baseHash"]?.stringValue?.trimmingWhitespace() ?? ""
            guard !baseHash.isEmpty else {
                throw ApprovalsError("INVALID_REQUEST: exec approvals base hash required; reload and retry")
            }
            guard baseHash == current.hash else {
                throw ApprovalsError("INVALID_REQUEST: exec approvals changed; reload and retry")
            }
            var next = ExecApprovalsFile(normalizing: .object(incoming), requireVersion: false, makeID: makeID)
            next.socket = ExecApprovalsFile.Socket(path: next.socket?.path ?? current.file.socket?.path,
                                                   token: next.socket?.token ?? current.file.socket?.token)
            let (saved, raw) = try save(next)
            return Self.payload(Snapshot(path: path, exists: true, hash: sha256Hex(raw), file: saved))
        }
    }

    // MARK: policy

    /// The effective policy of `agentId` (nil → `main`) from the file as it is now. A missing
    /// file resolves to the built-in defaults; an unusable one to deny-all, with `problem` set.
    public func resolve(agentId: String?) -> ResolvedExecApprovals {
        do {
            let loaded = try locked { () throws(ApprovalsError) in try load() }
            switch loaded {
            case .missing: return ExecApprovalsFile.empty.resolve(agentId: agentId, builtIn: builtIn)
            case let .present(_, file): return file.resolve(agentId: agentId, builtIn: builtIn)
            }
        } catch {
            return .denyAll(agentKey: ResolvedExecApprovals.agentKey(for: agentId), problem: error.message)
        }
    }

    /// `recordAllowlistUse`: after a run an allowlist entry allowed, stamp that entry in
    /// `agents.<agentKey>` with `now` (ms), the command text and the resolved path (nil clears it).
    /// The entry is found by `id` when the list still holds that id, else by exact pattern
    /// (ids of entries written without one are regenerated on every load). An entry that is
    /// gone was revoked meanwhile: nothing is written, so bookkeeping never restores it.
    public func recordUse(agentKey: String, id: String? = nil, pattern: String, command: String,
                          resolvedPath: String?, now: Int64) throws(ApprovalsError) {
        try locked { () throws(ApprovalsError) in
            guard case .present(_, var file) = try load(),
                  var agent = file.agents?[agentKey], var list = agent.allowlist else { return }
            let byID = id.map { id in list.contains { $0.id == id } } ?? false
            var touched = false
            for index in list.indices where byID ? list[index].id == id : list[index].pattern == pattern {
                list[index].lastUsedAt = now
                list[index].lastUsedCommand = command
                list[index].lastResolvedPath = resolvedPath
                touched = true
            }
            guard touched else { return }
            agent.allowlist = list
            file.agents?[agentKey] = agent
            try save(file)
        }
    }

    /// `allow-always`: append `{id, pattern, source: "allow-always", lastUsedAt: now}` to
    /// `agents.<agentId or main>.allowlist` for each trimmed, non-empty pattern not already in
    /// that list (exact match). An existing entry is left as it is. Writes only if something was added.
    public func addAllowAlways(agentId: String?, grants: [AllowlistRule], now: Int64) throws(ApprovalsError) {
        let key = ResolvedExecApprovals.agentKey(for: agentId)
        try locked { () throws(ApprovalsError) in
            var file = ExecApprovalsFile.empty
            if case let .present(_, loaded) = try load() { file = loaded }
            var agent = file.agents?[key] ?? AgentApprovals()
            var list = agent.allowlist ?? []
            var known = Set(list.map { "\($0.pattern)\u{0}\($0.argPattern ?? "")" })
            for grant in grants {
                let pattern = grant.pattern.trimmingWhitespace()
                guard !pattern.isEmpty, known.insert("\(pattern)\u{0}\(grant.argPattern ?? "")").inserted else { continue }
                list.append(AllowlistEntry(id: makeID(), pattern: pattern, lastUsedAt: now, source: AllowlistEntry.allowAlwaysSource,
                                           argPattern: grant.argPattern))
            }
            guard list.count != (agent.allowlist ?? []).count else { return }
            agent.allowlist = list
            file.agents = (file.agents ?? [:]).merging([key: agent]) { $1 }
            try save(file)
        }
    }

    // MARK: disk

    private enum OnDisk {
        case missing
        case present(raw: [UInt8], file: ExecApprovalsFile)
    }

    private func ensureLocked() throws(ApprovalsError) -> Snapshot {
        var file = ExecApprovalsFile.empty
        if case let .present(_, loaded) = try load() { file = loaded }
        let (saved, raw) = try save(file)
        return Snapshot(path: path, exists: true, hash: sha256Hex(raw), file: saved)
    }

    /// The file's identity when it was last parsed: an unchanged file is not read again on
    /// every run (inode, size, modification and change times, to the nanosecond).
    private struct Fingerprint: Equatable {
        var device: UInt64, inode: UInt64, size: Int64, modified: Int64, changed: Int64
    }
    private var cached: (fingerprint: Fingerprint, disk: OnDisk)?

    private func fingerprint() -> Fingerprint? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Fingerprint(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                           modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
                           changed: Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec))
    }

    private func load() throws(ApprovalsError) -> OnDisk {
        try checkDirectory()
        guard try checkDestination() else { return .missing }
        let before = fingerprint()
        if let before, let cached, cached.fingerprint == before { return cached.disk }
        let disk = try parse()
        if let before, before == fingerprint() { cached = (before, disk) }
        return disk
    }

    private func parse() throws(ApprovalsError) -> OnDisk {
        let raw: [UInt8]
        do {
            guard let bytes = try SecureFile.read(path) else { return .missing }
            raw = bytes
        } catch {
            throw ApprovalsError("cannot read exec approvals file: \(error)")
        }
        guard let json = try? JSONText.decode(JSONValue.self, fromBytes: raw) else {
            throw ApprovalsError("exec approvals file \(path) is not valid JSON; fix or remove it (exec is denied until then)")
        }
        return .present(raw: raw, file: ExecApprovalsFile(normalizing: json, makeID: makeID))
    }

    /// Writes `file` (with socket path and token filled in) and returns what was written.
    @discardableResult
    private func save(_ file: ExecApprovalsFile) throws(ApprovalsError) -> (ExecApprovalsFile, [UInt8]) {
        var file = file
        var socket = file.socket ?? ExecApprovalsFile.Socket()
        if socket.path == nil { socket.path = defaultSocketPath }
        if socket.token == nil { socket.token = try Self.newToken() }
        file.socket = socket
        try checkDirectory()
        _ = try checkDestination()
        let bytes: [UInt8]
        do {
            bytes = try StateJSON.encode(file.jsonValue)
        } catch {
            throw ApprovalsError("cannot encode exec approvals: \(error)")
        }
        do {
            try SecureFile.write(path, bytes, mode: 0o600)
        } catch {
            throw ApprovalsError("cannot write exec approvals file: \(error)")
        }
        return (file, bytes)
    }

    /// The state directory may be missing (it is created on write) but never a symlink:
    /// SecureFile only refuses that when it has to create or tighten it, and reads need it too.
    private func checkDirectory() throws(ApprovalsError) {
        var info = stat()
        guard lstat(directory, &info) == 0 else {
            if errno == ENOENT { return }
            throw ApprovalsError("cannot inspect exec approvals directory \(directory): \(SystemError("lstat"))")
        }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            throw ApprovalsError("Refusing to traverse symlink in exec approvals path: \(directory)")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw ApprovalsError("exec approvals directory is not a directory: \(directory)")
        }
    }

    /// False when there is no file. A symlink, a non-regular file or a file with another
    /// hard link is refused: the rename would sever the link, and a second name means
    /// someone else can hold (and edit) the policy we trust.
    private func checkDestination() throws(ApprovalsError) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return false }
            throw ApprovalsError("cannot inspect exec approvals file \(path): \(SystemError("lstat"))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFLNK: throw ApprovalsError("Refusing to use exec approvals via symlink: \(path)")
        case S_IFREG: break
        default: throw ApprovalsError("exec approvals path is not a regular file: \(path)")
        }
        if info.st_nlink > 1 {
            throw ApprovalsError("Refusing to use hard-linked exec approvals file: \(path)")
        }
        return true
    }

    /// base64url (no padding) of 24 random bytes, as upstream `generateToken`. Read from
    /// /dev/urandom: Glibc's module map does not export getrandom(2).
    private static func newToken() throws(ApprovalsError) -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ApprovalsError("cannot generate exec approvals socket token: \(SystemError("open /dev/urandom"))")
        }
        defer { close(fd) }
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                throw ApprovalsError("cannot generate exec approvals socket token: \(SystemError("read /dev/urandom"))")
            }
            filled += count
        }
        return String(Data(bytes).base64EncodedString().compactMap { character -> Character? in
            switch character {
            case "+": return "-"
            case "/": return "_"
            case "=": return nil
            default: return character
            }
        })
    }

    private static func payload(_ snapshot: Snapshot) -> JSONValue {
        var file = snapshot.file
        file.socket = file.socket?.path.map { ExecApprovalsFile.Socket(path: $0) }
        return .object([
            "path": .string(snapshot.path),
            "exists": .bool(snapshot.exists),
            "hash": .string(snapshot.hash),
            "file": file.jsonValue,
        ])
    }

    private func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
