import NodeSupport
import FoundationEssentials
import OpenClawIPC
import XCTest

@testable import SupervisorCore

final class ExecApprovalsFileTests: XCTestCase {
    func testTestSHA256MatchesKnownDigests() {
        XCTAssertEqual(FileDigest.sha256Hex(bytes: []), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(FileDigest.sha256Hex(bytes: Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(FileDigest.sha256Hex(bytes: Array(String(repeating: "a", count: 1000).utf8)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testVersionOtherThanOneGivesEmptyDefaults() throws {
        let body = #""socket":{"path":"/s","token":"t"},"defaults":{"security":"full"},"agents":{"main":{"ask":"always"}}"#
        for text in ["{\"version\":2,\(body)}", "{\(body)}", "{\"version\":\"1\",\(body)}", "[1]", "\"x\""] {
            XCTAssertEqual(try normalize(text), .empty, text)
        }
        XCTAssertEqual(try normalize("{\"version\":1,\(body)}").defaults?.security, .full)
    }

    func testSetPayloadIsNormalisedWithoutVersionCheck() throws {
        XCTAssertEqual(try normalize(#"{"defaults":{"security":"full"}}"#, requireVersion: false).defaults?.security, .full)
    }

    func testEmptyFileEncodesLikeUpstream() {
        XCTAssertEqual(ExecApprovalsFile.empty.jsonValue, .object(["version": .number(1), "defaults": .object([:]), "agents": .object([:])]))
    }

    /// Stricter than upstream (which drops them, so a typo widens the policy): invalid values
    /// fail closed, and `ConfigCheck` reports them.
    func testInvalidEnumValuesFailClosed() throws {
        let file = try normalize(#"""
        {"version":1,
         "defaults":{"security":"yolo","ask":"ON-MISS","askFallback":7,"autoAllowSkills":"yes"},
         "agents":{"main":{"security":" full ","ask":"sometimes","askFallback":"allowlist","autoAllowSkills":true}}}
        """#)
        XCTAssertEqual(file.defaults, AgentApprovals(security: .deny, ask: .always, askFallback: .deny))
        XCTAssertEqual(file.agents?["main"], AgentApprovals(security: .full, ask: .always, askFallback: .allowlist, autoAllowSkills: true))
    }

    func testStringAllowlistItemsBecomePatternEntries() throws {
        let file = try normalize(#"{"version":1,"agents":{"main":{"allowlist":["  /usr/bin/rg ", {"pattern":"/bin/ls","id":"keep"}]}}}"#)
        XCTAssertEqual(file.agents?["main"]?.allowlist, [
            AllowlistEntry(id: "id-1", pattern: "/usr/bin/rg"),
            AllowlistEntry(id: "keep", pattern: "/bin/ls"),
        ])
    }

    func testEmptyAndInvalidAllowlistItemsAreDropped() throws {
        let file = try normalize(#"""
        {"version":1,"agents":{
          "a":{"allowlist":["", "  ", 3, null, [], {}, {"pattern":""}, {"pattern":"  "}, {"pattern":5}, "/ok"]},
          "b":{"allowlist":["", {"pattern":" "}]},
          "c":{"allowlist":[]},
          "d":"not an agent"}}
        """#)
        XCTAssertEqual(file.agents?["a"]?.allowlist?.map(\.pattern), ["/ok"])
        XCTAssertNil(file.agents?["b"]?.allowlist)
        XCTAssertEqual(file.agents?["c"]?.allowlist, [])
        XCTAssertNil(file.agents?["d"])
    }

    func testMissingIdGetsLowercaseUUIDv4ByDefault() throws {
        let file = ExecApprovalsFile(normalizing: try json(#"{"version":1,"agents":{"main":{"allowlist":["/a",{"pattern":"/b","id":""}]}}}"#))
        let ids = try XCTUnwrap(file.agents?["main"]?.allowlist?.compactMap(\.id))
        XCTAssertEqual(ids.count, 2)
        XCTAssertNotEqual(ids[0], ids[1])
        for id in ids {
            XCTAssertEqual(id, id.lowercased())
            XCTAssertEqual(UUID(uuidString: id)?.uuidString.lowercased(), id)
            XCTAssertEqual(Array(id)[14], "4", "version nibble of \(id)")
        }
    }

    /// Today's upstream keeps `argPattern` (regex or argv-bound hash); `commandText` is dropped.
    func testEntryFieldsAndArgPatternKeptCommandTextStripped() throws {
        let file = try normalize(#"""
        {"version":1,"agents":{"main":{"allowlist":[{"id":"x","pattern":"/usr/bin/jq","lastUsedAt":1737150000000,
          "lastUsedCommand":"jq .","lastResolvedPath":"/usr/bin/jq","source":"allow-always",
          "argPattern":"-n","commandText":"jq -n env"}]}}}
        """#)
        let entry = try XCTUnwrap(file.agents?["main"]?.allowlist?.first)
        XCTAssertEqual(entry, AllowlistEntry(id: "x", pattern: "/usr/bin/jq", lastUsedAt: 1_737_150_000_000, lastUsedCommand: "jq .",
                                             lastResolvedPath: "/usr/bin/jq", source: "allow-always", argPattern: "-n"))
        XCTAssertEqual(entry.jsonValue.objectValue?.keys.sorted(),
                       ["argPattern", "id", "lastResolvedPath", "lastUsedAt", "lastUsedCommand", "pattern", "source"])
    }

    func testLegacyDefaultAgentIsMergedIntoMain() throws {
        let file = try normalize(#"""
        {"version":1,"agents":{
          "main":{"security":"allowlist","allowlist":[{"id":"m1","pattern":"/usr/bin/rg"}]},
          "default":{"security":"full","ask":"always","autoAllowSkills":true,
                     "allowlist":[{"id":"d1","pattern":" /USR/BIN/RG"},{"id":"d2","pattern":"/bin/ls"}]}}}
        """#)
        XCTAssertNil(file.agents?["default"])
        XCTAssertEqual(file.agents?["main"], AgentApprovals(
            security: .allowlist, ask: .always, autoAllowSkills: true,
            allowlist: [AllowlistEntry(id: "m1", pattern: "/usr/bin/rg"), AllowlistEntry(id: "d2", pattern: "/bin/ls")]))
    }

    func testLegacyDefaultAgentBecomesMainWhenThereIsNone() throws {
        let file = try normalize(#"{"version":1,"agents":{"default":{"ask":"off","allowlist":["/bin/ls"]}}}"#)
        XCTAssertEqual(file.agents, ["main": AgentApprovals(ask: .off, allowlist: [AllowlistEntry(id: "id-1", pattern: "/bin/ls")])])
    }

    func testSocketPathAndTokenAreTrimmed() throws {
        XCTAssertEqual(try normalize(#"{"version":1,"socket":{"path":"  /run/x.sock\n","token":"\ttok "}}"#).socket,
                       ExecApprovalsFile.Socket(path: "/run/x.sock", token: "tok"))
        XCTAssertEqual(try normalize(#"{"version":1,"socket":{"path":"  ","token":"tok"}}"#).socket,
                       ExecApprovalsFile.Socket(token: "tok"))
        XCTAssertNil(try normalize(#"{"version":1,"socket":{"path":" ","token":7}}"#).socket)
    }

    func testEncodingOmitsAbsentFieldsAndRoundTrips() throws {
        let file = try normalize(#"""
        {"version":1,"socket":{"path":"/s"},"defaults":{"ask":"off"},
         "agents":{"main":{"allowlist":["/a"]},"*":{"security":"deny"}}}
        """#)
        let text = try JSONText.encode(file.jsonValue)
        XCTAssertFalse(text.contains("null"), text)
        XCTAssertEqual(text, #"{"agents":{"*":{"security":"deny"},"main":{"allowlist":[{"id":"id-1","pattern":"/a"}]}},"defaults":{"ask":"off"},"socket":{"path":"/s"},"version":1}"#)
        XCTAssertEqual(ExecApprovalsFile(normalizing: file.jsonValue, makeID: { "unused" }), file)
    }

    func testStrictnessOrder() {
        XCTAssertEqual(min(ExecSecurity.full, .allowlist), .allowlist)
        XCTAssertEqual(min(ExecSecurity.deny, .allowlist), .deny)
        XCTAssertEqual(max(ExecAsk.off, .onMiss), .onMiss)
        XCTAssertEqual(max(ExecAsk.always, .onMiss), .always)
        XCTAssertEqual(ExecAsk.onMiss.rawValue, "on-miss")
    }
}
