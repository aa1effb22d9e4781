import FoundationEssentials

/// `<state dir>/imported-from-openclaw.json`: what `UpstreamStateImport` took over from the
/// official node host's database, and what it left and why, so `doctor` can show it.
/// Written once (0600), at the import; never read by `run`.
public struct ImportReport: Codable, Equatable {
    /// What can be imported; `imported` and `skipped` name them by these raw values.
    public enum Item: String, CaseIterable {
        case identity
        case deviceToken
        case nodeConfig
        case execApprovals
    }

    public struct Skipped: Codable, Equatable {
        /// An `Item` raw value.
        public var item: String
        public var reason: String

        public init(item: String, reason: String) {
            self.item = item
            self.reason = reason
        }

        init(_ item: Item, _ reason: String) {
            self.init(item: item.rawValue, reason: reason)
        }
    }

    public var importedAtMs: Int64
    /// The database read (`<state dir>/state/openclaw.sqlite`).
    public var database: String
    /// The imported device id (the SHA-256 of the imported public key).
    public var deviceId: String?
    /// `Item` raw values, in `Item` order.
    public var imported: [String]
    public var skipped: [Skipped]

    public init(importedAtMs: Int64, database: String, deviceId: String?, imported: [String], skipped: [Skipped]) {
        self.importedAtMs = importedAtMs
        self.database = database
        self.deviceId = deviceId
        self.imported = imported
        self.skipped = skipped
    }

    public static let fileName = "imported-from-openclaw.json"

    public static func path(stateDir: String) -> String { "\(stateDir)/\(fileName)" }

    /// The report of an earlier import, if there was one (nil also for an unreadable file).
    public static func load(stateDir: String) -> ImportReport? {
        guard let bytes = try? SecureFile.read(path(stateDir: stateDir)) else { return nil }
        return try? JSONDecoder().decode(ImportReport.self, from: Data(bytes))
    }

    func save(stateDir: String) throws {
        try SecureFile.write(Self.path(stateDir: stateDir), try StateJSON.encode(self))
    }
}
