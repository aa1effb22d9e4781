import FoundationEssentials
import OpenClawIPC

/// The size of a capture, and upstream's limits for one (`screenshot.ts`): at most 2000 px a
/// side and 5 MiB. Pure functions of the capture's base64 and clip, so they are unit-tested.
enum ScreenshotSize {
    static let maxSide = 2000.0
    static let maxBytes = 5 * 1024 * 1024

    /// Pixel size of a capture: the clip it was taken with, else the PNG header.
    static func imageSize(base64: String, clip: JSONValue?) -> (Double, Double)? {
        if let width = clip?["width"]?.numberValue, let height = clip?["height"]?.numberValue {
            let scale = clip?["scale"]?.numberValue ?? 1
            return (width * scale, height * scale)
        }
        guard let head = Data(base64Encoded: String(base64.prefix(44))), head.count >= 24,
              head.starts(with: [0x89, 0x50, 0x4E, 0x47]) else { return nil }
        let bytes = Array(head)
        func be32(_ at: Int) -> Double { Double(UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])) }
        return (be32(16), be32(20))
    }

    /// Bytes the base64 text decodes to (padding counted as data: a bound, not exact).
    static func decodedSize(base64: String) -> Int { base64.utf8.count / 4 * 3 }

    /// Whether the capture is over either limit and is taken again smaller.
    static func needsNormalizing(base64: String, width: Double, height: Double) -> Bool {
        max(width, height) > maxSide || decodedSize(base64: base64) > maxBytes
    }
}
