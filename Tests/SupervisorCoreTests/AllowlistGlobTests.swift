import SupervisorCore
import Glibc
import XCTest

final class AllowlistGlobTests: XCTestCase {
    private func matches(_ pattern: String, _ path: String, home: String? = "/home/u") -> Bool {
        AllowlistGlob.matches(pattern: pattern, path: path, home: home)
    }

    func testSingleStarStopsAtSlash() {
        XCTAssertTrue(matches("/usr/bin/*", "/usr/bin/id"))
        XCTAssertFalse(matches("/usr/bin/*", "/usr/bin/sub/id"))
        XCTAssertTrue(matches("/usr/*/id", "/usr/bin/id"))
    }

    func testDoubleStarCrossesSlashes() {
        XCTAssertTrue(matches("/usr/**", "/usr/bin/sub/id"))
        XCTAssertTrue(matches("/opt/**/bin/tool", "/opt/a/b/c/bin/tool"))
        XCTAssertTrue(matches("/opt/**/bin/tool", "/opt//bin/tool"))
    }

    func testQuestionMarkMatchesExactlyOneNonSlashCharacter() {
        XCTAssertTrue(matches("/usr/bin/i?", "/usr/bin/id"))
        XCTAssertFalse(matches("/usr/bin/i?", "/usr/bin/idd"))
        XCTAssertFalse(matches("/usr/bin/i?", "/usr/bin/i"))
        XCTAssertFalse(matches("/usr/bin?id", "/usr/bin/id"))
    }

    func testMatchIsAnchored() {
        XCTAssertFalse(matches("/usr/bin/i", "/usr/bin/id"))
        XCTAssertFalse(matches("bin/id", "/usr/bin/id"))
        XCTAssertFalse(matches("/usr/bin/id", "/usr/bin/id2"))
        XCTAssertTrue(matches("/usr/bin/id", "/usr/bin/id"))
    }

    /// Issue 14 finding 7: a pattern authorises exactly the file it names; upstream lower-cases
    /// only on Windows ("preserves case sensitivity on POSIX").
    func testMatchIsCaseSensitiveOnLinux() {
        XCTAssertFalse(matches("/x/bin/tool", "/x/bin/TOOL"))
        XCTAssertFalse(matches("/USR/BIN/ID", "/usr/bin/id"))
        XCTAssertFalse(matches("/usr/bin/*", "/USR/BIN/Tool"))
        XCTAssertFalse(matches("/tmp/Allowed-Tool", "/tmp/allowed-tool"))
        XCTAssertTrue(matches("/usr/bin/T*", "/usr/bin/Tool"))
    }

    func testBackslashesInAPatternReadAsSlashesButNotInAPath() {
        XCTAssertTrue(matches(#"\usr\bin\id"#, "/usr/bin/id"))
        XCTAssertFalse(matches("/usr/bin/*", #"\usr\bin\id"#))
        XCTAssertFalse(matches("/x/a/b", #"/x/a\b"#))
    }

    func testLeadingTildeExpandsToHome() {
        XCTAssertTrue(matches("~/bin/*", "/home/u/bin/tool"))
        XCTAssertTrue(matches("~/bin/*", "/home/u/bin/tool", home: "/home/u/"))
        XCTAssertFalse(matches("~/bin/*", "/home/v/bin/tool"))
        XCTAssertFalse(matches("~/bin/*", "/home/u/bin/tool", home: nil))
        XCTAssertFalse(matches("~other/bin/tool", "/home/other/bin/tool"))
    }

    func testBasenameOnlyPatternIsIgnored() {
        XCTAssertFalse(AllowlistGlob.isUsable("id"))
        XCTAssertFalse(AllowlistGlob.isUsable("python3"))
        XCTAssertFalse(matches("id", "id"))
        XCTAssertFalse(matches("i*", "/usr/bin/id"))
        XCTAssertTrue(AllowlistGlob.isUsable("~"))
        XCTAssertTrue(AllowlistGlob.isUsable(#"C:\tools"#))
    }

    func testBareStarMatchesAnything() {
        XCTAssertTrue(AllowlistGlob.isUsable("*"))
        XCTAssertTrue(AllowlistGlob.isUsable(" * "))
        XCTAssertTrue(matches("*", "/usr/bin/sub/id"))
        XCTAssertTrue(matches("*", "relative"))
    }

    func testPatternWhitespaceIsTrimmedButPathIsNot() {
        XCTAssertTrue(matches("  /usr/bin/id ", "/usr/bin/id"))
        XCTAssertFalse(matches("/usr/bin/id", "/usr/bin/id "))
    }

    func testPathologicalPatternRunsInPolynomialTime() {
        let pattern = "/" + String(repeating: "**a", count: 40) + "b"
        let path = "/" + String(repeating: "a/", count: 3000)
        let singleStars = "/" + String(repeating: "*a", count: 40) + "b"
        let flat = "/" + String(repeating: "a", count: 6000)
        let start = clock()
        XCTAssertFalse(matches(pattern, path))
        XCTAssertFalse(matches(singleStars, flat))
        let seconds = Double(clock() - start) / Double(CLOCKS_PER_SEC)
        XCTAssertLessThan(seconds, 5)
    }
}
