import Glibc
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// `fs.listDir` and `terminal.upload` (upstream-2026 §1.3, issue 20). The Supervisor checks
/// and shapes each request (upstream's messages, exactly); the folder is read, or the file
/// written, by a files worker confined to exactly that (`FilesRunner`), as the exec user.
public final class FilesHandler: CommandHandler {
    public static let wireCommands = ["fs.listDir", "terminal.upload"]

    /// Where uploads are staged and for how long they are kept.
    public struct Uploads: Sendable {
        public var root: String
        public var retentionMs: Int64
        public init(root: String, retentionMs: Int64 = TerminalUploadLimits.retentionMs) {
            self.root = root
            self.retentionMs = retentionMs
        }

        /// upstream's `os.tmpdir()`: `$TMPDIR` when it is an absolute path, else `/tmp`.
        public static func defaultRoot(environment: [String: String]) -> String {
            guard let tmp = environment["TMPDIR"], tmp.hasPrefix("/") else { return "/tmp" }
            return PathNormalization.resolve(tmp)
        }
    }

    /// A listing or an upload that takes longer is killed (a hung mount, a stuck disk).
    static let timeout = TimeAmount.seconds(60)
    /// Uploads waiting for the one being staged (each holds its content in memory).
    static let maxWaitingUploads = 4
    /// Listings at once (each a process and a thread while it runs).
    static let maxListings = 8

    let runner: FilesRunning
    let home: String
    let uploads: Uploads
    let janitor: UploadJanitor
    let logger: Logger
    private var staging = false
    private var waiting: [() -> Void] = []
    private var listings = 0

    public init(runner: FilesRunning, home: String, uploads: Uploads, loop: EventLoop, logger: Logger) {
        self.runner = runner
        self.home = home
        self.uploads = uploads
        self.logger = logger
        janitor = UploadJanitor(runner: runner, uploads: uploads, loop: loop, logger: logger)
    }

    /// Starts the uploads' clean-up: what a previous run left is looked at now.
    public func start() { janitor.sweepNow() }

    public func handle(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        func answer(_ result: Result<String, WireError>) {
            switch result {
            case let .success(payload): completion(InvokeOutput(result: .success(request, payloadJSON: payload)))
            case let .failure(error): completion(InvokeOutput(result: .failure(request, code: error.code, message: error.message)))
            }
        }
        let params: NodeParams
        switch NodeParams.decode(request.paramsJSON) {
        case let .success(decoded): params = decoded
        case let .failure(error): return answer(.failure(error))
        }
        if request.command == "fs.listDir" {
            switch Self.listRequest(params, home: home) {
            case let .failure(error): answer(.failure(error))
            case let .success(list):
                guard listings < Self.maxListings else {
                    return answer(.failure(WireError(code: "UNAVAILABLE", message: "too many fs.listDir requests in flight")))
                }
                listings += 1
                runner.run(.list, root: nil, list, arguments: [], timeout: Self.timeout, cancellation: cancellation) { [weak self] reply in
                    self?.listings -= 1
                    answer(Self.payload(reply))
                }
            }
            return
        }
        switch Self.uploadRequest(params) {
        case let .failure(error): answer(.failure(error))
        case let .success((upload, size)):
            stage(upload, size: size, cancellation: cancellation, answer: answer)
        }
    }

    /// One upload at a time (upstream's staging lock): the budget is checked and spent by one
    /// worker before the next looks.
    private func stage(_ upload: FilesRequest, size: Int, cancellation: InvokeCancellation,
                       answer: @escaping (Result<String, WireError>) -> Void) {
        guard !staging else {
            guard waiting.count < Self.maxWaitingUploads else {
                return answer(.failure(WireError(code: "UNAVAILABLE", message: "terminal upload staging is busy; retry after current uploads finish")))
            }
            waiting.append { [weak self] in self?.stage(upload, size: size, cancellation: cancellation, answer: answer) }
            return
        }
        guard !cancellation.isCancelled else {
            answer(.failure(WireError(code: "UNAVAILABLE", message: "cancelled")))
            if !waiting.isEmpty { waiting.removeFirst()() }
            return
        }
        staging = true
        runner.run(.stage, root: uploads.root, upload, arguments: ["--stage-size", String(size)], timeout: Self.timeout, cancellation: cancellation) { [weak self] reply in
            guard let self else { return }
            self.staging = false
            if case let .success(staged) = reply, staged.ok {
                self.logger.info("terminal upload staged", metadata: ["size": .typed(size), "name": "\(upload.name ?? "")"])
                self.janitor.staged()
            } else if case let .success(failed) = reply, let folder = failed.discard {
                self.janitor.discard(folder)
            }
            answer(Self.payload(reply))
            if !self.waiting.isEmpty { self.waiting.removeFirst()() }
        }
    }

