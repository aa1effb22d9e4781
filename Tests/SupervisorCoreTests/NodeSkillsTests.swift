import XCTest
@testable import SupervisorCore

/// Node-hosted skills as upstream's `skills.ts` reads them: names, limits, warnings.
final class NodeSkillsTests: ScratchTestCase {
    func write(_ name: String, description: String = "does it", body: String = "text\n", frontName: String? = nil) {
        Scratch.makeSubdirectoryIfNeeded(dir + "/" + name)
        Scratch.writeFile("\(dir)/\(name)/SKILL.md", mode: 0o644,
                          contents: "---\nname: \(frontName ?? name)\ndescription: \(description)\n---\n\(body)")
    }

    func testNamesAsUpstreamsPattern() {
        for good in ["a", "deploy", "deploy-app", "a1", String(repeating: "a", count: 64)] { XCTAssertTrue(NodeSkills.isValidName(good), good) }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a.b", String(repeating: "a", count: 65)] { XCTAssertFalse(NodeSkills.isValidName(bad), bad) }
    }

    func testFrontmatterScalarsPlainOrQuoted() {
        XCTAssertEqual(NodeSkills.frontmatter("---\nname: x\ndescription: \"Quoted: yes\"\n---\nbody")?.description, "Quoted: yes")
        XCTAssertEqual(NodeSkills.frontmatter("---\r\nname: x\r\ndescription: y\r\n---\r\n")?.name, "x")
        XCTAssertNil(NodeSkills.frontmatter("name: x\ndescription: y\n"), "no block")
        XCTAssertNil(NodeSkills.frontmatter("---\nname: x\n---\n"), "no description")
    }

    func testLimitsAndWarnings() {
        write("ok")
        write("long", description: String(repeating: "d", count: 1025))
        write("big", body: String(repeating: "b", count: 64 * 1024))
        write("other", frontName: "else")
        var warnings: [String] = []
        let skills = NodeSkills.scan(dir) { warnings.append($0) }
        XCTAssertEqual(skills.map(\.name), ["ok"])
        XCTAssertEqual(warnings.sorted(), [
            "node host skill skipped (\(dir)/big/SKILL.md): exceeds 65536 bytes",
            "node host skill skipped (\(dir)/long/SKILL.md): invalid name, description, or size",
            "node host skill skipped (\(dir)/other/SKILL.md): directory, name, and frontmatter must match",
        ])
        XCTAssertTrue(NodeSkills.scan(dir + "/missing") { XCTFail($0) }.isEmpty, "no folder: no skills, no warning")
    }

    func testAtMost64SkillsAnd512KiBInAll() {
        for index in 0..<66 { write(skillName(index), body: String(repeating: "x", count: 9_000)) }
        var warnings: [String] = []
        let skills = NodeSkills.scan(dir) { warnings.append($0) }
        let size = "---\nname: skill-1000\ndescription: does it\n---\n\(String(repeating: "x", count: 9_000))".utf8.count
        XCTAssertEqual(skills.count, 524_288 / size, "as many as fit in 512 KiB")
        XCTAssertTrue(warnings.allSatisfy { $0.hasSuffix("exceeds 524288 total bytes") }, "\(warnings)")
        Scratch.remove(dir)
        dir = Scratch.makeDirectory()
        for index in 0..<66 { write(skillName(index)) }
        warnings = []
        XCTAssertEqual(NodeSkills.scan(dir) { warnings.append($0) }.count, 64)
        XCTAssertEqual(warnings.filter { $0.hasSuffix("exceeds 64 skills") }.count, 2)
    }

    func skillName(_ index: Int) -> String { "skill-\(1000 + index)" }
}

extension Scratch {
    static func makeSubdirectoryIfNeeded(_ path: String) {
        var info = stat()
        if lstat(path, &info) != 0 { makeSubdirectory(path) }
    }
}
