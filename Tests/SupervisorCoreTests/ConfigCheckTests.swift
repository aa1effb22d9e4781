import Glibc
import OpenClawIPC
@testable import SupervisorCore
import XCTest

final class ConfigCheckTests: XCTestCase {
    var dir = ""

    override func setUp() {
        var template = Array("/tmp/configcheck.XXXXXX".utf8CString)
        dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        for name in ["openclaw.json", "exec-approvals.json"] { unlink("\(dir)/\(name)") }
        rmdir(dir)
    }

    func check(config: String? = nil, approvals: String? = nil) -> [ConfigProblem] {
        if let config { try! SecureFile.write("\(dir)/openclaw.json", Array(config.utf8)) }
        if let approvals { try! SecureFile.write("\(dir)/exec-approvals.json", Array(approvals.utf8)) }
        return ConfigCheck.run(configPath: "\(dir)/openclaw.json", approvalsPath: "\(dir)/exec-approvals.json")
    }

    func testAMisspelledSecurityIsAnErrorAndFailsClosed() {
        let problems = check(approvals: #"{"version":1,"defaults":{"security":"Deny","ask":"sometimes","askFallback":"full"},"agents":{}}"#)
        XCTAssertEqual(problems.map(\.text), [
            "\(dir)/exec-approvals.json: defaults.ask: invalid value \"sometimes\" (expected one of: off, on-miss, always); using \"always\"",
            "\(dir)/exec-approvals.json: defaults.security: invalid value \"Deny\" (expected one of: deny, allowlist, full); using \"deny\" (values are case-sensitive)",
        ])
        XCTAssertTrue(problems.allSatisfy { $0.severity == .error })
        let file = ExecApprovalsFile(normalizing: try! JSONText.decode(JSONValue.self, from: #"{"version":1,"defaults":{"security":"Deny","ask":"sometimes"}}"#))
        XCTAssertEqual(file.defaults?.security, .deny)
        XCTAssertEqual(file.defaults?.ask, .always)
        XCTAssertEqual(ExecConfig.from(OpenClawConfig(root: try! JSONText.decode(JSONValue.self, from: #"{"tools":{"exec":{"security":"FULL"}}}"#)),
                                       agentId: nil).security, .deny)
    }

    func testUnknownKeysAreWarnedWithTheNearestKnownOne() {
        let problems = check(config: "{ gateway: { auht: { token: 'x' } }, nodeHost: { browserProxy: { enabeld: true } }, channels: { anything: 1 } }")
        XCTAssertEqual(problems.map(\.text), [
            "\(dir)/openclaw.json: gateway.auht: unknown key \"auht\" (did you mean \"auth\"?); ignored",
            "\(dir)/openclaw.json: nodeHost.browserProxy.enabeld: unknown key \"enabeld\" (did you mean \"enabled\"?); ignored",
        ])
        XCTAssertTrue(problems.allSatisfy { $0.severity == .warning })
    }

    func testAnInvalidBrowserSwitchDisablesTheProxy() {
        let problems = check(config: #"{ "nodeHost": { "browserProxy": { "enabled": "yes" } } }"#)
        XCTAssertEqual(problems.map(\.text), [
            "\(dir)/openclaw.json: nodeHost.browserProxy.enabled: invalid value \"yes\" (expected true or false); using false (browser.proxy disabled)",
        ])
        let config = try! OpenClawConfig.load("\(dir)/openclaw.json")
        XCTAssertFalse(BrowserProxySettings.from(config).advertised)
    }

    func testAllowlistEntriesWithoutAPatternAreErrors() {
        let problems = check(approvals: #"{"version":1,"agents":{"main":{"allowlist":[{"pattern":"/bin/ls"},{"id":"x"},"  "]}}}"#)
        XCTAssertEqual(problems.map(\.key), ["agents.main.allowlist[1]", "agents.main.allowlist[2]"])
    }

    func testAValidConfigHasNoProblems() {
        XCTAssertEqual(check(config: "// comment\n{ gateway: { auth: { token: 'x' }, handshakeTimeoutMs: 5000 }, tools: { exec: { security: 'allowlist', ask: 'on-miss' }, web: {} }, }",
                             approvals: #"{"version":1,"defaults":{"security":"allowlist","ask":"off","askFallback":"deny"},"agents":{}}"#), [])
    }

    func testEditDistanceCountsASwapAsOneEdit() {
        XCTAssertEqual(ConfigCheck.editDistance(Array("auht".utf8), Array("auth".utf8)), 1)
        XCTAssertNil(ConfigCheck.suggestion(for: "zzzz", among: ["auth", "mode"]))
    }
}
