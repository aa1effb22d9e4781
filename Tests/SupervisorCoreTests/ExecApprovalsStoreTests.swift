import NodeSupport
import FoundationEssentials
import Glibc
import OpenClawIPC
import XCTest

@testable import SupervisorCore

final class ExecApprovalsStoreTests: TempDirTestCase {
    private let sample = #"""
    {"version":1,"socket":{"path":"/run/oc.sock","token":"secret-token-123"},
     "defaults":{"security":"allowlist"},
     "agents":{"main":{"allowlist":[{"id":"e1","pattern":"/usr/bin/rg"},{"id":"e2","pattern":"/bin/ls"}]},
               "*":{"allowlist":[{"id":"w1","pattern":"/usr/bin/jq"}]}}}
    """#

    // MARK: ensure / get

    func testEnsureCreatesFile0600InDir0700WithSocketToken() throws {
        let snapshot = try makeStore().ensure()
        XCTAssertEqual(snapshot.path, filePath)
        XCTAssertTrue(snapshot.exists)
        XCTAssertEqual(mode(stateDir), 0o700)
        XCTAssertEqual(mode(filePath), 0o600)
        let socket = try XCTUnwrap(try onDisk()["socket"])
        XCTAssertEqual(socket["path"], .string(stateDir + "/exec-approvals.sock"))
        let token = try XCTUnwrap(socket["token"]?.stringValue)
        XCTAssertEqual(token.count, 32)
        XCTAssertTrue(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }, token)
        XCTAssertEqual(snapshot.file.socket?.token, token)
        XCTAssertEqual(try readRaw(), #"""
        {
          "agents": {},
          "defaults": {},
          "socket": {
            "path": "\#(stateDir)/exec-approvals.sock",
            "token": "\#(token)"
          },
          "version": 1
        }

