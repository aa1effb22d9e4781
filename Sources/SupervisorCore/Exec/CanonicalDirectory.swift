import Glibc
import OpenClawIPC

/// A cwd an approval may bind to: an existing directory reached without symlinks, whose
/// identity (device, inode) is the same however it is looked up (§3.5 approval hardening).
public enum CanonicalDirectory {
    public struct Resolved: Equatable {
        public var path: String
        public var identity: FileIdentity
    }

    public static func resolve(_ requested: String) -> Result<Resolved, ApprovalDenial> {
        var linkInfo = stat()
        guard lstat(requested, &linkInfo) == 0 else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing canonical cwd"))
        }
        if (linkInfo.st_mode & S_IFMT) == S_IFLNK {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink cwd)"))
        }
        guard (linkInfo.st_mode & S_IFMT) == S_IFDIR else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires cwd to be a directory"))
        }
        if hasWritableSymlinkComponent(requested) {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink path components)"))
        }
        var info = stat()
        guard let real = ExecutableResolver.realpath(requested), stat(requested, &info) == 0 else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval requires an existing canonical cwd"))
        }
        var realInfo = stat()
        guard lstat(real, &realInfo) == 0,
              linkInfo.st_dev == info.st_dev, linkInfo.st_ino == info.st_ino,
              realInfo.st_dev == info.st_dev, realInfo.st_ino == info.st_ino else {
            return .failure(ApprovalDenial("SYSTEM_RUN_DENIED: approval cwd identity mismatch"))
        }
        return .success(Resolved(path: real, identity: FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))))
    }

    /// A symlink on the way whose parent we could rewrite could be retargeted after approval.
    static func hasWritableSymlinkComponent(_ path: String) -> Bool {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + component
            var info = stat()
            if lstat(prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK, access(parent, W_OK) == 0 {
                return true
            }
        }
        return false
    }
}
