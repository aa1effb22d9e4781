import FoundationEssentials
import XCTest
@testable import OpenClawIPC

/// The direct JSONValue reader/writer against Foundation's JSONEncoder/JSONDecoder.
final class JSONValueTextTests: XCTestCase {
    func foundationText(_ value: JSONValue) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    var generator = SystemRandomNumberGenerator()

    func randomString() -> String {
        let pieces = ["a", "B", "z", "10", "2", "/", "\\", "\"", "\n", "\t", "\u{01}", "\u{1F}", "é", "ß", "€", "😀", " ", "_", "-", "\u{2028}", "\u{7F}"]
        return (0..<Int.random(in: 0...6)).map { _ in pieces.randomElement()! }.joined()
    }

    func randomValue(depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0...(depth > 3 ? 3 : 5)) {
        case 0: return .null
        case 1: return .bool(Bool.random())
        case 2:
            let choices: [Double] = [0, -0.0, 1, -1, 42, 1.5, -2.25, 0.1, 1e-7, 123456.789, 9.007_199_254_740_991e15, 1e300, -3e-300,
                                     Double(Int.random(in: -1_000_000...1_000_000)), Double.random(in: -1e6...1e6)]
            return .number(choices.randomElement()!)
        case 3: return .string(randomString())
        case 4: return .array((0..<Int.random(in: 0...4)).map { _ in randomValue(depth: depth + 1) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...5) { object[randomString()] = randomValue(depth: depth + 1) }
            return .object(object)
        }
    }

    func testSerializationMatchesJSONEncoderByteForByte() throws {
        for _ in 0..<3000 {
            let value = randomValue()
            let ours = value.serialized()
            let theirs = try foundationText(value)
            XCTAssertEqual(String(decoding: ours, as: UTF8.self), String(decoding: theirs, as: UTF8.self))
            XCTAssertEqual(try JSONValue.parse(ours), try JSONDecoder().decode(JSONValue.self, from: Data(theirs)))
        }
    }

