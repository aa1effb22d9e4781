import FoundationEssentials
import Glibc
import Logging
import OpenClawIPC

/// Who runs a checked route call: the Supervisor, through its BrowserWorker.
public protocol BrowserRunner: AnyObject {
    /// Sends `request` to the BrowserWorker (starting it on first use); `completion` gets the
    /// route's answer, or the error that ended the call (deadline, worker death).
    func call(_ request: BrowserRequest, timeoutMessage: String, completion: @escaping (Result<BrowserResponse, WireError>) -> Void)
}

/// `browser.proxy` (`browser.md` §1): checks in the Supervisor, the route in the BrowserWorker,
/// files inlined from the worker's media directory only.
public final class BrowserProxyHandler: CommandHandler {
    public static let wireCommands = ["browser.proxy", BrowserProxyUpload.command]
    let settings: BrowserProxySettings
    let media: BrowserMediaStore
    let logger: Logger
    /// The BrowserWorker's monitor (nil: the node runs no browser).
    let runner: BrowserRunner?
    private var nextId = 0

    public init(settings: BrowserProxySettings, media: BrowserMediaStore, runner: BrowserRunner?, logger: Logger) {
        self.settings = settings
        self.runner = runner
        self.media = media
        self.logger = logger
    }

    public func handle(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        func fail(_ error: WireError) {
            completion(InvokeOutput(result: .failure(request, code: error.code, message: error.message)))
        }
        let params: [String: JSONValue]
        switch InvokeParams.object(request) {
        case let .success(object): params = object
        case let .failure(error): return fail(error)
        }
        let call: BrowserProxyRequest
        switch BrowserProxyRequest.parse(params, settings: settings, command: request.command) {
        case let .success(parsed): call = parsed
        case let .failure(failure): return fail(failure.wireError)
        }
        var upload: [BrowserUploadFile]?
        if request.command == BrowserProxyUpload.command {
            switch BrowserProxyUpload.files(params["upload"], call: call) {
            case let .success(files): upload = files
            case let .failure(failure): return fail(failure.wireError)
            }
        }
        guard let runner else { return fail(WireError(code: "UNAVAILABLE", message: "Error: browser server not started")) }
        nextId += 1
        let order = BrowserRequest(id: "b\(nextId)", method: call.method, path: call.path, query: call.query, body: call.body,
                                   timeoutMs: call.timeoutMs, upload: upload)
        logger.info("browser.proxy", metadata: ["method": "\(call.method)", "path": "\(call.path)", "profile": "\(call.profile ?? "-")"])
        runner.call(order, timeoutMessage: call.timeoutMessage) { [settings, media] outcome in
            switch outcome {
            case let .failure(error): fail(error)
            case let .success(response) where response.commandError != nil:
                fail(WireError(code: "INVALID_REQUEST", message: "Error: \(response.commandError ?? "")"))
            case let .success(response):
                switch BrowserProxyReply.payload(call: call, response: response, settings: settings, media: media) {
                case let .success(payload): completion(InvokeOutput(result: .success(request, payloadJSON: payload)))
                case let .failure(error): fail(error)
                }
            }
        }
    }
}

/// Turns a route answer into the invoke result (§1.4, §1.5, §1.7, §3.3).
public enum BrowserProxyReply {
    public static let maxFileBytes = 10 * 1024 * 1024
    public static let maxTotalBytes = 16 * 1024 * 1024
    public static let maxFiles = 256
    public static let maxPayloadBytes = 24 * 1024 * 1024
    static let actCodes: Set<String> = [
        "ACT_KIND_REQUIRED", "ACT_INVALID_REQUEST", "ACT_SELECTOR_UNSUPPORTED", "ACT_EVALUATE_DISABLED", "ACT_TARGET_ID_MISMATCH",
        "ACT_EXISTING_SESSION_UNSUPPORTED", "ACT_OPERATION_FAILED",
    ]
    static let reasons: Set<String> = ["navigation_blocked", "native_policy_blocked", "no_display_for_headed_profile"]

    static func route(_ call: BrowserProxyRequest) -> JSONValue {
        guard let profile = call.profile, call.path != "/profiles" else { return .object(["status": .string("unavailable")]) }
        return .object(["status": .string("resolved"), "profile": .string(profile), "driver": .string("openclaw")])
    }

