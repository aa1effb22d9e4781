import Glibc
import NodeSupport

/// The machine's model as upstream's node host reports it (`client.modelIdentifier`): the
/// first non-empty of the DMI product name and the device-tree model (DMI is absent on many
/// ARM hosts, the device tree on most x86 ones), trimmed, trailing NULs removed, at most 64
/// UTF-16 units without splitting a pair.
public enum MachineModel {
    public static let sources = ["/sys/devices/virtual/dmi/id/product_name", "/proc/device-tree/model"]
    public static let maxUTF16 = 64

    public static func identifier(sources: [String] = sources) -> String? {
        for path in sources {
            guard let bytes = try? readWholeFile(path) else { continue }
            if let model = normalize(String(decoding: bytes, as: UTF8.self)) { return model }
        }
        return nil
    }

    static func normalize(_ raw: String) -> String? {
        // JavaScript's `trim()`, then trailing NULs, then trimmed again (upstream's order).
        var text = raw.trimmingWhitespace()
        while text.unicodeScalars.last == "\0" { text.unicodeScalars.removeLast() }
        text = text.trimmingWhitespace()
        guard !text.isEmpty else { return nil }
        var kept = String.UnicodeScalarView()
        var units = 0
        for scalar in text.unicodeScalars {
            units += scalar.utf16.count
            if units > maxUTF16 { break }
            kept.append(scalar)
        }
        return String(kept)
    }
}
