/// Node's `path.resolve` of an absolute POSIX path: `.` and `..` segments, repeated and
/// trailing slashes removed, without looking at the file system (a symlink stays a name).
public enum PathNormalization {
    public static func resolve(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
