import XCTest
@testable import NodeSupport

/// upstream's `redactMcpDiagnosticError`: URL credentials and secret query parameters
/// (`redactSensitiveUrlLikeString`), then the default secret patterns of `redactToolPayloadText`
/// with `maskToken` (under 18 UTF-16 units `***`, else the first 6 and the last 4).
final class SecretRedactionTests: XCTestCase {
    func check(_ input: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(SecretRedaction.diagnostic(input), expected, file: file, line: line)
    }

    func testQueryParametersAndUserInfo() {
        // upstream's node-host test: `?token=secret-value` must not leak.
        check("fetch https://api.example/v1?token=secret-value failed", "fetch https://api.example/v1?token=*** failed")
        check("connect https://alice:hunter2@example.com/mcp refused", "connect https://***:***@example.com/mcp refused")
        check("GET /x?page=2&Client-Secret=abc", "GET /x?page=2&Client-Secret=***")
        check("GET /x?%74oken=abc&q=1", "GET /x?%74oken=***&q=1")
        check("GET /x?%zzoken=abc", "GET /x?%zzoken=***")  // an encoding that does not resolve: assumed secret
        check("GET /x?page=2&sort=asc", "GET /x?page=2&sort=asc")
    }

    func testSecretPatternsAreMaskedAsUpstream() {
        check("password: hunter2", "password: ***")
        check("OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx", "OPENAI_API_KEY=sk-abc…uvwx")
        check("export GH_TOKEN='ghp_abcdefghijklmnopqrstuvwxyz'", "export GH_TOKEN='ghp_ab…wxyz'")
        check(#"{"token":"abcdefghijklmnopqrstuvwxyz"}"#, #"{"token":"abcdef…wxyz"}"#)
        check("run --api-key abcdefghijklmnopqrstu now", "run --api-key abcdef…rstu now")
        check("Authorization: Bearer abc.def", "Authorization: Bearer ***")
        check("got Bearer abcdefghijklmnopqrstuvwxyz0123 back", "got Bearer abcdef…0123 back")
        check("bot 123456789:ABCdefGHIjklMNOpqrSTUvwx said", "bot 123456…Uvwx said")
        check("xoxb-1234567890-abc in text", "xoxb-1…-abc in text")
        check("-----BEGIN RSA PRIVATE KEY-----\nAAAA\nBBBB\n-----END RSA PRIVATE KEY----- done",
              "-----BEGIN RSA PRIVATE KEY-----\n…redacted…\n-----END RSA PRIVATE KEY----- done")
    }

    func testOrdinaryTextIsLeftAlone() {
        for text in ["MCP error -32602: unknown tool nope", "Connection closed: process exited with status 3",
                     "Streamable HTTP error: Error POSTing to endpoint: [redacted response body]", "", "tokenizer=fast"] {
            check(text, text)
        }
    }

    func testMaskTokenCountsUTF16Units() {
        XCTAssertEqual(SecretRedaction.maskToken("12345678901234567"), "***")
        XCTAssertEqual(SecretRedaction.maskToken("123456789012345678"), "123456…5678")
        XCTAssertEqual(SecretRedaction.maskToken("😀😀😀abcdefghijklmn"), "😀😀😀…klmn")
    }

    /// A long text is cut before the patterns run (its caller keeps 1024 units); a secret near
    /// the start is still found, and a huge text is no hang.
    func testLongTextIsBounded() {
        let text = "token=abcdefghijklmnopqrstuvwxyz " + String(repeating: "a", count: 1_000_000)
        let redacted = SecretRedaction.diagnostic(text)
        XCTAssertTrue(redacted.hasPrefix("token=abcdef…wxyz aaa"))
        XCTAssertEqual(redacted.utf16.count, SecretRedaction.maxScannedUTF16 - 26 + 11)  // the secret 26 units, its mask 11
        XCTAssertEqual(truncateUTF16("a😀", 2), "a")
    }
}
