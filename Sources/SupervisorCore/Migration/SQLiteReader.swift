import CSQLite

/// One column value of a result row, in SQLite's five storage classes.
public enum SQLiteValue: Equatable, Sendable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null

    public var textValue: String? {
        if case let .text(value) = self { return value }
        return nil
    }

    public var integerValue: Int64? {
        if case let .integer(value) = self { return value }
        return nil
    }
}

/// A failed SQLite call: its result code and `sqlite3_errmsg` (or `sqlite3_errstr`).
public struct SQLiteError: Error, Equatable, CustomStringConvertible {
    public var code: Int32
    public var message: String
    /// What was being done (`open …`, the statement).
    public var context: String

    public init(code: Int32, message: String, context: String) {
        self.code = code
        self.message = message
        self.context = context
    }

    public var description: String { "\(context): \(message) (SQLite code \(code))" }
}

/// A read-only connection to an SQLite database, for the one-time import of the official node
/// host's state (`UpstreamStateImport`).
///
/// Guarantees: the file is opened with `SQLITE_OPEN_READONLY` (never created, never written);
/// every prepared statement is finalized before its call returns; the connection is closed by
/// `close()` or at the latest when the reader is released. Values are bound, never spliced into
/// the SQL text.
public final class SQLiteReader {
    private var db: OpaquePointer?

    /// `sqlite3_open_v2(path, …, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)`, then a 2 s busy
    /// timeout.
    public init(path: String) throws {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let opened = handle else {
            let message = handle.map(Self.message(of:)) ?? Self.text(of: rc)
            sqlite3_close(handle)
            throw SQLiteError(code: rc, message: message, context: "open \(path)")
        }
        db = opened
        sqlite3_busy_timeout(opened, 2000)
    }

    deinit { close() }

    /// `sqlite3_close_v2`; further queries fail.
    public func close() {
        guard let handle = db else { return }
        sqlite3_close_v2(handle)
        db = nil
    }

    /// Whether a table named `name` exists (`sqlite_master`).
    public func tableExists(_ name: String) throws -> Bool {
        !(try query("SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?", [name])).isEmpty
    }

    /// The column names of `table` (`pragma_table_info`); empty when there is no such table.
    public func columns(of table: String) throws -> Set<String> {
        Set(try query("SELECT name FROM pragma_table_info(?)", [table]).compactMap { $0["name"]?.textValue })
    }

    /// `PRAGMA user_version` (the schema version upstream records; for diagnostics).
    public func userVersion() throws -> Int64 {
        try query("PRAGMA user_version").first?["user_version"]?.integerValue ?? 0
    }

    /// Runs one statement with `bindings` bound as text to `?1…?n`, and returns every row as
    /// column name → value.
    public func query(_ sql: String, _ bindings: [String] = []) throws -> [[String: SQLiteValue]] {
        guard let db else { throw SQLiteError(code: SQLITE_MISUSE, message: "the database is closed", context: sql) }
        var prepared: OpaquePointer?
        let rc = sqlite3_prepare_v2(db, sql, -1, &prepared, nil)
        guard rc == SQLITE_OK, let statement = prepared else {
            let error = SQLiteError(code: rc, message: rc == SQLITE_OK ? "empty statement" : Self.message(of: db), context: sql)
            sqlite3_finalize(prepared)
            throw error
        }
        defer { sqlite3_finalize(statement) }
        for (index, value) in bindings.enumerated() {
            let bound = sqlite3_bind_text(statement, Int32(index + 1), value, -1, Self.transient)
            guard bound == SQLITE_OK else {
                throw SQLiteError(code: bound, message: Self.message(of: db), context: sql)
            }
        }
        let count = sqlite3_column_count(statement)
        var rows: [[String: SQLiteValue]] = []
        while true {
            let step = sqlite3_step(statement)
            if step == SQLITE_DONE { break }
            guard step == SQLITE_ROW else {
                throw SQLiteError(code: step, message: Self.message(of: db), context: sql)
            }
            var row: [String: SQLiteValue] = [:]
            for column in 0..<count {
                let name = sqlite3_column_name(statement, column).map { String(cString: $0) } ?? "\(column)"
                row[name] = Self.value(statement, column)
            }
            rows.append(row)
        }
        return rows
    }

    static func value(_ statement: OpaquePointer, _ column: Int32) -> SQLiteValue {
        switch sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            // The pointer first, then its length (sqlite3_column_bytes after the conversion).
            guard let pointer = sqlite3_column_text(statement, column) else { return .text("") }
            let length = Int(sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self))
        case SQLITE_BLOB:
            let pointer = sqlite3_column_blob(statement, column)
            let length = Int(sqlite3_column_bytes(statement, column))
            guard let pointer, length > 0 else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: length)))
        default:
            return .null
        }
    }

    /// `SQLITE_TRANSIENT` (a macro Swift cannot import): SQLite copies the bound text.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func message(of db: OpaquePointer) -> String {
        sqlite3_errmsg(db).map { String(cString: $0) } ?? "unknown error"
    }

    private static func text(of code: Int32) -> String {
        sqlite3_errstr(code).map { String(cString: $0) } ?? "SQLite error \(code)"
    }
}