    static func payload(_ reply: Result<FilesReply, WireError>) -> Result<String, WireError> {
        switch reply {
        case let .failure(error): return .failure(error)
        case let .success(reply):
            if reply.ok, let payload = reply.payloadJSON { return .success(payload) }
            return .failure(reply.error ?? FilesRunner.unavailable)
        }
    }

    // MARK: Requests, as upstream reads them

    /// `fs.listDir {path?}`: a string or nothing; empty means home; absolute; normalised.
    static func listRequest(_ params: NodeParams, home: String) -> Result<FilesRequest, WireError> {
        if case .null = params { return .failure(invalid("TypeError: Cannot read properties of null (reading 'path')")) }
        var requested = home
        switch params.field("path") {
        case nil: break
        case let .string(path)?: if !path.isEmpty { requested = path }
        default: return .failure(invalid("Error: INVALID_REQUEST: path must be a string"))
        }
        guard requested.hasPrefix("/") else { return .failure(invalid("Error: fs.listDir path must be absolute")) }
        guard !requested.utf8.contains(0) else {
            return .failure(invalid("TypeError [ERR_INVALID_ARG_VALUE]: The argument 'path' must be a string, Uint8Array, or URL without null bytes. "
                + "Received '\(requested.split(separator: "\0", omittingEmptySubsequences: false).joined(separator: "\\x00"))'"))
        }
        return .success(FilesRequest(path: PathNormalization.resolve(requested), home: home))
    }

    /// `terminal.upload {name, contentBase64}`: both strings; within 16 MiB; canonical base64.
    static func uploadRequest(_ params: NodeParams) -> Result<(FilesRequest, Int), WireError> {
        if case .null = params { return .failure(invalid("TypeError: Cannot read properties of null (reading 'name')")) }
        guard case let .string(name)? = params.field("name"), case let .string(content)? = params.field("contentBase64") else {
            return .failure(invalid("Error: INVALID_REQUEST: terminal upload name and content are required"))
        }
        let size = Base64.decodedSize(content)
        guard content.utf8.count <= TerminalUploadLimits.maxBase64Length, size <= TerminalUploadLimits.maxBytes else {
            return .failure(invalid("Error: terminal upload exceeds \(TerminalUploadLimits.maxBytes) bytes"))
        }
        guard Base64.isCanonical(content) else { return .failure(invalid("Error: invalid terminal upload encoding")) }
        return .success((FilesRequest(name: TerminalUploadName.sanitize(name), contentBase64: content), size))
    }

    static func invalid(_ message: String) -> WireError { WireError(code: "INVALID_REQUEST", message: message) }
}

/// A node-host command's params as upstream's `decodeNodeInvokeParams` reads them: required,
/// JSON, then whatever JSON it is (a field of a non-object is simply absent).
enum NodeParams {
    case object([String: JSONValue])
    case null
    case other

    static func decode(_ text: String?) -> Result<NodeParams, WireError> {
        guard let text, !text.isEmpty else { return .failure(FilesHandler.invalid("Error: INVALID_REQUEST: paramsJSON required")) }
        guard let value = try? JSONText.decode(JSONValue.self, from: text) else {
            return .failure(FilesHandler.invalid("Error: INVALID_REQUEST: paramsJSON malformed JSON"))
        }
        switch value {
        case let .object(object): return .success(.object(object))
        case .null: return .success(.null)
        default: return .success(.other)
        }
    }

    /// The field, `.null` when it is JSON null; nil when absent (or not an object).
    func field(_ name: String) -> JSONValue? {
        guard case let .object(object) = self else { return nil }
        return object[name]
    }
}