    func testParsesWhatFoundationParses() throws {
        let texts = [
            #" { "a" : [1, 2.5, -3e2, true, false, null, "x\/y\u00e9\ud83d\ude00\n"] , "b":{} ,"c":[]} "#,
            #""plain""#, "0", "-0", "1E+2",
        ]
        for text in texts {
            XCTAssertEqual(try JSONValue.parse(Array(text.utf8)), try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), text)
        }
        // A duplicated key keeps its last value, as JSON.parse does on the gateway (Foundation keeps the first).
        XCTAssertEqual(try JSONValue.parse(Array(#"{"dup":1,"dup":2}"#.utf8)), .object(["dup": .number(2)]))
    }

    func testRejectsMalformedInputWithoutCrashing() {
        let bad = ["", " ", "{", "[1,]", "{\"a\"}", "{\"a\":}", "01", "1.", ".5", "-", "1e", "tru", "nul", "\"abc", "\"\\x\"",
                   "\"\\u12\"", "\"a\u{01}b\"", "[1] 2", "{'a':1}", "NaN", "Infinity", "[" + String(repeating: "[", count: 600)]
        for text in bad {
            XCTAssertThrowsError(try JSONValue.parse(Array(text.utf8)), text)
        }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try JSONValue.parse(Array(deep.utf8)))
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        XCTAssertNoThrow(try JSONValue.parse(Array(fine.utf8)))
    }

    /// Issue 14 finding 5: valid JSON never makes a frame unreadable. JSON.parse reads numbers
    /// beyond the Double range as ±Infinity (or 0) and keeps lone surrogates.
    func testNumbersBeyondTheDoubleRangeReadAsJavaScriptDoes() throws {
        XCTAssertEqual(try JSONValue.parse(Array(#"{"timeoutMs":1e400}"#.utf8))["timeoutMs"], .number(.infinity))
        XCTAssertEqual(try JSONValue.parse(Array("-1e400".utf8)), .number(-.infinity))
        XCTAssertEqual(try JSONValue.parse(Array("1e-400".utf8)), .number(0))
        XCTAssertEqual(String(decoding: JSONValue.object(["n": .number(.infinity)]).serialized(), as: UTF8.self), #"{"n":null}"#)
        XCTAssertEqual(try JSONText.encode([JSONValue.number(-.infinity)]), "[null]")
        XCTAssertNil(JSONValue.number(.infinity).intValue)
        XCTAssertNil(JSONValue.number(1e300).intValue)
        XCTAssertNil(JSONValue.number(1.5).intValue)
        XCTAssertEqual(JSONValue.number(9_007_199_254_740_992).intValue, 9_007_199_254_740_992)
        XCTAssertEqual(Double.infinity.saturatingInt, Int.max)
        XCTAssertEqual((-1e300).saturatingInt, Int.min)
        XCTAssertEqual(Double.nan.saturatingInt, 0)
    }

    func testLoneSurrogatesBecomeTheReplacementCharacter() throws {
        XCTAssertEqual(try JSONValue.parse(Array(#""a\ud800b""#.utf8)), .string("a\u{FFFD}b"))
        XCTAssertEqual(try JSONValue.parse(Array(#""\udc00""#.utf8)), .string("\u{FFFD}"))
        XCTAssertEqual(try JSONValue.parse(Array(#""\ud800\u0041""#.utf8)), .string("\u{FFFD}A"))
        XCTAssertEqual(try JSONValue.parse(Array(#""\ud83d\ude00""#.utf8)), .string("\u{1F600}"))
    }

    /// JavaScript's String(n), which `command` coercion and the browser routes use.
    func testJavaScriptNumberText() {
        XCTAssertEqual(1e20.javaScriptString, "100000000000000000000")
        XCTAssertEqual((-1.5e19).javaScriptString, "-15000000000000000000")
        XCTAssertEqual(1e21.javaScriptString, "1e+21")
        XCTAssertEqual(1.5e300.javaScriptString, "1.5e+300")
        XCTAssertEqual(1e-7.javaScriptString, "1e-7")
        XCTAssertEqual(0.5.javaScriptString, "0.5")
        XCTAssertEqual(Double.infinity.javaScriptString, "Infinity")
        XCTAssertEqual((-0.0).javaScriptString, "0")
        XCTAssertEqual(42.0.javaScriptString, "42")
        // Review find: whole numbers between 2^63 and 1e21 trapped (a gateway's `command: [n]`).
        XCTAssertEqual(700000000089999933440.0.javaScriptString, "700000000089999933440")
        for _ in 0..<10_000 {
            let value = Double.random(in: 9.2e18..<1e21).rounded(.down) * (Bool.random() ? 1 : -1)
            let text = value.javaScriptString
            XCTAssertEqual(Double(text), value, text)
            XCTAssertTrue(text.drop { $0 == "-" }.allSatisfy(\.isNumber), text)
        }
    }

    func testMutatedTextsNeverCrash() {
        let seed = Array(#"{"type":"event","event":"node.invoke.request","payload":{"id":"1","paramsJSON":"{\"a\":[1,2]}","n":-1.5e3}}"#.utf8)
        for _ in 0..<20000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...4) {
                let position = Int.random(in: 0..<bytes.count)
                switch Int.random(in: 0...2) {
                case 0: bytes[position] = UInt8.random(in: 0...255)
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8.random(in: 0...255), at: position)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            if let value = try? JSONValue.parse(bytes) {
                // Serialising is idempotent (±Infinity is written as null, as JSON.stringify does).
                let text = value.serialized()
                XCTAssertEqual((try? JSONValue.parse(text))?.serialized(), text)
            }
        }
    }
}

final class RandomIDTests: XCTestCase {
    func testUUIDv4Shape() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = RandomID.uuid()
            let parts = id.split(separator: "-").map(\.count)
            XCTAssertEqual(parts, [8, 4, 4, 4, 12], id)
            XCTAssertTrue(id.allSatisfy { "0123456789abcdef-".contains($0) }, id)
            XCTAssertEqual(Array(id)[14], "4", id)
            XCTAssertTrue("89ab".contains(Array(id)[19]), id)
            seen.insert(id)
        }
        XCTAssertEqual(seen.count, 1000)
    }
}
