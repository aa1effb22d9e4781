import XCTest
@testable import SupervisorCore

/// `argPattern` allowlist entries (upstream-2026 §1.5): the argv-bound hashes allow-always
/// writes, upstream's vectors, and regexes run by a linear-time matcher with upstream's
/// refusal of patterns that blow up backtracking engines.
final class ArgPatternTests: XCTestCase {
    func testUpstreamsCwdBoundVectorAndTheArgvForm() {
        XCTAssertEqual(ArgPattern.cwdArgvHash(["/usr/bin/printf", "hello world", ""], cwd: "/workspace"),
                       "sha256:cwd-argv:v1:2b4f4aed226aa1fd771c852b8f74e4c162d440aafaf60bfef19746f3b2ee5890")
        XCTAssertEqual(ArgPattern.argvHash(["/usr/bin/printf", "hello world", ""]),
                       "sha256:argv:c8edbca79cb5072ab8bf7b609b61326c6af89a8bbf9ec5fade2333b4b0a7c4df")
        XCTAssertNotEqual(ArgPattern.argvHash(["tool"]), ArgPattern.argvHash(["tool", "", ""]), "empty tails stay distinct")
        let grant = ArgPattern.argvHash(["/usr/bin/make", "deploy"])
        XCTAssertTrue(ArgPattern.matches(grant, argv: ["make", "deploy"], cwd: nil), "argv[0] is not hashed")
        XCTAssertFalse(ArgPattern.matches(grant, argv: ["make", "deploy", "-j8"], cwd: nil))
        let here = ArgPattern.cwdArgvHash(["make", "deploy"], cwd: "/srv/app")
        XCTAssertTrue(ArgPattern.matches(here, argv: ["make", "deploy"], cwd: "/srv/app/./"))
        XCTAssertFalse(ArgPattern.matches(here, argv: ["make", "deploy"], cwd: "/srv/other"))
        XCTAssertFalse(ArgPattern.matches(here, argv: ["make", "deploy"], cwd: nil))
    }