    public static func payload(call: BrowserProxyRequest, response: BrowserResponse, settings: BrowserProxySettings,
                               media: BrowserMediaStore) -> Result<String, WireError> {
        func invalid(_ text: String) -> Result<String, WireError> {
            .failure(WireError(code: "INVALID_REQUEST", message: "Error: \(text)"))
        }
        if response.status >= 400 {
            let error = response.body["error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            guard call.envelope else { return invalid(error.map { "\(response.status): \($0)" } ?? "HTTP \(response.status)") }
            var body: [String: JSONValue] = ["error": .string(error ?? "HTTP \(response.status)")]
            if error != nil {
                if let code = response.body["code"] {
                    if let text = code.stringValue, actCodes.contains(text) { body["code"] = code } else { body["unrecognizedCode"] = .bool(true) }
                }
                if let reason = response.body["reason"]?.stringValue, reasons.contains(reason) {
                    body["reason"] = .string(reason)
                    if reason == "no_display_for_headed_profile", let details = response.body["details"] { body["details"] = details }
                }
            }
            let envelope: JSONValue = .object(["error": .object(["status": .number(Double(response.status)), "body": .object(body)]),
                                               "route": route(call)])
            return encode(envelope)
        }
        var result = response.body
        if call.path == "/profiles", !settings.allowProfiles.isEmpty {
            let profiles = (result["profiles"]?.arrayValue ?? []).filter {
                guard let name = $0["name"]?.stringValue else { return false }
                return settings.allowProfiles.contains(name)
            }
            if case var .object(object) = result {
                object["profiles"] = .array(profiles)
                result = .object(object)
            }
        }
        var candidates: [String] = []
        for value in [result["path"], result["imagePath"], result["download"]?["path"]] + (result["downloads"]?.arrayValue ?? []).map({ $0["path"] }) {
            guard let path = value?.stringValue?.trimmingWhitespace(), !path.isEmpty, !candidates.contains(path) else { continue }
            candidates.append(path)
        }
        if candidates.count > maxFiles { return invalid("browser proxy response exceeds 256 file limit") }
        var files: [JSONValue] = []
        var total = 0
        for path in candidates {
            let bytes: [UInt8]
            switch media.read(path, limit: maxFileBytes) {
            case let .success(read): bytes = read
            case let .failure(error): return invalid(error.message)
            }
            total += bytes.count
            if total > maxTotalBytes { return invalid("browser proxy files exceed 16 MiB aggregate limit") }
            files.append(.object(["path": .string(path), "base64": .string(Data(bytes).base64EncodedString()),
                                  "mimeType": .string(mimeType(bytes, path: path))]))
        }
        var payload: [String: JSONValue] = ["result": result]
        if !files.isEmpty { payload["files"] = .array(files) }
        if call.envelope { payload["route"] = route(call) }
        let encoded = encode(.object(payload))
        if case let .success(text) = encoded, text.utf8.count > maxPayloadBytes {
            return invalid("browser proxy payload exceeds 24 MiB encoded limit")
        }
        // The gateway now holds its own copy; the node's files were only for the transfer.
        if case .success = encoded { for path in candidates { media.remove(path) } }
        return encoded
    }

    static func encode(_ value: JSONValue) -> Result<String, WireError> {
        guard let text = try? JSONText.encode(value) else {
            return .failure(WireError(code: "INVALID_REQUEST", message: "Error: browser proxy result could not be encoded"))
        }
        return .success(text)
    }

    /// Sniffed from the bytes, falling back to the file extension.
    static func mimeType(_ bytes: [UInt8], path: String) -> String {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "image/png" }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if bytes.starts(with: Array("%PDF".utf8)) { return "application/pdf" }
        if bytes.count >= 12, bytes.starts(with: Array("RIFF".utf8)), Array(bytes[8..<12]) == Array("WEBP".utf8) { return "image/webp" }
        let lower = path.lowercased()
        let byExtension = [".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".pdf": "application/pdf",
                           ".webp": "image/webp", ".json": "application/json", ".txt": "text/plain", ".zip": "application/zip"]
        return byExtension.first { lower.hasSuffix($0.key) }?.value ?? "application/octet-stream"
    }
}

/// The BrowserWorker's media directory, seen from the Supervisor: the only place a file named
/// in a route answer may be read from. The worker renders untrusted pages, so a path it names
/// is never followed elsewhere: one plain name inside `<state>/browser/media`, opened without
/// following symlinks at any step, a regular file with one link.
public struct BrowserMediaStore: Sendable {
    public let stateDir: String
    public static let relative = ["browser", "media"]

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    public var directory: String { ([stateDir] + Self.relative).joined(separator: "/") }

    public struct Failure: Error, Equatable {
        public var message: String
    }

    /// The media directory, opened component by component without following symlinks.
    func openDirectory() -> Int32? {
        var fd = open(stateDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        for component in Self.relative {
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(fd)
            guard next >= 0 else { return nil }
            fd = next
        }
        return fd
    }

    /// The plain file name `path` has inside the media directory, or nil.
    func name(of path: String) -> String? {
        let prefix = directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let name = String(path.dropFirst(prefix.count))
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { return nil }
        return name
    }

    public func read(_ path: String, limit: Int) -> Result<[UInt8], Failure> {
        func failure(_ detail: String) -> Result<[UInt8], Failure> {
            .failure(Failure(message: "browser proxy file read failed for \(path): \(detail)"))
        }
        guard let name = name(of: path), let directory = openDirectory() else { return failure("Error: file not found") }
        defer { close(directory) }
        let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return failure("Error: file not found") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1 else {
            return failure("Error: file not found")
        }
        if Int(info.st_size) > limit { return .failure(Failure(message: "browser proxy file exceeds 10 MiB limit")) }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            offset += count
        }
        return .success(Array(bytes[0..<offset]))
    }

    public func remove(_ path: String) {
        guard let name = name(of: path), let directory = openDirectory() else { return }
        unlinkat(directory, name, 0)
        close(directory)
    }
}
