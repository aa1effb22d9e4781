import SupervisorCore
import Glibc
import XCTest

final class ExecutableResolverTests: ScratchTestCase {
    func testBareNameIsSearchedInPathOrder() {
        Scratch.makeSubdirectory(dir + "/a")
        Scratch.makeSubdirectory(dir + "/b")
        Scratch.writeFile(dir + "/a/tool", mode: 0o755)
        Scratch.writeFile(dir + "/b/tool", mode: 0o755)
        XCTAssertEqual(ExecutableResolver.resolve("tool", cwd: nil, pathEnv: "\(dir)/a:\(dir)/b"), dir + "/a/tool")
        XCTAssertEqual(ExecutableResolver.resolve("tool", cwd: nil, pathEnv: "\(dir)/b:\(dir)/a"), dir + "/b/tool")
    }

    func testNonExecutableFilesAndDirectoriesAreSkipped() {
        Scratch.makeSubdirectory(dir + "/a")
        Scratch.makeSubdirectory(dir + "/b")
        Scratch.makeSubdirectory(dir + "/c")
        Scratch.writeFile(dir + "/a/tool", mode: 0o644)
        Scratch.makeSubdirectory(dir + "/b/tool")
        Scratch.writeFile(dir + "/c/tool", mode: 0o755)
        XCTAssertEqual(
            ExecutableResolver.resolve("tool", cwd: nil, pathEnv: "\(dir)/a:\(dir)/b:\(dir)/c"), dir + "/c/tool")
    }

    func testRelativeTokenIsJoinedToCwdWithoutNormalising() {
        Scratch.writeFile(dir + "/tool", mode: 0o755)
        XCTAssertEqual(ExecutableResolver.resolve("./tool", cwd: dir, pathEnv: "/usr/bin"), dir + "/./tool")
        XCTAssertNil(ExecutableResolver.resolve("./tool", cwd: "/", pathEnv: dir))
    }

    func testSlashTokenNeverConsultsPath() {
        Scratch.makeSubdirectory(dir + "/sub")
        Scratch.writeFile(dir + "/sub/tool", mode: 0o755)
        XCTAssertNil(ExecutableResolver.resolve("sub/tool", cwd: "/", pathEnv: dir))
        XCTAssertEqual(ExecutableResolver.resolve("sub/tool", cwd: dir, pathEnv: ""), dir + "/sub/tool")
    }

    func testEmptyAndRelativePathEntriesAreIgnored() {
        Scratch.makeSubdirectory(dir + "/bin")
        Scratch.writeFile(dir + "/tool", mode: 0o755)
        Scratch.writeFile(dir + "/bin/tool", mode: 0o755)
        var saved = [CChar](repeating: 0, count: 4096)
        XCTAssertNotNil(getcwd(&saved, saved.count))
        XCTAssertEqual(chdir(dir), 0)
        defer { _ = chdir(saved) }
        XCTAssertNil(ExecutableResolver.resolve("tool", cwd: dir, pathEnv: ":.:bin"))
    }

    func testTrailingSpaceTokenDoesNotResolveToTheTrimmedBinary() {
        XCTAssertEqual(ExecutableResolver.resolve("id", cwd: nil, pathEnv: "/usr/bin"), "/usr/bin/id")
        XCTAssertNil(ExecutableResolver.resolve("id ", cwd: nil, pathEnv: "/usr/bin"))
        XCTAssertNil(ExecutableResolver.resolve("/usr/bin/id ", cwd: nil, pathEnv: "/usr/bin"))
    }

    func testSymlinkedBinSpellingIsReturnedAsFound() {
        XCTAssertEqual(ExecutableResolver.resolve("id", cwd: nil, pathEnv: "/bin:/usr/bin"), "/bin/id")
        XCTAssertEqual(ExecutableResolver.resolve("/bin/id", cwd: nil, pathEnv: ""), "/bin/id")
    }

    func testRealpathResolvesTheBinSymlink() {
        XCTAssertEqual(ExecutableResolver.realpath("/bin/id"), "/usr/bin/id")
        XCTAssertNil(ExecutableResolver.realpath(dir + "/missing"))
    }

    func testMissingAbsolutePathAndEmptyTokenResolveToNil() {
        XCTAssertNil(ExecutableResolver.resolve(dir + "/missing", cwd: nil, pathEnv: "/usr/bin"))
        XCTAssertNil(ExecutableResolver.resolve("", cwd: nil, pathEnv: "/usr/bin"))
    }
}