        """#)
    }

    func testEnsureKeepsExistingTokenAndTightensModes() throws {
        try writeRaw(sample)
        chmod(filePath, 0o644)
        chmod(stateDir, 0o755)
        XCTAssertEqual(try makeStore().ensure().file.socket, ExecApprovalsFile.Socket(path: "/run/oc.sock", token: "secret-token-123"))
        XCTAssertEqual(mode(filePath), 0o600)
        XCTAssertEqual(mode(stateDir), 0o700)
    }

    func testGetRedactsSocketToken() throws {
        try writeRaw(sample)
        let payload = try makeStore().getPayload()
        XCTAssertEqual(payload["file"]?["socket"], .object(["path": .string("/run/oc.sock")]))
        XCTAssertFalse(try JSONText.encode(payload).contains("secret-token-123"))
        XCTAssertTrue(try readRaw().contains("secret-token-123"))
        XCTAssertEqual(payload["path"], .string(filePath))
        XCTAssertEqual(payload["exists"], .bool(true))
        XCTAssertEqual(payload["file"]?["agents"]?["main"]?["allowlist"]?.arrayValue?.count, 2)
    }

    func testGetOnFreshStateNeverContainsTheGeneratedToken() throws {
        let payload = try makeStore().getPayload()
        let token = try XCTUnwrap(try onDisk()["socket"]?["token"]?.stringValue)
        XCTAssertFalse(try JSONText.encode(payload).contains(token))
    }

    func testHashIsSHA256OfTheBytesOnDisk() throws {
        try writeRaw(sample)
        let store = makeStore()
        let payload = try store.getPayload()
        let onDiskBytes = try XCTUnwrap(try SecureFile.read(filePath))
        XCTAssertEqual(payload["hash"], .string(FileDigest.sha256Hex(bytes: onDiskBytes)))
        XCTAssertNotEqual(FileDigest.sha256Hex(bytes: Array(sample.utf8)), FileDigest.sha256Hex(bytes: onDiskBytes), "ensure rewrites the user's formatting")
        XCTAssertEqual(try store.readSnapshot().hash, FileDigest.sha256Hex(bytes: onDiskBytes))
    }

    func testMissingFileSnapshotHashesTheEmptyString() throws {
        let snapshot = try makeStore().readSnapshot()
        XCTAssertFalse(snapshot.exists)
        XCTAssertEqual(snapshot.hash, FileDigest.sha256Hex(bytes: []))
        XCTAssertEqual(snapshot.file, .empty)
        XCTAssertEqual(access(stateDir, F_OK), -1, "reading creates nothing")
    }

    // MARK: set

    func testSetWithoutBaseHashFails() throws {
        let store = makeStore()
        let before = try store.getPayload()
        XCTAssertThrowsApprovalsError(try store.set(params: .object(["file": before["file"]!])),
                                      "INVALID_REQUEST: exec approvals base hash required; reload and retry")
        XCTAssertThrowsApprovalsError(try store.set(params: .object(["file": before["file"]!, "baseHash": .string("  ")])),
                                      "INVALID_REQUEST: exec approvals base hash required; reload and retry")
    }

    func testSetWithStaleHashFailsAndLeavesFile() throws {
        try writeRaw(sample)
        let store = makeStore()
        let stale = try store.getPayload()
        try store.addAllowAlways(agentId: "main", grants: ["/usr/bin/make"], now: 5)
        let current = try readRaw()
        var file = try XCTUnwrap(stale["file"]?.objectValue)
        file["agents"] = .object([:])
        XCTAssertThrowsApprovalsError(try store.set(params: .object(["file": .object(file), "baseHash": stale["hash"]!])),
                                      "INVALID_REQUEST: exec approvals changed; reload and retry")
        XCTAssertEqual(try readRaw(), current)
    }

    func testSetWithCurrentHashSavesAndReturnsNewHash() throws {
        try writeRaw(sample)
        let store = makeStore()
        let before = try store.getPayload()
        var file = try XCTUnwrap(before["file"]?.objectValue)
        file["defaults"] = .object(["security": .string("deny"), "ask": .string("bogus")])
        let after = try store.set(params: .object(["file": .object(file), "baseHash": .string(" \(before["hash"]!.stringValue!) ")]))
        let bytes = try XCTUnwrap(try SecureFile.read(filePath))
        XCTAssertEqual(after["hash"], .string(FileDigest.sha256Hex(bytes: bytes)))
        XCTAssertNotEqual(after["hash"], before["hash"])
        // An invalid ask fails closed (always).
        XCTAssertEqual(after["file"]?["defaults"], .object(["security": .string("deny"), "ask": .string("always")]))
        XCTAssertEqual(try onDisk()["defaults"], .object(["security": .string("deny"), "ask": .string("always")]))
        XCTAssertEqual(after["file"]?["socket"], .object(["path": .string("/run/oc.sock")]))
        XCTAssertEqual(try store.getPayload()["hash"], after["hash"], "a later get sees the same bytes")
        XCTAssertEqual(mode(filePath), 0o600)
    }

    func testSetKeepsSocketPathAndTokenWhenOmitted() throws {
        try writeRaw(sample)
        let store = makeStore()
        let before = try store.getPayload()
        var file = try XCTUnwrap(before["file"]?.objectValue)
        file["socket"] = nil
        let after = try store.set(params: .object(["file": .object(file), "baseHash": before["hash"]!]))
        XCTAssertEqual(try onDisk()["socket"], .object(["path": .string("/run/oc.sock"), "token": .string("secret-token-123")]))
        XCTAssertFalse(try JSONText.encode(after).contains("secret-token-123"))
    }

    func testSetRequiresAFileObject() throws {
        let store = makeStore()
        for params: JSONValue in [.object([:]), .object(["file": .array([])]), .object(["file": .string("{}")]), .null] {
            XCTAssertThrowsApprovalsError(try store.set(params: params), "INVALID_REQUEST: exec approvals file required")
        }
    }

    func testSetNormalisesIncomingFile() throws {
        let store = makeStore()
        let before = try store.getPayload()
        let incoming = try json(#"{"agents":{"default":{"allowlist":["/bin/ls"]}},"defaults":{"ask":"nope"}}"#)
        let after = try store.set(params: .object(["file": incoming, "baseHash": before["hash"]!]))
        XCTAssertEqual(after["file"]?["agents"], try json(#"{"main":{"allowlist":[{"id":"id-1","pattern":"/bin/ls"}]}}"#))
        XCTAssertEqual(after["file"]?["version"], .number(1))
        XCTAssertEqual(after["file"]?["defaults"], .object(["ask": .string("always")]))
    }

    func testErrorWireMessageHasErrorPrefix() {
        XCTAssertEqual(ApprovalsError("INVALID_REQUEST: x").wireMessage, "Error: INVALID_REQUEST: x")
        XCTAssertEqual(ApprovalsError.code, "INVALID_REQUEST")
    }

    // MARK: version handling

    func testVersionOtherThanOneIsRewrittenAsEmptyDefaults() throws {
        try writeRaw(#"{"version":2,"defaults":{"security":"full"},"agents":{"main":{"allowlist":["/bin/ls"]}}}"#)
        let store = makeStore()
        XCTAssertEqual(store.resolve(agentId: nil).security, .allowlist)
        XCTAssertEqual(store.resolve(agentId: nil).allowlist, [])
        let snapshot = try store.ensure()
        XCTAssertEqual(snapshot.file.agents, [:])
        XCTAssertEqual(try onDisk()["version"], .number(1))
    }

    // MARK: refusals

    func testSymlinkedDestinationIsRefused() throws {
        try writeRaw(sample, to: root + "/elsewhere.json")
        try SecureFile.ensureDirectory(stateDir)
        XCTAssertEqual(symlink(root + "/elsewhere.json", filePath), 0)
        let store = makeStore()
        let message = "Refusing to use exec approvals via symlink: \(filePath)"
        XCTAssertThrowsApprovalsError(try store.ensure(), message)
        XCTAssertThrowsApprovalsError(try store.getPayload(), message)
        XCTAssertThrowsApprovalsError(try store.addAllowAlways(agentId: nil, grants: ["/bin/x"], now: 1), message)
        XCTAssertEqual(try readRaw(root + "/elsewhere.json"), sample)
        var info = stat()
        XCTAssertEqual(lstat(filePath, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFLNK, "the link itself is left alone")
        XCTAssertEqual(store.resolve(agentId: nil), .denyAll(agentKey: "main", problem: message))
    }

    func testSymlinkedStateDirectoryIsRefused() throws {
        try writeRaw(sample, to: root + "/real/exec-approvals.json")
        XCTAssertEqual(symlink(root + "/real", stateDir), 0)
        let store = makeStore()
        let message = "Refusing to traverse symlink in exec approvals path: \(stateDir)"
        XCTAssertThrowsApprovalsError(try store.ensure(), message)
        XCTAssertThrowsApprovalsError(try store.recordUse(agentKey: "main", pattern: "/usr/bin/rg", command: "rg", resolvedPath: nil, now: 1), message)
        XCTAssertEqual(try readRaw(root + "/real/exec-approvals.json"), sample)
        XCTAssertEqual(store.resolve(agentId: "main").security, .deny)
    }

    func testHardLinkedFileIsRefused() throws {
        try writeRaw(sample)
        XCTAssertEqual(link(filePath, root + "/second-name.json"), 0)
        let store = makeStore()
        let message = "Refusing to use hard-linked exec approvals file: \(filePath)"
        XCTAssertThrowsApprovalsError(try store.ensure(), message)
        XCTAssertThrowsApprovalsError(try store.set(params: .object(["file": .object([:]), "baseHash": .string("x")])), message)
        XCTAssertEqual(try readRaw(), sample)
        XCTAssertEqual(store.resolve(agentId: nil), .denyAll(agentKey: "main", problem: message))
    }

    func testUnparseableFileIsNotOverwrittenAndResolvesToDenyAll() throws {
        let garbage = "{\"version\":1, oops"
        try writeRaw(garbage)
        let store = makeStore()
        let message = "exec approvals file \(filePath) is not valid JSON; fix or remove it (exec is denied until then)"
        XCTAssertThrowsApprovalsError(try store.ensure(), message)
        XCTAssertThrowsApprovalsError(try store.getPayload(), message)
        XCTAssertThrowsApprovalsError(try store.set(params: .object(["file": .object([:]), "baseHash": .string(FileDigest.sha256Hex(bytes: Array(garbage.utf8)))])), message)
        XCTAssertThrowsApprovalsError(try store.addAllowAlways(agentId: nil, grants: ["/bin/x"], now: 1), message)
        XCTAssertEqual(try readRaw(), garbage)
        let resolved = store.resolve(agentId: "ops")
        XCTAssertEqual(resolved, ResolvedExecApprovals(agentKey: "ops", security: .deny, ask: .always, askFallback: .deny,
                                                       autoAllowSkills: false, allowlist: [], problem: message))
    }

    func testNonRegularFileIsRefusedAndResolvesToDenyAll() throws {
        try SecureFile.ensureDirectory(stateDir)
        XCTAssertEqual(mkdir(filePath, 0o700), 0)
        let store = makeStore()
        XCTAssertThrowsApprovalsError(try store.ensure(), "exec approvals path is not a regular file: \(filePath)")
        XCTAssertEqual(store.resolve(agentId: nil).security, .deny)
    }

    // MARK: resolve

    func testResolveReadsTheCurrentFileWithoutWriting() throws {
        let store = makeStore()
        XCTAssertEqual(store.resolve(agentId: nil), ExecApprovalsFile.empty.resolve(agentId: nil))
        XCTAssertEqual(access(filePath, F_OK), -1)
        try writeRaw(sample)
        XCTAssertEqual(store.resolve(agentId: nil).allowlist.map(\.entry.id), ["w1", "e1", "e2"])
        try writeRaw(#"{"version":1,"agents":{"main":{"security":"full"}}}"#)
        XCTAssertEqual(store.resolve(agentId: nil).security, .full)
        XCTAssertEqual(try readRaw(), #"{"version":1,"agents":{"main":{"security":"full"}}}"#)
    }

    func testResolveUsesConfiguredBuiltIns() {
        XCTAssertEqual(makeStore(builtIn: .newer).resolve(agentId: nil).security, .full)
        XCTAssertEqual(makeStore().resolve(agentId: nil).security, .allowlist)
    }

    // MARK: bookkeeping

    func testRecordUseStampsTheEntryAndKeepsTheRest() throws {
        try writeRaw(sample)
        let store = makeStore()
        try store.recordUse(agentKey: "main", id: "e2", pattern: "/bin/ls", command: "ls -la", resolvedPath: "/usr/bin/ls", now: 1_737_150_000_000)
        let file = try store.readSnapshot().file
        XCTAssertEqual(file.agents?["main"]?.allowlist, [
            AllowlistEntry(id: "e1", pattern: "/usr/bin/rg"),
            AllowlistEntry(id: "e2", pattern: "/bin/ls", lastUsedAt: 1_737_150_000_000, lastUsedCommand: "ls -la", lastResolvedPath: "/usr/bin/ls"),
        ])
        XCTAssertEqual(file.agents?["*"]?.allowlist, [AllowlistEntry(id: "w1", pattern: "/usr/bin/jq")])
        XCTAssertEqual(file.socket?.token, "secret-token-123")
        XCTAssertEqual(mode(filePath), 0o600)
    }

    func testRecordUseWritesToTheWildcardListByPattern() throws {
        try writeRaw(sample)
        let store = makeStore()
        try store.recordUse(agentKey: "*", pattern: "/usr/bin/jq", command: "jq .", resolvedPath: nil, now: 9)
        XCTAssertEqual(try store.readSnapshot().file.agents?["*"]?.allowlist,
                       [AllowlistEntry(id: "w1", pattern: "/usr/bin/jq", lastUsedAt: 9, lastUsedCommand: "jq .")])
    }

    func testRecordUseMatchesByPatternWhenTheIdIsUnknown() throws {
        // Entries stored without an id get a fresh one on every load, so the id a run saw is gone.
        try writeRaw(#"{"version":1,"agents":{"main":{"allowlist":["/usr/bin/rg"]}}}"#)
        let store = makeStore()
        let seen = try XCTUnwrap(store.resolve(agentId: nil).allowlist.first)
        try store.recordUse(agentKey: seen.agentKey, id: seen.entry.id, pattern: seen.entry.pattern, command: "rg x", resolvedPath: "/usr/bin/rg", now: 3)
        XCTAssertEqual(try store.readSnapshot().file.agents?["main"]?.allowlist?.first?.lastUsedCommand, "rg x")
    }

    func testRecordUseNeverRestoresARevokedEntry() throws {
        try writeRaw(sample)
        let store = makeStore()
        let before = try store.getPayload()
        let incoming = try json(#"{"version":1,"agents":{"main":{"allowlist":[{"id":"e1","pattern":"/usr/bin/rg"}]}}}"#)
        _ = try store.set(params: .object(["file": incoming, "baseHash": before["hash"]!]))
        let revoked = try readRaw()
        try store.recordUse(agentKey: "main", id: "e2", pattern: "/bin/ls", command: "ls", resolvedPath: "/bin/ls", now: 1)
        try store.recordUse(agentKey: "ops", pattern: "/bin/ls", command: "ls", resolvedPath: "/bin/ls", now: 1)
        XCTAssertEqual(try readRaw(), revoked)
    }

    func testAddAllowAlwaysAppendsPersistsAndDedupes() throws {
        try writeRaw(sample)
        let store = makeStore()
        try store.addAllowAlways(agentId: nil, grants: ["/usr/bin/rg", " /usr/bin/make ", "/usr/bin/make", "", "/opt/bin/tool"], now: 42)
        let main = try store.readSnapshot().file.agents?["main"]?.allowlist
        XCTAssertEqual(main, [
            AllowlistEntry(id: "e1", pattern: "/usr/bin/rg"),
            AllowlistEntry(id: "e2", pattern: "/bin/ls"),
            AllowlistEntry(id: "id-1", pattern: "/usr/bin/make", lastUsedAt: 42, source: "allow-always"),
            AllowlistEntry(id: "id-2", pattern: "/opt/bin/tool", lastUsedAt: 42, source: "allow-always"),
        ])
        let written = try readRaw()
        try store.addAllowAlways(agentId: "main", grants: ["/usr/bin/make", "/opt/bin/tool"], now: 43)
        XCTAssertEqual(try readRaw(), written, "nothing new, nothing written")
    }

    func testAddAllowAlwaysCreatesTheFileAndAgent() throws {
        let store = makeStore()
        try store.addAllowAlways(agentId: "ops", grants: ["/usr/bin/jq"], now: 7)
        XCTAssertEqual(mode(filePath), 0o600)
        XCTAssertEqual(mode(stateDir), 0o700)
        XCTAssertEqual(try onDisk()["agents"], try json(#"{"ops":{"allowlist":[{"id":"id-1","lastUsedAt":7,"pattern":"/usr/bin/jq","source":"allow-always"}]}}"#))
        XCTAssertNotNil(try onDisk()["socket"]?["token"]?.stringValue)
        XCTAssertEqual(store.resolve(agentId: "ops").allowlist.map(\.entry.pattern), ["/usr/bin/jq"])
    }
}
