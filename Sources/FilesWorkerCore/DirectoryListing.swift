import Glibc
import NodeSupport
import OpenClawIPC

/// `fs.listDir` in the files worker (upstream's `listHostDirectories`): the directories of one
/// folder, symlinks that resolve to a directory included (named by the link's own path),
/// hidden ones last, each group in code-unit order. The path arrives absolute and normalised
/// (the Supervisor checked it); the worker may read directories and nothing else.
enum DirectoryListing {
    /// The largest listing answered (an invoke result must fit the gateway's frame).
    static let maxPayloadBytes = 16 * 1024 * 1024

    struct Entry: Encodable {
        var name: String
        var path: String
        var hidden: Bool?
    }

    struct Listing: Encodable {
        var path: String
        var parent: String?
        var home: String
        var entries: [Entry]
    }

    static func answer(_ request: FilesRequest?) -> FilesReply {
        guard let request, let path = request.path, let home = request.home else {
            return FilesReply(ok: false, error: WireError(code: "INVALID_REQUEST", message: "Error: INVALID_REQUEST: paramsJSON required"))
        }
        switch list(path, home: home) {
        case let .success(listing):
            guard let json = try? JSONText.encode(listing), json.utf8.count <= maxPayloadBytes else {
                return FilesReply(ok: false, error: WireError(code: "INVALID_REQUEST",
                                                              message: "Error: fs.listDir result exceeds \(maxPayloadBytes) bytes"))
            }
            return FilesReply(ok: true, payloadJSON: json)
        case let .failure(error):
            return FilesReply(ok: false, error: WireError(code: "INVALID_REQUEST", message: NodeErrorText.describe(error.errno, syscall: "scandir", path: path)))
        }
    }

    static func list(_ path: String, home: String) -> Result<Listing, SystemError> {
        let names: [(name: String, type: UInt8)]
        switch directoryEntries(path) {
        case let .success(found): names = found
        case let .failure(error): return .failure(error)
        }
        var entries: [Entry] = []
        for (name, type) in names {
            let entryPath = path == "/" ? "/" + name : path + "/" + name
            guard isDirectory(entryPath, type: type) else { continue }
            entries.append(Entry(name: name, path: entryPath, hidden: name.hasPrefix(".") ? true : nil))
        }
        entries.sort { left, right in
            let (leftHidden, rightHidden) = (left.hidden ?? false, right.hidden ?? false)
            if leftHidden != rightHidden { return rightHidden }
            return left.name.utf16.lexicographicallyPrecedes(right.name.utf16)
        }
        let parent = parentPath(path)
        return .success(Listing(path: path, parent: parent == path ? nil : parent, home: home, entries: entries))
    }

    /// A directory, or a symlink whose target is one (an unreadable or broken target is not).
    static func isDirectory(_ path: String, type: UInt8) -> Bool {
        var info = stat()
        switch Int32(type) {
        case Int32(DT_DIR): return true
        case Int32(DT_LNK): return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
        case Int32(DT_UNKNOWN):
            guard lstat(path, &info) == 0 else { return false }
            if info.st_mode & S_IFMT == S_IFDIR { return true }
            return info.st_mode & S_IFMT == S_IFLNK && stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
        default: return false
        }
    }

    /// `path.dirname` of a normalised absolute path.
    static func parentPath(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), path != "/" else { return "/" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
