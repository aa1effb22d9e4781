import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// Setup codes as upstream's `decodePairingSetupCode` reads them (setup-code.test.ts).
final class SetupCodeTests: XCTestCase {
    let now: Int64 = 1_700_000_000_000

    func code(_ object: [String: Any]) -> String {
        Base64URL.encode(Array(((try? JSONText.encode(Self.json(object))) ?? "{}").utf8))
    }

    static func json(_ value: Any) -> JSONValue {
        switch value {
        case let value as JSONValue: return value
        case let value as String: return .string(value)
        case let value as Bool: return .bool(value)
        case let value as Int: return .number(Double(value))
        case let value as Int64: return .number(Double(value))
        case let value as Double: return .number(value)
        case let value as [Any]: return .array(value.map(json))
        case let value as [String: Any]: return .object(value.mapValues(json))
        default: return .null
        }
    }

    func testABareCodeAndAnOcPairURLDecodeTheSame() throws {
        let text = code(["url": "wss://gw.example:8443/openclaw-gw", "bootstrapToken": "bt", "expiresAtMs": now + 1,
                         "tlsFingerprint": "SHA256:" + Array(repeating: "AB", count: 32).joined(separator: ":"), "extra": true])
        for input in [text, "oc-pair://" + text, "  OC-PAIR://" + text + "\n"] {
            let decoded = try SetupCode.decode(input, nowMs: now)
            XCTAssertEqual(decoded.url, "wss://gw.example:8443/openclaw-gw")
            XCTAssertEqual(decoded.bootstrapToken, "bt")
            XCTAssertEqual(decoded.expiresAtMs, now + 1)
            XCTAssertEqual(decoded.tlsFingerprint, String(repeating: "ab", count: 32))
            XCTAssertEqual(decoded.candidates, [GatewayEndpoint(host: "gw.example", port: 8443, tls: true,
                                                               fingerprint: String(repeating: "ab", count: 32), contextPath: "/openclaw-gw")])
        }
    }

    func testUpstreamsErrors() {
        func failure(_ input: String) -> SetupCode.Failure? {
            do { _ = try SetupCode.decode(input, nowMs: now); return nil } catch { return error as? SetupCode.Failure }
        }
        XCTAssertEqual(failure("not-json"), .invalidCode)
        XCTAssertEqual(failure("has spaces"), .invalidCode)
        XCTAssertEqual(failure(""), .invalidCode)
        XCTAssertEqual(failure(Base64URL.encode(Array("[1]".utf8))), .invalidPayload)
        for url in ["https://gw.example", "wss://gw.example/", "wss://gw.example:443", "wss://GW.example", "wss://u@gw.example",
                    "wss://gw.example?x=1", "ftp://gw.example"] {
            XCTAssertEqual(failure(code(["url": url, "bootstrapToken": "t"])), .invalidPayload, url)
        }
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": ""])), .invalidPayload)
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": "t", "urls": [String]()])), .invalidPayload)
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": "t", "urls": [1]])), .invalidPayload)
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": "t",
                                     "urls": Array(repeating: "ws://gw.example", count: 9)])), .invalidPayload)
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": "t", "expiresAtMs": -1])), .invalidPayload)
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": "t", "expiresAtMs": now])), .expired)
        XCTAssertEqual(failure(code(["url": "ws://gw.example", "bootstrapToken": "t", "tlsFingerprint": "sha256:abc123"])), .invalidPayload)
        XCTAssertEqual(SetupCode.Failure.invalidCode.description, "Invalid pairing setup code or URL.")
        XCTAssertEqual(SetupCode.Failure.invalidPayload.description, "Invalid pairing setup payload.")
        XCTAssertEqual(SetupCode.Failure.expired.description, "Pairing setup code has expired.")
    }

    func testUrlsReplaceUrlInOrderAndThePinStaysWithUrl() throws {
        let pin = String(repeating: "c", count: 64)
        let decoded = try SetupCode.decode(code(["url": "wss://b.example", "bootstrapToken": "t", "tlsFingerprint": pin,
                                                 "urls": ["ws://a.example:18789", "wss://b.example", "ws://[::1]:9"]]), nowMs: now)
        XCTAssertEqual(decoded.candidates, [
            GatewayEndpoint(host: "a.example", port: 18789, tls: false, fingerprint: nil),
            GatewayEndpoint(host: "b.example", port: 443, tls: true, fingerprint: pin),
            GatewayEndpoint(host: "::1", port: 9, tls: false, fingerprint: nil),
        ])
    }
}
