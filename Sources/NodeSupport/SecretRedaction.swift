/// upstream's redaction of diagnostic text a program outside the node supplied (an MCP server's
/// error, a transport failure): `redactMcpDiagnosticError`, which is `redactSensitiveUrlLikeString`
/// (URL credentials and secret query parameters) and then `redactToolPayloadText` (secret-shaped
/// substrings, masked as upstream's `maskToken` does). Errors cross to the gateway and into logs,
/// and a server may echo the credential the operator configured for it.
///
/// The patterns are upstream's default families (environment-style assignments, JSON secret
/// fields, CLI flags, bearer tokens, PEM private keys, common vendor token prefixes); upstream's
/// newest list also knows many more vendor prefixes, which are not all here.
public enum SecretRedaction {
    /// Text longer than this is cut before the patterns run (the result is cut to 1024 UTF-16
    /// units by its caller anyway; the margin keeps a PEM block that starts early whole).
    static let maxScannedUTF16 = 16 * 1024

    /// upstream's `formatMcpError`: redacted, then at most `NODE_MCP_ERROR_MAX_CHARS` (1024)
    /// UTF-16 units, never half a pair.
    public static func mcpError(_ text: String) -> String {
        truncateUTF16(diagnostic(text), 1024)
    }

    public static func diagnostic(_ text: String) -> String {
        guard !text.isEmpty else { return text }
        return secrets(in: urlLike(truncateUTF16(text, maxScannedUTF16)))
    }

    // MARK: URL credentials and query parameters (`redactSensitiveUrlLikeString`)

    /// upstream's sensitive query parameter names (compared lower-cased, `-` as `_`, percent-decoded).
    static let sensitiveQueryNames: Set<String> = [
        "token", "key", "api_key", "apikey", "secret", "access_token", "auth_token", "password", "pass",
        "passwd", "auth", "jwt", "session", "id_token", "code", "client_secret", "app_secret", "hook_token",
        "refresh_token", "signature", "x_amz_signature", "x_amz_security_token", "private_key", "credential",
        "authorization",
    ]

    static func isSensitiveQueryName(_ name: Substring) -> Bool {
        var normalized = String(name)
        // Percent-decoded until it stops changing (a bounded number of layers).
        for _ in 0..<8 {
            guard let decoded = percentDecode(normalized), decoded != normalized else { break }
            normalized = decoded
        }
        if normalized.contains("%") { return true }  // an encoding that does not resolve: assume the worst
        return sensitiveQueryNames.contains(String(normalized.lowercased().map { $0 == "-" ? "_" : $0 }))
    }

    /// `//user:pass@` → `//***:***@`; `?token=v` / `&key=v` → `…=***` (the value ends at `&`, `#`,
    /// whitespace, `<` or `>`).
    static func urlLike(_ text: String) -> String {
        var output = text.replacing(userInfo) { _ in "//***:***@" }
        output = output.replacing(queryPair) { match -> String in
            let whole = match.output[0].substring ?? ""
            guard let prefix = match.output[1].substring, let key = match.output[2].substring,
                  isSensitiveQueryName(key) else { return String(whole) }
            return "\(prefix)\(key)=***"
        }
        return output
    }

    nonisolated(unsafe) static let userInfo = try! Regex(#"//[^@/?#\s]+@"#).matchingSemantics(.unicodeScalar)
    nonisolated(unsafe) static let queryPair = try! Regex(#"([?&])([^=&#\s<>]+)=([^&#\s<>]*)"#).matchingSemantics(.unicodeScalar)

    // MARK: Secret-shaped substrings (`redactToolPayloadText` with the default patterns)

    static let patternSources: [String] = [
        // Environment-style assignments.
        #"\b[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)\b\s*[=:]\s*(["']?)([^\s"'\\]+)\1"#,
        // JSON fields.
        #""(?:apiKey|token|secret|password|passwd|accessToken|refreshToken)"\s*:\s*"([^"]+)""#,
        // CLI flags.
        #"--(?:api[-_]?key|token|secret|password|passwd)\s+(["']?)([^\s"']+)\1"#,
        // Authorization headers.
        #"Authorization\s*[:=]\s*Bearer\s+([A-Za-z0-9._\-+=]+)"#,
        #"\bBearer\s+([A-Za-z0-9._\-+=]{18,})\b"#,
        // PEM private keys.
        #"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"#,
        // Common token prefixes.
        #"\b(sk-[A-Za-z0-9_-]{8,})\b"#,
        #"\b(ghp_[A-Za-z0-9]{20,})\b"#,
        #"\b(github_pat_[A-Za-z0-9_]{20,})\b"#,
        #"\b(xox[baprs]-[A-Za-z0-9-]{10,})\b"#,
        #"\b(xapp-[A-Za-z0-9-]{10,})\b"#,
        #"\b(gsk_[A-Za-z0-9_-]{10,})\b"#,
        #"\b(AIza[0-9A-Za-z\-_]{20,})\b"#,
        #"\b(pplx-[A-Za-z0-9_-]{10,})\b"#,
        #"\b(npm_[A-Za-z0-9]{10,})\b"#,
        #"\b(\d{6,}:[A-Za-z0-9_-]{20,})\b"#,
    ]

    /// Compiled as upstream compiles them (`gi`), with JavaScript's ASCII `\d` and `\w`. (`\b`
    /// stays Unicode's: a letter such as `é` right before a token hides that token's start, where
    /// JavaScript would see a boundary. `.wordBoundaryKind(.simple)` is not used: with scalar
    /// semantics it takes digits for non-word characters, so `Bearer x…z0123` lost its digits.)
    nonisolated(unsafe) static let patterns: [Regex<AnyRegexOutput>] = patternSources.map {
        try! Regex($0).ignoresCase().asciiOnlyDigits().asciiOnlyWordCharacters().matchingSemantics(.unicodeScalar)
    }

    static func secrets(in text: String) -> String {
        var output = text
        for pattern in patterns {
            output = output.replacing(pattern) { match -> String in
                let whole = String(match.output[0].substring ?? "")
                let groups = (1..<match.output.count).compactMap { match.output[$0].substring.map(String.init) }
                return masked(whole, groups: groups)
            }
        }
        return output
    }

    /// upstream's `redactMatch`: a PEM block keeps its first and last line; otherwise the last
    /// non-empty group (or the whole match) is masked where it first occurs in the match.
    static func masked(_ match: String, groups: [String]) -> String {
        if match.contains("PRIVATE KEY-----") {
            let lines = match.split(omittingEmptySubsequences: true) { $0 == "\n" || $0 == "\r\n" }
            guard lines.count >= 2, let first = lines.first, let last = lines.last else { return "***" }
            return "\(first)\n…redacted…\n\(last)"
        }
        let token = groups.last { !$0.isEmpty } ?? match
        let mask = maskToken(token)
        if token == match { return mask }
        guard let range = match.firstRange(of: token) else { return mask }
        var output = match
        output.replaceSubrange(range, with: mask)
        return output
    }

    /// upstream's `maskToken`: under 18 UTF-16 units `***`, else the first 6 and the last 4.
    static func maskToken(_ token: String) -> String {
        let units = Array(token.utf16)
        guard units.count >= 18 else { return "***" }
        return String(decoding: units.prefix(6), as: UTF16.self) + "…" + String(decoding: units.suffix(4), as: UTF16.self)
    }
}
