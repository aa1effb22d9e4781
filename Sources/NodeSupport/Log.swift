import Glibc
import Logging

/// Output format of the process logs.
public enum LogFormat: String, CaseIterable, Sendable {
    /// `ts=… level=info proc=supervisor msg="…" key=value` — one line per event.
    case keyValue = "kv"
    /// One JSON object per line.
    case json
}

/// A metadata value that is not text: numbers and booleans are written typed in JSON lines
/// (`"durationMs":2`), nil as `null`.
extension Logger.MetadataValue {
    public static func typed(_ value: (any CustomStringConvertible & Sendable)?) -> Logger.MetadataValue {
        .stringConvertible(value ?? LogNull())
    }
}

/// An absent typed value: `-` in key=value lines, `null` in JSON lines.
public struct LogNull: CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "-" }
}

/// A swift-log handler writing one line per event to standard error.
///
/// Every process (Supervisor and workers) logs this way; the workers inherit the Supervisor's
/// standard error, so one journal shows all three, in the format the Supervisor was given
/// (`OPENCLAW_NODE_LOG_FORMAT` carries it to the workers). Values are quoted and escaped so a
/// newline in a message can never forge a second log line. When standard error is the
/// journal (`$JOURNAL_STREAM` names it), each line starts with its syslog priority (`<3>`),
/// which journald strips and records, so `journalctl -p err` works.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let process: String
    private let format: LogFormat
    private let priorityPrefix: Bool

    /// The variable that carries the format from the Supervisor to its workers.
    public static let formatVariable = "OPENCLAW_NODE_LOG_FORMAT"

    public init(process: String, format: LogFormat, level: Logger.Level, priorityPrefix: Bool = false) {
        self.process = process
        self.format = format
        self.logLevel = level
        self.priorityPrefix = priorityPrefix
    }

    /// Installs the handler for the whole process; `format` nil: the inherited
    /// `OPENCLAW_NODE_LOG_FORMAT`, else key=value.
    public static func bootstrap(process: String, format: LogFormat? = nil, level: Logger.Level = .info) {
        let chosen = format ?? getenv(formatVariable).flatMap { LogFormat(rawValue: String(cString: $0)) } ?? .keyValue
        let journal = stderrIsJournal()
        LoggingSystem.bootstrap { _ in LineLogHandler(process: process, format: chosen, level: level, priorityPrefix: journal) }
    }

    /// Whether standard error is the journal stream systemd connected (`$JOURNAL_STREAM` is
    /// `<device>:<inode>` of that socket).
    public static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":")
        var info = stat()
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]), fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// syslog(3) priorities.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        var fields: [(String, Logger.MetadataValue)] = [
            ("ts", .string(Self.timestamp())),
            ("level", .string(event.level.rawValue)),
            ("proc", .string(process)),
            ("msg", .string(event.message.description)),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() {
            fields.append((key, merged[key]!))
        }
        var line = priorityPrefix ? "<\(Self.priority(event.level))>" : ""
        switch format {
        case .keyValue:
            line += fields.map { "\($0.0)=\(Self.quoteIfNeeded("\($0.1)"))" }.joined(separator: " ")
        case .json:
            line += "{" + fields.map { "\(Self.jsonString($0.0)):\(Self.json($0.1))" }.joined(separator: ",") + "}"
        }
        line += "\n"
        line.withCString { pointer in
            _ = Glibc.write(2, pointer, strlen(pointer))
        }
    }

    /// A metadata value as JSON: text as a string, typed values as numbers, booleans or null.
    static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case let .string(text):
            return jsonString(text)
        case let .stringConvertible(item):
            switch item {
            case is LogNull: return "null"
            case let flag as Bool: return flag ? "true" : "false"
            case let number as any BinaryInteger: return "\(number)"
            case let number as Double where number.isFinite: return "\(number)"
            default: return jsonString(item.description)
            }
        case let .array(items):
            return "[" + items.map(json).joined(separator: ",") + "]"
        case let .dictionary(entries):
            return "{" + entries.keys.sorted().map { "\(jsonString($0)):\(json(entries[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    static func quoteIfNeeded(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value < 0x7f && scalar != "\"" && scalar != "=" && scalar != "\\"
        }
        return plain ? value : jsonString(value)
    }

    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if isInvisible(scalar) {
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Characters a reader of the log would not see as themselves: C0 and C1 controls, format
    /// characters (zero-width, bidi overrides), line and paragraph separators. Escaped, a command
    /// in the audit log reads as the bytes that ran, not as what a terminal would render.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7f...0x9f, 0x2028, 0x2029: return true
        default: return scalar.properties.generalCategory == .format
        }
    }

    static func timestamp() -> String {
        Clock.isoTimestamp(ms: Clock.wallMs())
    }
}
