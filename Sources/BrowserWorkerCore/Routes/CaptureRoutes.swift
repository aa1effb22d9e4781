import FoundationEssentials
import Glibc
import NodeSupport
import OpenClawIPC

/// Screenshots and PDFs (`browser.md` §5.3), written to new files in the media directory whose
/// paths the answer names (the Supervisor inlines them).
extension BrowserRoutes {
    func screenshot(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let fullPage = request.bool("fullPage") ?? false
        let ref = request.string("ref")
        let element = request.string("element")
        if fullPage, ref != nil || element != nil {
            throw BrowserError("fullPage is not supported for element screenshots", status: 400)
        }
        if element != nil { throw BrowserError(Self.unsupportedMessage("element screenshot"), status: 501) }
        let type = request.string("type") ?? "png"
        guard type == "png" || type == "jpeg" else { throw BrowserError("type must be png or jpeg", status: 400) }
        let (profile, tab, page) = try targetPage(request)
        try page.call("Page.bringToFront", timeoutMs: request.deadline.remaining)
        var parameters: Object = ["format": .string(type)]
        if type == "jpeg" { parameters["quality"] = .number(85) }
        if fullPage { parameters["captureBeyondViewport"] = .bool(true) }
        if let ref {
            let box = try page.elementBox(node: backendNode(profile, tab.targetId, ref: ref), ref: ref, deadline: request.deadline)
            parameters["clip"] = .object(["x": .number(box.x), "y": .number(box.y), "width": .number(max(box.width, 1)),
                                          "height": .number(max(box.height, 1)), "scale": .number(1)])
        } else if fullPage {
            let metrics = try page.call("Page.getLayoutMetrics", timeoutMs: request.deadline.remaining)
            let size = metrics["cssContentSize"] ?? metrics["contentSize"]
            if let width = size?["width"]?.numberValue, let height = size?["height"]?.numberValue {
                parameters["clip"] = .object(["x": .number(0), "y": .number(0), "width": .number(width), "height": .number(height),
                                              "scale": .number(1)])
            }
        }
        let shot = try page.call("Page.captureScreenshot", parameters, timeoutMs: request.deadline.remaining)
        var data = shot["data"]?.stringValue
        var fileExtension = type == "jpeg" ? "jpg" : "png"
        if let first = data, let (width, height) = ScreenshotSize.imageSize(base64: first, clip: parameters["clip"]),
           ScreenshotSize.needsNormalizing(base64: first, width: width, height: height) {
            // Upstream's normalisation (screenshot.ts): at most 2000 px a side and 5 MiB, as JPEG
            // at shrinking qualities. Chromium re-renders at the smaller scale, so no image codec here.
            let scale = min(1, ScreenshotSize.maxSide / max(width, height))
            let clip = parameters["clip"]?.objectValue ?? ["x": .number(0), "y": .number(0), "width": .number(width), "height": .number(height)]
            for quality in [85, 70, 55, 40] {
                var smaller = parameters
                smaller["format"] = .string("jpeg")
                smaller["quality"] = .number(Double(quality))
                smaller["clip"] = .object(clip.merging(["scale": .number((clip["scale"]?.numberValue ?? 1) * scale)]) { _, new in new })
                let again = try page.call("Page.captureScreenshot", smaller, timeoutMs: request.deadline.remaining)
                data = again["data"]?.stringValue
                fileExtension = "jpg"
                if let data, ScreenshotSize.decodedSize(base64: data) <= ScreenshotSize.maxBytes { break }
            }
        }
        let path = try saveMedia(data, extension: fileExtension)
        return .object(["ok": .bool(true), "path": .string(path), "targetId": .string(tab.targetId),
                        "url": .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))])
    }

    func pdf(_ request: inout RouteRequest) throws(BrowserError) -> JSONValue {
        let (profile, tab, page) = try targetPage(request)
        let printed = try page.call("Page.printToPDF", ["printBackground": .bool(true)], timeoutMs: request.deadline.remaining)
        let path = try saveMedia(printed["data"]?.stringValue, extension: "pdf")
        return .object(["ok": .bool(true), "path": .string(path), "targetId": .string(tab.targetId),
                        "url": .string(service.currentURL(profile, tab.targetId, deadline: request.deadline))])
    }

    /// Decodes CDP's base64 and writes it to a new file in the media directory.
    func saveMedia(_ base64: String?, extension fileExtension: String) throws(BrowserError) -> String {
        guard let base64, let data = Data(base64Encoded: base64) else { throw BrowserError("Chromium returned no image data") }
        if mkdir(mediaDir, 0o700) != 0, errno != EEXIST {
            throw BrowserError("cannot create \(mediaDir): \(SystemError.text(errno))")
        }
        let name = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) })
        let path = "\(mediaDir)/\(name).\(fileExtension)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw BrowserError("cannot write \(path): \(SystemError.text(errno))") }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw BrowserError("cannot write \(path): short write") }
        return path
    }
}
