import Glibc
import NodeSupport
import OpenClawIPC

/// Node-hosted skills (upstream-2026 §1.3, upstream `src/node-host/skills.ts`): every
/// `<state dir>/skills/<name>/SKILL.md` whose frontmatter names the directory is published to
/// the gateway with `node.skills.update {skills: [{name, description, content}]}`: after each
/// hello, and again when the folder changes (upstream publishes only after a hello; an operator
/// editing a skill should not have to restart the node). `nodeHost.skills.enabled: false`
/// turns it off. upstream's rules: names `^(?!.*--)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`, a
/// description of 1–1024 UTF-16 units, content (the whole file) ≤ 64 KiB, at most 64 skills and
/// 512 KiB in all; a skill that breaks one is skipped with upstream's warning, never the scan.
public enum NodeSkills {
    public struct Skill: Equatable, Sendable {
        public var name: String
        public var description: String
        public var content: String
    }

    static let maxCount = 64
    static let maxContentBytes = 64 * 1024
    static let maxTotalBytes = 512 * 1024
    static let maxDescription = 1024
    public static let method = "node.skills.update"

    public static func directory(stateDir: String) -> String { "\(stateDir)/skills" }

    /// Whether the config lets the node publish skills (`nodeHost.skills.enabled`, default
    /// true; anything but a boolean fails closed, as `config check` reports).
    public static func enabled(_ config: OpenClawConfig) -> Bool {
        guard let value = config.value("nodeHost.skills.enabled") else { return true }
        return value.boolValue == true
    }

    /// The skills in `directory`, sorted by name; `warn` gets one line per skipped skill.
    public static func scan(_ directory: String, warn: (String) -> Void) -> [Skill] {
        let names: [String]
        switch directoryEntries(directory) {
        case let .success(entries): names = entries.map(\.name).filter { !$0.hasPrefix(".") }
        case let .failure(error):
            if error.errno != ENOENT { warn("node host skill scan skipped (\(directory)): \(SystemError.text(error.errno))") }
            return []
        }
        var skills: [Skill] = []
        var total = 0
        for name in names.sorted() {
            let path = "\(directory)/\(name)"
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFREG, name == "SKILL.md" {
                warn("node host skill skipped (\(path)): skills must use a named child directory")
                continue
            }
            guard info.st_mode & S_IFMT == S_IFDIR else { continue }
            let file = "\(path)/SKILL.md"
            // A regular file, not through a link (else skipped silently), read to one byte past the cap.
            guard let bytes = readRegularFile(file, limit: maxContentBytes) else { continue }
            guard bytes.count <= maxContentBytes else {
                warn("node host skill skipped (\(file)): exceeds \(maxContentBytes) bytes")
                continue
            }
            let content = String(decoding: bytes, as: UTF8.self)
            guard let front = frontmatter(content) else {
                warn("node host skill skipped (\(file)): has invalid or missing frontmatter")
                continue
            }
            guard front.name == name else {
                warn("node host skill skipped (\(file)): directory, name, and frontmatter must match")
                continue
            }
            guard isValidName(name), !front.description.isEmpty, front.description.utf16.count <= maxDescription,
                  !content.isEmpty else {
                warn("node host skill skipped (\(file)): invalid name, description, or size")
                continue
            }
            guard skills.count < maxCount else {
                warn("node host skill skipped (\(file)): exceeds \(maxCount) skills")
                continue
            }
            guard total + bytes.count <= maxTotalBytes else {
                warn("node host skill skipped (\(file)): exceeds \(maxTotalBytes) total bytes")
                continue
            }
            total += bytes.count
            skills.append(Skill(name: name, description: front.description, content: content))
        }
        return skills
    }

    /// `^(?!.*--)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`.
    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), !name.contains("--") else { return false }
        func alnum(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (97...122).contains(byte) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 45 }
    }

    /// `name` and `description` of a `---` frontmatter block (single-line YAML scalars, plain
    /// or quoted); nil without a block or either key.
    static func frontmatter(_ content: String) -> (name: String, description: String)? {
        // ("\r\n" is one Character in Swift.)
        let lines = content.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map(String.init)
        guard lines.first.map({ $0.trimmingWhitespace() == "---" }) == true,
              let end = lines.dropFirst().firstIndex(where: { $0.trimmingWhitespace() == "---" }) else { return nil }
        var fields: [String: String] = [:]
        for line in lines[1..<end] {
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" "), !line.hasPrefix("\t") else { continue }
            let key = String(line[..<colon]).trimmingWhitespace()
            var value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            fields[key] = value
        }
        guard let name = fields["name"], let description = fields["description"] else { return nil }
        return (name, description)
    }

    /// `node.skills.update` params.
    public static func paramsJSON(_ skills: [Skill]) -> String {
        let list = skills.map { JSONValue.object(["name": .string($0.name), "description": .string($0.description), "content": .string($0.content)]) }
        return (try? JSONText.encode(JSONValue.object(["skills": .array(list)]))) ?? #"{"skills":[]}"#
    }

    /// What changes when a skill changes: each `SKILL.md`'s path, size and modification time
    /// (cheap to take every few seconds; the files are read only when it differs).
    public static func signature(_ directory: String) -> [String] {
        var parts: [String] = []
        for name in directoryNames(directory) where !name.hasPrefix(".") {
            var info = stat()
            let file = "\(directory)/\(name)/SKILL.md"
            if lstat(file, &info) == 0 {
                parts.append("\(name)\0\(info.st_size)\0\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)\0\(info.st_ino)")
            } else {
                parts.append(name)
            }
        }
        return parts.sorted()
    }
}
