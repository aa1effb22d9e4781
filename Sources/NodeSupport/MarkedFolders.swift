import Glibc

/// Staging folders that expire (upstream's terminal and browser-proxy uploads): each a
/// `<prefix>XXXXXX` directory of our uid in one root, holding a marker file written before any
/// payload. Only marked folders are counted against the budget or removed (an empty unmarked
/// one of ours past its retention too: a staging that failed before its marker); a folder of
/// another uid, a link, or anything else in the root is never touched.
public struct MarkedFolders: Sendable {
    public var prefix: String
    public var markerName: String
    public var markerContent: String
    public var maxFolders: Int
    public var maxBytes: Int

    public init(prefix: String, markerName: String, markerContent: String, maxFolders: Int, maxBytes: Int) {
        self.prefix = prefix
        self.markerName = markerName
        self.markerContent = markerContent
        self.maxFolders = maxFolders
        self.maxBytes = maxBytes
    }

    public struct Folder: Equatable, Sendable {
        public var path: String
        /// Regular files' bytes, at any depth.
        public var bytes: Int
        public var mtimeMs: Int64
        public var marked: Bool
        public var empty: Bool
    }

    /// Our folders in `root`, marked or not.
    public func scan(_ root: String) -> [Folder] {
        var folders: [Folder] = []
        for name in Self.names(root) where name.hasPrefix(prefix) {
            let path = Self.join(root, name)
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else { continue }
            let marker = readRegularFile(Self.join(path, markerName), limit: 256)
            let mtimeMs = Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000
            folders.append(Folder(path: path, bytes: Self.bytes(beneath: path, depth: 4), mtimeMs: mtimeMs,
                                  marked: marker == Array(markerContent.utf8), empty: Self.names(path).isEmpty))
        }
        return folders
    }

    /// Whether `root` can take one more folder of `bytes` (the marker counted too).
    public func admits(_ root: String, bytes: Int) -> Bool {
        let kept = scan(root).filter(\.marked)
        return kept.count < maxFolders && kept.reduce(0) { $0 + $1.bytes } + bytes + markerContent.utf8.count <= maxBytes
    }

    public struct Sweep: Equatable, Sendable {
        public var removed: [String] = []
        public var failed: [String] = []
        /// In how many ms the next kept folder expires (nil: none kept).
        public var nextExpiryMs: Int64?
    }

    /// Removes what expired (and the folders of ours named in `now`), then the oldest while
    /// over the budget.
    public func sweep(_ root: String, retentionMs: Int64, nowMs: Int64, now: Set<String> = []) -> Sweep {
        var result = Sweep()
        func remove(_ folder: Folder) {
            removeTree(folder.path)
            var info = stat()
            if lstat(folder.path, &info) == 0 { result.failed.append(folder.path) } else { result.removed.append(folder.path) }
        }
        var kept: [Folder] = []
        for folder in scan(root) {
            let expired = nowMs - folder.mtimeMs >= retentionMs || now.contains(folder.path)
            if folder.marked, expired { remove(folder) }
            else if folder.marked { kept.append(folder) }
            else if folder.empty, expired { remove(folder) }
        }
        kept.sort { $0.mtimeMs < $1.mtimeMs }
        var bytes = kept.reduce(0) { $0 + $1.bytes }
        while kept.count > maxFolders || bytes > maxBytes, !kept.isEmpty {
            let oldest = kept.removeFirst()
            bytes -= oldest.bytes
            remove(oldest)
        }
        result.nextExpiryMs = kept.map { retentionMs - max(0, nowMs - $0.mtimeMs) }.min()
        return result
    }

    /// Makes a new marked folder in `root` (mode 0700, the marker 0600); its path, or the errno.
    public func create(in root: String) -> Result<String, SystemError> {
        var template = Self.join(root, prefix + "XXXXXX").utf8CString
        guard let folder = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!).map { String(cString: $0) } }) else {
            return .failure(SystemError("mkdtemp"))
        }
        if let code = Self.writeNew(Self.join(folder, markerName), Array(markerContent.utf8)) {
            removeTree(folder)
            return .failure(SystemError("open", errno: code))
        }
        return .success(folder)
    }

    /// Writes a new file (`wx`, 0600, not through a link); the errno on failure.
    public static func writeNew(_ path: String, _ bytes: [UInt8]) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        if let code = writeAll(fd, bytes) { return code }
        guard fchmod(fd, 0o600) == 0 else { return errno }
        return nil
    }

    static func join(_ directory: String, _ name: String) -> String { directory == "/" ? "/" + name : directory + "/" + name }

    static func names(_ path: String) -> [String] { directoryNames(path) }

    static func bytes(beneath path: String, depth: Int) -> Int {
        var total = 0
        for name in names(path) {
            var info = stat()
            let child = join(path, name)
            guard lstat(child, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFREG { total += Int(info.st_size) }
            else if info.st_mode & S_IFMT == S_IFDIR, depth > 0 { total += bytes(beneath: child, depth: depth - 1) }
        }
        return total
    }
}