/// upstream's `sanitizeTerminalUploadName`: the name a staged upload gets.
public enum TerminalUploadName {
    public static func sanitize(_ name: String) -> String {
        let slashed = String(name.map { $0 == "\\" ? "/" : $0 })
        let base = basename(slashed)
        let replaced = String(String.UnicodeScalarView(base.unicodeScalars.map { scalar in
            scalar.value <= 0x1F || scalar.value == 0x7F || "<>:\"/\\|?*%!".unicodeScalars.contains(scalar) ? "_" : scalar
        }))
        var cleaned = Substring(replaced).unicodeScalars.drop { isJavaScriptSpace($0) }
        while let last = cleaned.last, isJavaScriptSpace(last) { cleaned.removeLast() }
        while let last = cleaned.last, last == "." || last == " " { cleaned.removeLast() }
        var text = String(String.UnicodeScalarView(cleaned))
        if isWindowsReserved(text) { text = "_" + text }
        if text.isEmpty || text == "." || text == ".." { text = "upload" }
        var bytes = 0
        var kept = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let size = String(scalar).utf8.count
            if bytes + size > TerminalUploadLimits.maxNameBytes { break }
            kept.append(scalar)
            bytes += size
        }
        return kept.isEmpty ? "upload" : String(kept)
    }

    /// `path.posix.basename`: the last segment, trailing slashes ignored.
    static func basename(_ path: String) -> String {
        var text = Substring(path)
        while text.count > 1, text.hasSuffix("/") { text.removeLast() }
        if text == "/" { return "" }
        return text.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
    }

    /// JavaScript's `trim()` set: white space and line terminators.
    static func isJavaScriptSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF: return true
        default: return false
        }
    }

    /// `/^(?:con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³])(?:\.|$)/iu`.
    static func isWindowsReserved(_ name: String) -> Bool {
        let lower = name.lowercased()
        let stem = lower.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? lower
        if ["con", "prn", "aux", "nul"].contains(stem) { return true }
        guard stem.count == 4, stem.hasPrefix("com") || stem.hasPrefix("lpt"), let digit = stem.last else { return false }
        return ("1"..."9").contains(digit) || ["¹", "²", "³"].contains(digit)
    }
}

/// The uploads' clean-up (upstream's 24 h timers and restart recovery): a sweep by a files
/// worker at start, then whenever the next kept folder expires; one again a retention after
/// each upload; a failed sweep is tried again after an hour.
final class UploadJanitor {
    let runner: FilesRunning
    let uploads: FilesHandler.Uploads
    let loop: EventLoop
    let logger: Logger
    private var next: (at: NIODeadline, task: Scheduled<Void>)?
    private var sweeping = false
    private var discarded: Set<String> = []

    init(runner: FilesRunning, uploads: FilesHandler.Uploads, loop: EventLoop, logger: Logger) {
        self.runner = runner
        self.uploads = uploads
        self.loop = loop
        self.logger = logger
    }

    func sweepNow() { schedule(inMs: 0) }

    /// A staging that failed left its folder: removed by the next clean-up, run now.
    func discard(_ folder: String) {
        guard folder.hasPrefix(uploads.root.hasSuffix("/") ? uploads.root : uploads.root + "/") else { return }
        discarded.insert(folder)
        schedule(inMs: 0)
    }

    /// An upload was staged: it expires a retention from now.
    func staged() { schedule(inMs: uploads.retentionMs) }

    private func schedule(inMs ms: Int64) {
        let at = NIODeadline.now() + .milliseconds(max(0, ms))
        if let next, next.at <= at { return }
        next?.task.cancel()
        next = (at, loop.scheduleTask(deadline: at) { [weak self] in self?.sweep() })
    }

    private func sweep() {
        next = nil
        guard !sweeping else { return schedule(inMs: 1_000) }
        sweeping = true
        let remove = discarded
        discarded = []
        runner.run(.sweep, root: uploads.root, FilesRequest(retentionMs: uploads.retentionMs, remove: remove.isEmpty ? nil : remove.sorted()),
                   arguments: [], timeout: FilesHandler.timeout,
                   cancellation: nil) { [weak self] reply in
            guard let self else { return }
            self.sweeping = false
            switch reply {
            case let .success(result):
                if let removed = result.removed, !removed.isEmpty {
                    self.logger.info("terminal uploads removed", metadata: ["count": .typed(removed.count), "paths": "\(removed.joined(separator: ","))"])
                }
                if !result.ok {
                    self.logger.warning("terminal-upload: cleanup failed; retrying: \(result.error?.message ?? "-")")
                    self.schedule(inMs: min(TerminalUploadLimits.cleanupRetryMs, self.uploads.retentionMs))
                }
                if let expiry = result.nextExpiryMs { self.schedule(inMs: expiry + 20) }
            case let .failure(error):
                self.logger.warning("terminal-upload: recovery scan failed: \(error.message)")
                self.schedule(inMs: min(TerminalUploadLimits.cleanupRetryMs, self.uploads.retentionMs))
            }
        }
    }
}
