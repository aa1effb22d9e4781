/// Renders an argv as the canonical command text (`formatExecCommand`, node-host spec §3.2).
///
/// Guarantees:
/// - The rendering is a pure function of the exact argv: nothing is trimmed or normalised, so
///   `["ls "]` and `["ls"]` render differently (attack class 6: a trailing-space executable
///   token must not look like a different binary).
/// - Arguments are joined with single spaces; an empty argument renders as `""`; an argument
///   containing whitespace or `"` is wrapped in double quotes with each inner `"` written `\"`;
///   everything else (including `'`, `$`, `*`, `\`) is verbatim.
///
/// The text is display and binding metadata (events, prompts, `rawCommand` equality); it is not
/// a shell-safe quoting and must never be fed to a shell.
public enum ExecCommandText {
    public static func format(_ argv: [String]) -> String {
        argv.map(render).joined(separator: " ")
    }

    private static func render(_ arg: String) -> String {
        if arg.isEmpty { return "\"\"" }
        guard arg.unicodeScalars.contains(where: { $0 == "\"" || isWhitespace($0) }) else { return arg }
        var out = "\""
        for scalar in arg.unicodeScalars {
            if scalar == "\"" { out += "\\\"" } else { out.unicodeScalars.append(scalar) }
        }
        return out + "\""
    }

    /// The exact set matched by JavaScript's `\s`, because the gateway renders `rawCommand` with
    /// that class and the node must reproduce the same bytes for the equality check to hold.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
             0x3000, 0xFEFF:
            return true
        default:
            return false
        }
    }
}
