@testable import SupervisorCore
import XCTest

final class JSON5LocatorTests: XCTestCase {
    private func locate(_ text: String, json5: Bool = true) -> JSON5Locator.Location? {
        JSON5Locator.firstError(in: Array(text.utf8), json5: json5)
    }

    private func at(_ line: Int, _ column: Int, _ reason: String) -> JSON5Locator.Location {
        JSON5Locator.Location(line: line, column: column, reason: reason)
    }

    func testDoubleCommaIsAnErrorAtTheSecondComma() {
        XCTAssertEqual(locate("{ a: 1,\n b: 2,, }"), at(2, 7, "unexpected character ','"))
        XCTAssertEqual(locate("[1,,2]"), at(1, 4, "unexpected character ','"))
    }

    func testValidJSON5HasNoError() {
        let text = #"""
        // a line comment
        {
          /* a block
             comment */ unquoted: 'single "quoted"',
          "double": "esc\"aped \u00e9 \n",
          $id_1: null, t: true, f: false,
          hex: 0xFF, neg: -.5, pos: +1., exp: 1e-3, inf: -Infinity, nan: NaN,
          list: [1, 2, 3,],
          nested: { deep: [[], {}, ['x',],], },
          multi: 'line\
        continued',
        }
        // trailing comment
        """#
        XCTAssertNil(locate(text))
    }

    func testValidPlainJSONHasNoError() {
        XCTAssertNil(locate(#"{"a": [1, -2.5e+3, 0, true, false, null], "b": {"c": "\u0041\/"}}"#, json5: false))
        XCTAssertNil(locate("\u{FEFF}{ \"bom\": 1 }\n", json5: false))
    }

    func testUnterminatedStringIsAnErrorAtItsOpeningQuote() {
        XCTAssertEqual(locate(#"{ "a": "abc }"#), at(1, 8, "unterminated string"))
        XCTAssertEqual(locate("{ a: 'x\\"), at(1, 6, "unterminated string"))
    }

    func testRawNewlineInsideAString() {
        XCTAssertEqual(locate("{ a: \"abc\n}"), at(1, 10, "newline inside string"))
    }

    func testUnexpectedEndOfFileIsJustPastTheLastByte() {
        XCTAssertEqual(locate("{\n  \"a\": [1, 2"), at(2, 13, "unexpected end of file"))
        XCTAssertEqual(locate("{\n"), at(2, 1, "unexpected end of file"))
        XCTAssertEqual(locate(""), at(1, 1, "unexpected end of file"))
        XCTAssertEqual(locate("{ a: tru"), at(1, 9, "unexpected end of file"))
    }

    func testTextAfterTheTopLevelValue() {
        XCTAssertEqual(locate("{ \"a\": 1 }\n}"), at(2, 1, "unexpected text after the end"))
        XCTAssertEqual(locate("{} // done\n x"), at(2, 2, "unexpected text after the end"))
    }

    func testMissingColonAndMissingValue() {
        XCTAssertEqual(locate("{\n  name \"x\"\n}"), at(2, 8, "expected ':' after key"))
        XCTAssertEqual(locate("{ a: , b: 2 }"), at(1, 6, "missing value before ','"))
        XCTAssertEqual(locate("{ a: 1 b: 2 }"), at(1, 8, "expected ',' or '}'"))
        XCTAssertEqual(locate("[1, 2}"), at(1, 6, "expected ',' or ']'"))
    }

    func testTabCountsAsOneColumn() {
        XCTAssertEqual(locate("{\n\t\"a\": 1\n\t\"b\": 2\n}"), at(3, 2, "expected ',' or '}'"))
    }

    func testUnterminatedBlockCommentIsAnErrorAtItsStart() {
        XCTAssertEqual(locate("{ a: 1 /* open\n}"), at(1, 8, "unterminated comment"))
    }

    func testBareWordsAndBadNumbers() {
        XCTAssertEqual(locate("{ mode: fast }"), at(1, 9, "invalid value 'fast'"))
        XCTAssertEqual(locate("[1.2.3]"), at(1, 5, "invalid number"))
        XCTAssertEqual(locate("[0x]"), at(1, 4, "invalid number"))
        XCTAssertEqual(locate("{ 1a: 2 }"), at(1, 3, "unquoted key cannot start with a digit"))
    }

    func testPlainJSONIsStricter() {
        XCTAssertEqual(locate("[1, 2,]", json5: false), at(1, 6, "trailing comma is not allowed in json"))
        XCTAssertNil(locate("[1, 2,]"))
        XCTAssertEqual(locate("// x\n{}", json5: false), at(1, 1, "comments are not allowed in json"))
        XCTAssertEqual(locate("{ a: 1 }", json5: false), at(1, 3, "expected a double-quoted key"))
        XCTAssertEqual(locate("[01]", json5: false), at(1, 3, "leading zero in number"))
        XCTAssertEqual(locate("[0x1F]", json5: false), at(1, 3, "invalid number"))
    }

    func testByteOrderMarkIsNotAColumn() {
        XCTAssertEqual(locate("\u{FEFF}{ a: }"), at(1, 6, "missing value before '}'"))
    }
}
