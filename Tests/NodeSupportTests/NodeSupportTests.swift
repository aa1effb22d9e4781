import Glibc
import Logging
import XCTest
@testable import NodeSupport

/// The shared helpers every process uses: errors of system calls, hex and digests, clocks,
/// helper programs, and log line encoding.
final class NodeSupportTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/nodesupport-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
        directory = String(cString: made)
    }

    override func tearDown() { removeTree(directory) }

    func write(_ name: String, _ text: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
        return path
    }

    func testASystemErrorNamesTheCallAndTheSymbolicErrno() {
        XCTAssertEqual(SystemError("open", errno: ENOENT).code, "ENOENT")
        XCTAssertEqual(SystemError("spawn", errno: EACCES).code, "EACCES")
        XCTAssertEqual(SystemError("x", errno: 9999).code, "E9999")
        XCTAssertThrowsError(try readWholeFile(directory + "/missing")) {
            XCTAssertEqual($0 as? SystemError, SystemError("open", errno: ENOENT))
        }
    }

    func testHexAndSHA256() {
        XCTAssertEqual(Hex.encode([0x00, 0x0f, 0xab, 0xff]), "000fabff")
        XCTAssertEqual(FileDigest.sha256Hex(bytes: Array("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testAScriptDigestReadsOnlyARegularFileNeverThroughASymlinkAndBounded() {
        let script = write("s.sh", "abc")
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: script), .success("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: directory + "/none"), .failure(.missing))
        symlink(script, directory + "/link")
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: directory + "/link"), .failure(.unreadable))
        mkfifo(directory + "/fifo", 0o600)
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: directory + "/fifo"), .failure(.notRegularFile))
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: directory), .failure(.notRegularFile))
        XCTAssertEqual(FileDigest.sha256Hex(regularFile: script, maxBytes: 2), .failure(.tooLarge))
    }

    func testTimestampsAreISO8601UTCWithMillisecondsAndClamped() {
        XCTAssertEqual(Clock.isoTimestamp(ms: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(Clock.isoTimestamp(ms: 1_764_889_060_123), "2025-12-04T22:57:40.123Z")
        XCTAssertEqual(Clock.isoTimestamp(ms: .nan), "1970-01-01T00:00:00.000Z")
        XCTAssertGreaterThan(Clock.wallMs(), 1_700_000_000_000)
    }

    func testAHelperProgramsOutputAndStatusAreCollected() throws {
        let output = try XCTUnwrap(ProgramRun.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], environment: ["PATH": "/bin"]))
        XCTAssertEqual(output.status, 3)
        XCTAssertEqual(output.stdout, "out\n")
        XCTAssertEqual(output.stderr, "err\n")
        XCTAssertNil(ProgramRun.run(["no-such-program-here"], environment: ["PATH": directory]))
    }

    func testLogValuesCannotForgeALineAndJSONValuesAreTyped() {
        XCTAssertEqual(LineLogHandler.quoteIfNeeded("plain"), "plain")
        XCTAssertEqual(LineLogHandler.quoteIfNeeded("two\nlines"), #""two\nlines""#)
        XCTAssertEqual(LineLogHandler.json(.string("a\"b\n")), #""a\"b\n""#)
        XCTAssertEqual(LineLogHandler.json(.typed(42)), "42")
        XCTAssertEqual(LineLogHandler.json(.typed(true)), "true")
        XCTAssertEqual(LineLogHandler.json(.typed(LogNull())), "null")
        XCTAssertEqual(LineLogHandler.priority(.error), 3)
        XCTAssertEqual(LineLogHandler.priority(.info), 6)
    }

    func testTheOneURLParser() {
        let cases: [(String, [String], EndpointURL?)] = [
            ("wss://gw.example:8443/ws", ["wss", "ws"], EndpointURL(scheme: "wss", host: "gw.example", explicitPort: 8443, path: "/ws")),
            ("ws://127.0.0.1", ["wss", "ws"], EndpointURL(scheme: "ws", host: "127.0.0.1", explicitPort: nil, path: "/")),
            ("ws://[::1]:18789", ["ws"], EndpointURL(scheme: "ws", host: "::1", explicitPort: 18789, path: "/")),
            ("ws://[::1]", ["ws"], EndpointURL(scheme: "ws", host: "::1", explicitPort: nil, path: "/")),
            ("http://localhost:9222", ["http"], EndpointURL(scheme: "http", host: "localhost", explicitPort: 9222, path: "/")),
            ("ws://h:0/x", ["ws"], nil),
            ("ws://h:70000", ["ws"], nil),
            ("ws://h:abc", ["ws"], nil),
            ("ws://:1", ["ws"], nil),
            ("ws://[::1]x", ["ws"], nil),
            ("https://h:1", ["ws", "http"], nil),
            ("wss://h?x=1", ["wss"], nil),
            ("wss://h#frag", ["wss"], nil),
            ("wss://user@h", ["wss"], nil),
            ("wss://h:443?x", ["wss"], nil),
        ]
        for (url, schemes, expected) in cases {
            XCTAssertEqual(EndpointURL(url, schemes: schemes), expected, url)
        }
    }
}
