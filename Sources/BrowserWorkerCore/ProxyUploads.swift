import Glibc
import NodeSupport
import OpenClawIPC

/// `browser.proxy.upload.v1`'s staging in the BrowserWorker (upstream's
/// `browser-proxy-upload.ts`): the gateway's files become private copies under the worker's
/// uploads folder (`<data dir>/uploads/.proxy-uploads/upload-XXXXXX/<i>/<name>`, 0700 folders,
/// 0600 files, a marker first), named in the route body's `paths`. At most 64 folders and
/// 256 MiB are kept; each goes after 24 hours (looked at on start, before each staging and
/// hourly), or at once when its route failed. The worker is the only one that writes there
/// (Landlock: its data dir), and `/hooks/file-chooser` takes paths from that folder only.
enum ProxyUploads {
    static let rootName = ".proxy-uploads"
    static let retentionMs: Int64 = 24 * 60 * 60 * 1000
    static let folders = MarkedFolders(prefix: "upload-", markerName: ".openclaw-browser-proxy-upload-v1",
                                       markerContent: "openclaw-browser-proxy-upload-v1\n", maxFolders: 64,
                                       maxBytes: 256 * 1024 * 1024)

    /// The folder `/hooks/file-chooser` takes paths from.
    static func uploadsDirectory(dataDir: String) -> String { dataDir + "/uploads" }

    static func stagingRoot(dataDir: String) -> String { uploadsDirectory(dataDir: dataDir) + "/" + rootName }

    struct Staged: Equatable {
        var directory: String
        var paths: [String]
    }

    /// Stages `files`; the error is the thrown text upstream answers with (`Error: ` added by
    /// the Supervisor).
    static func stage(_ files: [BrowserUploadFile], dataDir: String, nowMs: Int64) -> Result<Staged, StagingError> {
        let root = stagingRoot(dataDir: dataDir)
        for directory in [uploadsDirectory(dataDir: dataDir), root] where mkdir(directory, 0o700) != 0 && errno != EEXIST {
            return .failure(StagingError(text: "EACCES: cannot create \(directory)"))
        }
        _ = folders.sweep(root, retentionMs: retentionMs, nowMs: nowMs)
        var decoded: [(name: String, bytes: [UInt8])] = []
        for file in files {
            guard let bytes = Base64.decodeCanonical(file.contentBase64) else {
                return .failure(StagingError(text: "INVALID_REQUEST: invalid browser proxy upload encoding"))
            }
            decoded.append((file.name, bytes))
        }
        guard folders.admits(root, bytes: decoded.reduce(0) { $0 + $1.bytes.count }) else {
            return .failure(StagingError(text: "RESOURCE_EXHAUSTED: browser proxy upload staging limit reached"))
        }
        let directory: String
        switch folders.create(in: root) {
        case let .success(made): directory = made
        case let .failure(error): return .failure(StagingError(text: "\(error.code): \(SystemError.text(error.errno)), mkdtemp"))
        }
        var paths: [String] = []
        for (index, file) in decoded.enumerated() {
            let folder = "\(directory)/\(index)"
            let path = "\(folder)/\(file.name)"
            let failure: Int32? = mkdir(folder, 0o700) == 0 ? MarkedFolders.writeNew(path, file.bytes) : errno
            if let failure {
                removeTree(directory)
                return .failure(StagingError(text: "\(SystemError.symbolicName(failure)): \(SystemError.text(failure)), open '\(path)'"))
            }
            paths.append(path)
        }
        return .success(Staged(directory: directory, paths: paths))
    }

    struct StagingError: Error, Equatable {
        var text: String
    }

    /// Expired copies go (start, hourly); also the oldest over the budget.
    static func sweep(dataDir: String, nowMs: Int64) {
        _ = folders.sweep(stagingRoot(dataDir: dataDir), retentionMs: retentionMs, nowMs: nowMs)
    }

    /// `paths` for `/hooks/file-chooser`, each inside the uploads folder (upstream's
    /// `resolveExistingPathsWithinRoot`): relative names are taken from that folder, a link
    /// may not lead out of it, a missing file keeps its name (Chromium then fails it).
    static func resolve(_ requested: [String], dataDir: String) -> Result<[String], StagingError> {
        let root = uploadsDirectory(dataDir: dataDir)
        let invalid = StagingError(text: "Invalid path: must stay within uploads directory (\(root))")
        let rootReal = realPath(root) ?? root
        var resolved: [String] = []
        for raw in requested {
            let trimmed = String(raw.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
            let lexical = PathNormalization.resolve(trimmed.hasPrefix("/") ? trimmed : root + "/" + trimmed)
            guard lexical.hasPrefix(root + "/") else { return .failure(invalid) }
            if let real = realPath(lexical) {
                guard real.hasPrefix(rootReal + "/") else { return .failure(invalid) }
                resolved.append(real)
            } else {
                resolved.append(lexical)
            }
        }
        return .success(resolved)
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
