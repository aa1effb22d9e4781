/// The files worker's one request (issue 20): which Landlock rules it starts with, given on
/// its command line (`--files-mode`), so the rules exist before it reads its request.
public enum FilesMode: String, Codable, Sendable, CaseIterable {
    /// `fs.listDir`: read the directories of one folder.
    case list
    /// `terminal.upload`: make one staging folder, then write the file in it.
    case stage
    /// The uploads' clean-up: remove staged folders past their retention or over the budget.
    case sweep
}

/// What the Supervisor asks one files worker: a JSON document on its stdin (the fields of its
/// mode; the Supervisor has already checked and shaped them).
public struct FilesRequest: Codable, Equatable, Sendable {
    /// `list`: the folder (absolute, normalised) and the home the result names.
    public var path: String?
    public var home: String?
    /// `stage`: the sanitised file name and the canonical base64 content.
    public var name: String?
    public var contentBase64: String?
    /// `sweep`: how long a staged folder is kept, and staged folders to remove now (a
    /// staging that failed after its folder was made; only ours, in the root, are removed).
    public var retentionMs: Int64?
    public var remove: [String]?

    public init(path: String? = nil, home: String? = nil, name: String? = nil, contentBase64: String? = nil,
                retentionMs: Int64? = nil, remove: [String]? = nil) {
        self.remove = remove
        self.path = path
        self.home = home
        self.name = name
        self.contentBase64 = contentBase64
        self.retentionMs = retentionMs
    }
}

/// What one files worker answers: one JSON document on its stdout, then it exits.
public struct FilesReply: Codable, Equatable, Sendable {
    /// The confinement it applied (the Supervisor refuses the answer of an unconfined worker).
    public var confinement: ConfinementReport?
    public var ok: Bool
    /// The invoke result's `payloadJSON` (`list`, `stage`).
    public var payloadJSON: String?
    public var error: WireError?
    /// `sweep`: folders removed, and in how many ms the next kept one expires (nil: none kept).
    public var removed: [String]?
    public var nextExpiryMs: Int64?
    /// `stage`: the folder made for a staging that then failed (the clean-up removes it).
    public var discard: String?

    public init(confinement: ConfinementReport? = nil, ok: Bool, payloadJSON: String? = nil, error: WireError? = nil,
                removed: [String]? = nil, nextExpiryMs: Int64? = nil) {
        self.confinement = confinement
        self.ok = ok
        self.payloadJSON = payloadJSON
        self.error = error
        self.removed = removed
        self.nextExpiryMs = nextExpiryMs
    }
}

/// upstream's terminal upload staging (`src/infra/terminal-file-upload.ts`), shared by the
/// Supervisor (which checks a request) and the files worker (which stages it).
public enum TerminalUploadLimits {
    public static let maxBytes = 16 * 1024 * 1024
    /// `ceil(maxBytes / 3) * 4`.
    public static let maxBase64Length = (maxBytes + 2) / 3 * 4
    public static let folderPrefix = "openclaw-terminal-upload-"
    /// Written before the payload; only folders holding it are counted or removed.
    public static let markerName = ".openclaw-terminal-upload-v1"
    public static let markerContent = "openclaw-terminal-upload-v1\n"
    public static let retentionMs: Int64 = 24 * 60 * 60 * 1000
    /// A clean-up that failed is tried again after this long.
    public static let cleanupRetryMs: Int64 = 60 * 60 * 1000
    public static let maxRetainedBytes = 256 * 1024 * 1024
    public static let maxRetainedFolders = 64
    public static let maxNameBytes = 180
}
