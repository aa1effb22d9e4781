import NodeSupport
import OpenClawIPC

/// `browser.proxy.upload.v1` (upstream's `browser-proxy-upload.ts`, `browser-proxy-envelope.ts`):
/// the gateway sends the files a file chooser should get; the Supervisor checks the envelope
/// with upstream's messages and shapes the names, and the BrowserWorker stages them in its
/// uploads folder and names them in the body's `paths`.
public enum BrowserProxyUpload {
    public static let command = "browser.proxy.upload.v1"
    public static let envelope = "browser-upload-v1"
    public static let maxFileBytes = 10 * 1024 * 1024
    public static let maxTotalBytes = 16 * 1024 * 1024
    public static let maxFiles = 256
    /// `ceil(maxFileBytes / 3) * 4`.
    static let maxEncodedFileLength = (maxFileBytes + 2) / 3 * 4

    /// The files to stage for `call`, or the thrown error's text (without `Error: `).
    public static func files(_ upload: JSONValue?, call: BrowserProxyRequest) -> Result<[BrowserUploadFile], BrowserProxyFailure> {
        func invalid(_ text: String) -> Result<[BrowserUploadFile], BrowserProxyFailure> { .failure(.invalid(text)) }
        guard call.method == "POST", call.path == "/hooks/file-chooser" else {
            return invalid("INVALID_REQUEST: browser proxy upload requires the file chooser route")
        }
        guard case let .object(body)? = call.body, body["paths"] == nil else {
            return invalid("INVALID_REQUEST: browser proxy upload body must omit paths")
        }
        guard case let .object(envelope)? = upload, envelope["envelope"] == .string(Self.envelope),
              case let .array(entries)? = envelope["files"], !entries.isEmpty else {
            return invalid("INVALID_REQUEST: invalid browser proxy upload envelope")
        }
        guard entries.count <= maxFiles else { return invalid("browser proxy request exceeds 256 file limit") }
        var files: [BrowserUploadFile] = []
        var total = 0
        for entry in entries {
            guard case let .string(name)? = entry["name"], !name.trimmingWhitespace().isEmpty,
                  case let .string(content)? = entry["contentBase64"], content.utf8.count <= maxEncodedFileLength else {
                return invalid("INVALID_REQUEST: invalid browser proxy upload file")
            }
            guard content.utf8.count % 4 == 0 else { return invalid("INVALID_REQUEST: invalid browser proxy upload encoding") }
            let size = Base64.decodedSize(content)
            if size > maxFileBytes { return invalid("browser proxy file exceeds 10 MiB limit") }
            if total + size > maxTotalBytes { return invalid("browser proxy files exceed 16 MiB aggregate limit") }
            guard Base64.isCanonical(content) else { return invalid("INVALID_REQUEST: invalid browser proxy upload encoding") }
            total += size
            files.append(BrowserUploadFile(name: TerminalUploadName.sanitize(name), contentBase64: content))
        }
        return .success(files)
    }
}
