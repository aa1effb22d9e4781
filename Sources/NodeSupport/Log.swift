import Glibc
import Logging

/// Output format of the process logs.
public enum LogFormat: String, CaseIterable, Sendable {
    /// `ts=… level=info proc=supervisor msg="…" key=value` — one line per event.
    case keyValue = "kv"
    /// One JSON object per line.
    case json
}

/// A swift-log handler writing one line per event to standard error.
///
/// Every process (Supervisor and workers) logs this way; the workers inherit the Supervisor's
/// standard error, so one journal shows all three. Values are quoted and escaped so a
/// newline in a message can never forge a second log line.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let process: String
    private let format: LogFormat

    public init(process: String, format: LogFormat, level: Logger.Level) {
        self.process = process
        self.format = format
        self.logLevel = level
    }

    /// Installs the handler for the whole process.
    public static func bootstrap(process: String, format: LogFormat = .keyValue, level: Logger.Level = .info) {
        LoggingSystem.bootstrap { _ in LineLogHandler(process: process, format: format, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("ts", Self.timestamp()),
            ("level", event.level.rawValue),
            ("proc", process),
            ("msg", event.message.description),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() {
            fields.append((key, "\(merged[key]!)"))
        }
        var line: String
        switch format {
        case .keyValue:
            line = fields.map { "\($0.0)=\(Self.quoteIfNeeded($0.1))" }.joined(separator: " ")
        case .json:
            line = "{" + fields.map { "\"\($0.0)\":\(Self.jsonString($0.1))" }.joined(separator: ",") + "}"
        }
        line += "\n"
        line.withCString { pointer in
            _ = Glibc.write(2, pointer, strlen(pointer))
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