    /// upstream's parity fixture (test/fixtures/exec-arg-pattern-native-parity.json, 15 cases):
    /// `accept` = the pattern is accepted and matches the argument.
    static let parity: [(id: String, pattern: String, accept: Bool, argument: String)] = [
        ("nested-plus", "(a+)+$", false, "aaaa"),
        ("adjacent-star", "^a*a*a*a*a*a*a*a*a*a*b$", false, String(repeating: "a", count: 40) + "b"),
        ("unicode-property-adjacent", #"^\p{L}*\p{L}*\p{L}*z$"#, false, "AAAz"),
        ("unicode-property-identity-nested", #"\p{(a+)+}"#, false, "paaaa"),
        ("unicode-hex-adjacent", #"\u0041*\u0041*"#, false, "AAAA"),
        ("unicode-property-alias-adjacent", #"\p{Script=Arabic}*\p{sc=Arab}*"#, false, "ااا"),
        ("overlapping-unions", "^(a|b)*(b|c)*z$", false, "bbbbz"),
        ("wrapped-unions", "^((a|b))*((b|c))*z$", false, "bbbbz"),
        ("zero-minimum-omit", "^a*x?a*x?a*x?a*b$", false, String(repeating: "a", count: 40) + "b"),
        ("invalid-regex", "[", false, "x"),
        ("safe-json-flag", "^--json$", true, "--json"),
        ("safe-json-flag-miss", "^--json$", false, "--files"),
        ("disjoint-stars", "^a*b*$", true, "aaabbb"),
        ("required-separator", "^a*xa*b$", true, "axab"),
        ("disjoint-unions", "^(a|x)*(b|y)*z$", true, "axbyz"),
    ]

    func testUpstreamsParityFixture15Rows() {
        for row in Self.parity {
            let accepted = ArgRegex(row.pattern)?.search(row.argument) ?? false
            XCTAssertEqual(accepted, row.accept, row.id)
        }
        XCTAssertEqual(ArgRegex.refusal("(a+)+$"), .unsafeNestedRepetition)
        XCTAssertEqual(ArgRegex.refusal("^(a|aa)+$"), .unsafeNestedRepetition)
        XCTAssertEqual(ArgRegex.refusal("^(aa|a.)+$"), .unsafeNestedRepetition)
        XCTAssertEqual(ArgRegex.refusal("["), .invalidRegex)
        for kept in ["^safe$", #"\ "#, "", " ", "^(ab)*(cb)*$", "^(ab|[c]d)+$"] { XCTAssertNil(ArgRegex.refusal(kept), kept) }
    }

    func testECMAScriptBasicsAsASearchOverSpaceJoinedArguments() {
        XCTAssertTrue(ArgPattern.matches(#"^status( --short)?$"#, argv: ["git", "status"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches(#"^status( --short)?$"#, argv: ["git", "status", "--short"], cwd: nil))
        XCTAssertFalse(ArgPattern.matches(#"^status( --short)?$"#, argv: ["git", "status", "--porcelain"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches("log", argv: ["git", "--no-pager", "log", "-1"], cwd: nil), "a search, not anchored")
        XCTAssertTrue(ArgPattern.matches(#"^-n \d{1,3}$"#, argv: ["head", "-n", "42"], cwd: nil))
        XCTAssertFalse(ArgPattern.matches(#"^-n \d{1,3}$"#, argv: ["head", "-n", "4242"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches(#"^[^;&|]+$"#, argv: ["echo", "a", "b"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches(#"\bfoo\b"#, argv: ["grep", "x foo y"], cwd: nil))
        XCTAssertFalse(ArgPattern.matches(#"\bfoo\b"#, argv: ["grep", "xfooy"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches(#"^(?:a|b)c\.d$"#, argv: ["x", "bc.d"], cwd: nil))
        XCTAssertFalse(ArgPattern.matches(#"(a)\1"#, argv: ["x", "aa"], cwd: nil), "backreferences are not supported: no match")
        XCTAssertFalse(ArgPattern.matches(#"(?=a)a"#, argv: ["x", "a"], cwd: nil), "lookaround is not supported: no match")
    }

    /// What JavaScript refuses is refused whole, never read as the pattern without the bad part.
    func testAQuantifierJavaScriptRefusesMakesThePatternInvalid() {
        for bad in ["^a{5,2}$", "^a{1001}$", "^*a", "a$+", #"\b+x"#, "a{2}{3}", String(repeating: "(", count: 65) + "a"
                    + String(repeating: ")", count: 65), String(repeating: "a", count: 1_025), "^\u{1F600}$"] {
            XCTAssertEqual(ArgRegex.refusal(bad), .invalidRegex, bad)
        }
        XCTAssertFalse(ArgPattern.matches("^a{5,2}$", argv: ["x", "a"], cwd: nil))
        XCTAssertNil(ArgRegex.refusal(String(repeating: "(", count: 60) + "a" + String(repeating: ")", count: 60)))
        XCTAssertNil(ArgRegex.refusal("^a{,5}$"), "a brace that is no quantifier is a literal, as in JS")
        XCTAssertTrue(ArgPattern.matches("^a{,5}$", argv: ["x", "a{,5}"], cwd: nil))
    }

    /// JavaScript without `u` reads UTF-16 code units: an emoji is two `.`s.
    func testTheSubjectIsReadAsUTF16CodeUnits() {
        XCTAssertFalse(ArgPattern.matches("^.$", argv: ["x", "\u{1F600}"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches("^..$", argv: ["x", "\u{1F600}"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches("^.$", argv: ["x", "é"], cwd: nil))
        XCTAssertTrue(ArgPattern.matches(#"^\uD83D\uDE00$"#, argv: ["x", "\u{1F600}"], cwd: nil))
    }

    /// A pattern a backtracking engine takes exponential time on is refused or runs in linear
    /// time: either way the answer comes at once.
    func testNoPatternMakesTheSupervisorBacktrack() {
        let subject = String(repeating: "a", count: 5_000) + "!"
        let started = DispatchTime.now().uptimeNanoseconds
        for pattern in ["(a+)+$", "(a|a)+$", "(.*a){25}", "^(a|b|ab)*c$", "(x+x+)+y", #"^(\w+\s?)*$"#, "(a*)*b", "a{0,1000}a{0,1000}b"] {
            XCTAssertFalse(ArgPattern.matches(pattern, argv: ["x", subject], cwd: nil), pattern)
        }
        XCTAssertTrue(ArgPattern.matches("^a{0,1000}!$", argv: ["x", String(repeating: "a", count: 999) + "!"], cwd: nil))
        let elapsedMs = (DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
        XCTAssertLessThan(elapsedMs, 5_000, "the matcher is linear: \(elapsedMs) ms")
    }
}
