import XCTest

@testable import SupervisorCore

final class ExecApprovalsResolutionTests: XCTestCase {
    private let agent = AgentApprovals(security: .full, ask: .always, askFallback: .full, autoAllowSkills: true)
    private let wildcard = AgentApprovals(security: .allowlist, ask: .onMiss, askFallback: .allowlist, autoAllowSkills: false)
    private let defaults = AgentApprovals(security: .deny, ask: .off, askFallback: .deny, autoAllowSkills: true)
    /// Differs from every layer above in each field, so the winning layer is visible.
    private let builtIn = ExecApprovalDefaults(security: .full, ask: .always, askFallback: .allowlist, autoAllowSkills: false)

    /// Resolves `ops` with one field cleared in the first `cleared` layers (agent, "*", defaults).
    private func resolve(clearingIn cleared: Int, _ setNil: (inout AgentApprovals) -> Void) -> ResolvedExecApprovals {
        var layers = [agent, wildcard, defaults]
        for index in 0..<cleared { setNil(&layers[index]) }
        let file = ExecApprovalsFile(defaults: layers[2], agents: ["ops": layers[0], "*": layers[1], "other": agent])
        return file.resolve(agentId: "ops", builtIn: builtIn)
    }

    func testSecurityFallsThroughAgentWildcardDefaultsBuiltIn() {
        let chain = (0...3).map { resolve(clearingIn: $0) { $0.security = nil }.security }
        XCTAssertEqual(chain, [.full, .allowlist, .deny, .full])
    }

    func testAskFallsThroughAgentWildcardDefaultsBuiltIn() {
        let chain = (0...3).map { resolve(clearingIn: $0) { $0.ask = nil }.ask }
        XCTAssertEqual(chain, [.always, .onMiss, .off, .always])
    }

    func testAskFallbackFallsThroughAgentWildcardDefaultsBuiltIn() {
        let chain = (0...3).map { resolve(clearingIn: $0) { $0.askFallback = nil }.askFallback }
        XCTAssertEqual(chain, [.full, .allowlist, .deny, .allowlist])
    }

    func testAutoAllowSkillsFallsThroughAgentWildcardDefaultsBuiltIn() {
        let chain = (0...3).map { resolve(clearingIn: $0) { $0.autoAllowSkills = nil }.autoAllowSkills }
        XCTAssertEqual(chain, [true, false, true, false])
    }

    func testFieldsResolveIndependently() {
        let file = ExecApprovalsFile(defaults: AgentApprovals(askFallback: .full),
                                     agents: ["main": AgentApprovals(security: .deny), "*": AgentApprovals(ask: .always)])
        let resolved = file.resolve(agentId: nil, builtIn: .node)
        XCTAssertEqual([resolved.security, resolved.askFallback], [.deny, .full])
        XCTAssertEqual(resolved.ask, .always)
        XCTAssertFalse(resolved.autoAllowSkills)
    }

    func testNoFileUsesNodeBuiltIns() {
        let resolved = ExecApprovalsFile.empty.resolve(agentId: nil)
        XCTAssertEqual(resolved, ResolvedExecApprovals(agentKey: "main", security: .allowlist, ask: .onMiss, askFallback: .deny,
                                                       autoAllowSkills: false, allowlist: []))
    }

    func testNoFileUsesNewerBuiltInsWhenConfigured() {
        let resolved = ExecApprovalsFile.empty.resolve(agentId: "main", builtIn: .newer)
        XCTAssertEqual(resolved, ResolvedExecApprovals(agentKey: "main", security: .full, ask: .off, askFallback: .deny,
                                                       autoAllowSkills: false, allowlist: []))
    }

    func testAllowlistIsWildcardEntriesThenAgentEntriesTaggedWithTheirKey() {
        let file = ExecApprovalsFile(agents: [
            "main": AgentApprovals(allowlist: [AllowlistEntry(id: "m", pattern: "/bin/main")]),
            "*": AgentApprovals(allowlist: [AllowlistEntry(id: "w1", pattern: "/usr/bin/jq"), AllowlistEntry(id: "w2", pattern: "/bin/ls")]),
            "ops": AgentApprovals(allowlist: [AllowlistEntry(id: "o", pattern: "/bin/ops")]),
        ])
        XCTAssertEqual(file.resolve(agentId: "main").allowlist.map { "\($0.agentKey):\($0.entry.id!)" }, ["*:w1", "*:w2", "main:m"])
        XCTAssertEqual(file.resolve(agentId: "ops").allowlist.map { "\($0.agentKey):\($0.entry.id!)" }, ["*:w1", "*:w2", "ops:o"])
        XCTAssertEqual(file.resolve(agentId: "*").allowlist.map(\.entry.id), ["w1", "w2"])
    }

    func testAgentIdDefaultsToMain() {
        let file = ExecApprovalsFile(agents: ["main": AgentApprovals(security: .deny)])
        for id in [nil, "", "  ", "main"] as [String?] {
            XCTAssertEqual(file.resolve(agentId: id).agentKey, "main")
            XCTAssertEqual(file.resolve(agentId: id).security, .deny)
        }
        XCTAssertEqual(file.resolve(agentId: " ops ").agentKey, "ops")
        XCTAssertEqual(file.resolve(agentId: "ops").security, .allowlist)
    }
}
