import Confinement
import Glibc
import NodeSupport
import OpenClawIPC

/// A staged upload folder of ours in the uploads' root: `openclaw-terminal-upload-*`, a real
/// directory owned by our uid, holding the marker (only such folders are counted or removed).
struct StagedFolder {
    var path: String
    var bytes: Int
    var mtimeMs: Int64
    var marked: Bool
    var empty: Bool

    /// Our folders in `root` (marked or not; nothing of another uid, nothing that is a link).
    static func scan(_ root: String) -> [StagedFolder] {
        guard case let .success(entries) = directoryEntries(root) else { return [] }
        var folders: [StagedFolder] = []
        for (name, _) in entries where name.hasPrefix(TerminalUploadLimits.folderPrefix) {
            let path = root == "/" ? "/" + name : root + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else { continue }
            let marker = readRegularFile(path + "/" + TerminalUploadLimits.markerName, limit: 64)
            var bytes = 0
            var count = 0
            if case let .success(inside) = directoryEntries(path) {
                count = inside.count
                for (entry, _) in inside {
                    var file = stat()
                    if lstat(path + "/" + entry, &file) == 0, file.st_mode & S_IFMT == S_IFREG { bytes += Int(file.st_size) }
                }
            }
            let mtimeMs = Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000
            folders.append(StagedFolder(path: path, bytes: bytes, mtimeMs: mtimeMs,
                                        marked: marker == Array(TerminalUploadLimits.markerContent.utf8), empty: count == 0))
        }
        return folders
    }
}

/// `terminal.upload` in the files worker (upstream's `stageTerminalUpload`): within the
/// budget, a fresh 0700 folder in the uploads' root, the marker, then the file (0600, never
/// replacing anything). The folder is made before the request is read; then a second Landlock
/// layer leaves only "create files in this folder", and the request's bytes are handled there.
enum UploadStaging {
    /// `ready` is called once every Landlock layer is in place (also when nothing is staged).
    static func stage(root: String, size: Int, ready: () -> Void, request: () -> FilesRequest?) -> FilesReply {
        func failure(_ message: String) -> FilesReply { FilesReply(ok: false, error: WireError(code: "INVALID_REQUEST", message: message)) }
        var readied = false
        defer { if !readied { ready() } }
        let retained = StagedFolder.scan(root).filter(\.marked)
        let retainedBytes = retained.reduce(0) { $0 + $1.bytes }
        if retained.count >= TerminalUploadLimits.maxRetainedFolders
            || retainedBytes + size + TerminalUploadLimits.markerContent.utf8.count > TerminalUploadLimits.maxRetainedBytes {
            return failure("TerminalUploadStagingExhaustedError: terminal upload staging limit reached")
        }
        var template = ((root == "/" ? "/" : root + "/") + TerminalUploadLimits.folderPrefix + "XXXXXX").utf8CString
        guard let folder = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!).map { String(cString: $0) } }) else {
            return failure(NodeErrorText.describe(errno, syscall: "mkdtemp", path: root + "/" + TerminalUploadLimits.folderPrefix + "XXXXXX"))
        }
        do {
            try WorkerConfinement.restrictToStaging(folder)
        } catch {
            return FilesReply(ok: false, error: WireError(code: "UNAVAILABLE", message: "terminal upload staging could not be confined: \(error)"))
        }
        ready()
        readied = true
        guard let request = request(), let name = request.name, let base64 = request.contentBase64,
              let bytes = Base64.decodeCanonical(base64), bytes.count == size else {
            return failure("Error: invalid terminal upload encoding")
        }
        let markerPath = folder + "/" + TerminalUploadLimits.markerName
        if let code = writeNew(markerPath, Array(TerminalUploadLimits.markerContent.utf8)) {
            return failure(NodeErrorText.describe(code, syscall: "open", path: markerPath))
        }
        let target = folder + "/" + name
        if let code = writeNew(target, bytes) {
            return failure(NodeErrorText.describe(code, syscall: "open", path: target))
        }
        let payload = #"{"path":\#((try? JSONText.encode(JSONValue.string(target))) ?? "\"\""),"size":\#(bytes.count)}"#
        return FilesReply(ok: true, payloadJSON: payload)
    }

    /// Writes a new file (`wx`, 0600, not through a link); the errno on failure.
    static func writeNew(_ path: String, _ bytes: [UInt8]) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return count < 0 ? errno : EIO }
            written += count
        }
        guard fchmod(fd, 0o600) == 0 else { return errno }
        return nil
    }
}

/// The uploads' clean-up in the files worker (upstream's retention and restart recovery): a
/// marked folder past its retention goes; so do the oldest over the budget (64 folders,
/// 256 MiB), and an empty unmarked folder of ours past the retention (a staging that failed
/// before its marker). The reply says when the next kept folder expires.
enum UploadSweep {
    static func sweep(root: String, request: FilesRequest?, nowMs: Int64 = Int64(Clock.wallMs())) -> FilesReply {
        let retentionMs = max(0, request?.retentionMs ?? TerminalUploadLimits.retentionMs)
        var removed: [String] = []
        var failed: [String] = []
        func remove(_ folder: StagedFolder) {
            removeTree(folder.path)
            var info = stat()
            if lstat(folder.path, &info) == 0 { failed.append(folder.path) } else { removed.append(folder.path) }
        }
        var kept: [StagedFolder] = []
        for folder in StagedFolder.scan(root) {
            let expired = nowMs - folder.mtimeMs >= retentionMs
            if folder.marked, expired { remove(folder) }
            else if folder.marked { kept.append(folder) }
            else if folder.empty, expired { remove(folder) }
        }
        kept.sort { $0.mtimeMs < $1.mtimeMs }
        var bytes = kept.reduce(0) { $0 + $1.bytes }
        while kept.count > TerminalUploadLimits.maxRetainedFolders || bytes > TerminalUploadLimits.maxRetainedBytes, !kept.isEmpty {
            let oldest = kept.removeFirst()
            bytes -= oldest.bytes
            remove(oldest)
        }
        let next = kept.map { retentionMs - max(0, nowMs - $0.mtimeMs) }.min()
        if !failed.isEmpty {
            return FilesReply(ok: false, error: WireError(code: "UNAVAILABLE", message: "cannot remove \(failed.joined(separator: ", "))"),
                              removed: removed, nextExpiryMs: next)
        }
        return FilesReply(ok: true, removed: removed, nextExpiryMs: next)
    }
}
