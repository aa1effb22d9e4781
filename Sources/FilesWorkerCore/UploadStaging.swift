import Confinement
import Glibc
import NodeSupport
import OpenClawIPC

/// The terminal uploads' folders: upstream's prefix, marker and budget.
let terminalUploadFolders = MarkedFolders(
    prefix: TerminalUploadLimits.folderPrefix, markerName: TerminalUploadLimits.markerName,
    markerContent: TerminalUploadLimits.markerContent, maxFolders: TerminalUploadLimits.maxRetainedFolders,
    maxBytes: TerminalUploadLimits.maxRetainedBytes)

/// `terminal.upload` in the files worker (upstream's `stageTerminalUpload`): within the
/// budget, a fresh 0700 folder in the uploads' root, the marker, then the file (0600, never
/// replacing anything). The folder is made before the request is read; then a second Landlock
/// layer leaves only "create files in this folder", and the request's bytes are handled there.
enum UploadStaging {
    /// `ready` is called once every Landlock layer is in place (also when nothing is staged).
    static func stage(root: String, size: Int, ready: () -> Void, request: () -> FilesRequest?) -> FilesReply {
        func failure(_ message: String) -> FilesReply { FilesReply(ok: false, error: WireError(code: "INVALID_REQUEST", message: message)) }
        // A refusal before staging still reports, then takes its request, before it answers:
        // the Supervisor checks this process in /proc between the two, so it must still be there.
        func refused(_ reply: FilesReply) -> FilesReply {
            ready()
            _ = request()
            return reply
        }
        guard terminalUploadFolders.admits(root, bytes: size) else {
            return refused(failure("TerminalUploadStagingExhaustedError: terminal upload staging limit reached"))
        }
        let folder: String
        switch terminalUploadFolders.create(in: root) {
        case let .success(made): folder = made
        case let .failure(error):
            return refused(failure(NodeErrorText.describe(error.errno, syscall: error.call,
                                                          path: root + "/" + TerminalUploadLimits.folderPrefix + "XXXXXX")))
        }
        do {
            try WorkerConfinement.restrictToStaging(folder)
        } catch {
            return refused(FilesReply(ok: false, error: WireError(code: "UNAVAILABLE", message: "terminal upload staging could not be confined: \(error)")))
        }
        ready()
        guard let request = request(), let name = request.name, let base64 = request.contentBase64,
              let bytes = Base64.decodeCanonical(base64), bytes.count == size else {
            return failure("Error: invalid terminal upload encoding")
        }
        let target = folder + "/" + name
        if let code = MarkedFolders.writeNew(target, bytes) {
            // This process may not remove it (its second Landlock layer): the clean-up does.
            var reply = failure(NodeErrorText.describe(code, syscall: "open", path: target))
            reply.discard = folder
            return reply
        }
        let payload = #"{"path":\#((try? JSONText.encode(JSONValue.string(target))) ?? "\"\""),"size":\#(bytes.count)}"#
        return FilesReply(ok: true, payloadJSON: payload)
    }
}

/// The uploads' clean-up in the files worker (upstream's retention and restart recovery): a
/// marked folder past its retention goes; so do the oldest over the budget (64 folders,
/// 256 MiB), and an empty unmarked folder of ours past the retention (a staging that failed
/// before its marker). The reply says when the next kept folder expires.
enum UploadSweep {
    static func sweep(root: String, request: FilesRequest?, nowMs: Int64 = Int64(Clock.wallMs())) -> FilesReply {
        let retentionMs = max(0, request?.retentionMs ?? TerminalUploadLimits.retentionMs)
        let result = terminalUploadFolders.sweep(root, retentionMs: retentionMs, nowMs: nowMs, now: Set(request?.remove ?? []))
        guard result.failed.isEmpty else {
            return FilesReply(ok: false, error: WireError(code: "UNAVAILABLE", message: "cannot remove \(result.failed.joined(separator: ", "))"),
                              removed: result.removed, nextExpiryMs: result.nextExpiryMs)
        }
        return FilesReply(ok: true, removed: result.removed, nextExpiryMs: result.nextExpiryMs)
    }
}
