import XCTest
@testable import SupervisorCore

/// upstream's host environment policy as this build carries it (HostEnvSecurityPolicyData.swift),
/// and the rules derived from it (host-env-security.test.ts's assertions, as data).
final class HostEnvPolicyTests: XCTestCase {
    let policy = HostEnvPolicy.upstream

    func testTheDataFileHasUpstreamsCurrentLists() {
        XCTAssertEqual(policy.blockedEverywhere.count, 110)
        XCTAssertEqual(policy.blockedOverrideOnly.count, 156)
        XCTAssertEqual(policy.allowedInheritedOverrideOnly.count, 42)
        XCTAssertEqual(policy.blockedInherited.count, 209, "everywhere ∪ (override-only − allowed inherited)")
        XCTAssertEqual(policy.blockedPrefixes, ["DYLD_", "LD_", "BASH_FUNC_"])
        XCTAssertEqual(policy.blockedOverridePrefixes, ["GIT_CONFIG_", "NPM_CONFIG_", "CARGO_REGISTRIES_", "TF_VAR_"])
        XCTAssertTrue(policy.allowedInheritedOverrideOnly.isSubset(of: policy.blockedOverrideOnly))
    }

    static let refusedOverrides = ["NODE_OPTIONS", "CPP", "CXXCPP", "PYTHONPATH", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "BASH_FUNC_X%%",
                                   "KUBECONFIG", "GOOGLE_APPLICATION_CREDENTIALS", "HOME", "HTTPS_PROXY", "CONDA_PREFIX", "GH_TOKEN",
                                   "GIT_CONFIG_COUNT", "TF_VAR_REGION", "NPM_CONFIG_REGISTRY", "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
                                   "CARGO_TARGET_AARCH64_APPLE_DARWIN_RUNNER"]
    static let acceptedOverrides = ["FOO", "LANG", "TERM", "MY_APP_MODE", "CARGO_TARGET_DIR", "CARGO_TARGET__LINKER", "TF_LOG"]

    func testOverrides() {
        for key in Self.refusedOverrides { XCTAssertTrue(policy.refusesOverride(key), key) }
        for key in Self.acceptedOverrides { XCTAssertFalse(policy.refusesOverride(key), key) }
    }

    static let stripped = ["NODE_OPTIONS", "SHELL", "IFS", "GH_TOKEN", "GITHUB_TOKEN", "AWS_ACCESS_KEY_ID", "DATABASE_URL", "EDITOR",
                           "LD_LIBRARY_PATH", "BASH_FUNC_FOO%%", "DYLD_LIBRARY_PATH", "PYTHONSTARTUP", "GIT_SSH_COMMAND"]
    static let kept = ["HOME", "SSH_AUTH_SOCK", "KUBECONFIG", "XDG_RUNTIME_DIR", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "PAGER",
                       "PATH", "LANG", "GIT_CONFIG_COUNT", "TF_VAR_REGION"]

    func testTheInheritedStrip() {
        for key in Self.stripped { XCTAssertTrue(policy.stripsInherited(key), key) }
        for key in Self.kept { XCTAssertFalse(policy.stripsInherited(key), key) }
    }

    func testTheChildEnvironmentIsOurAllowListWithoutWhatUpstreamStrips() {
        let env = ExecEnvironment(nodeEnvironment: ["HOME": "/h", "SHELL": "/bin/bash", "GH_TOKEN": "t", "LANG": "C", "LC_ALL": "C"],
                                  pathEnv: "/usr/bin")
        XCTAssertEqual(env.base, ["HOME": "/h", "LANG": "C", "LC_ALL": "C", "PATH": "/usr/bin"])
        XCTAssertEqual(ExecEnvironment.inspect(["TF_VAR_X": "1", "KUBECONFIG": "/k", "OK": "1"])?.blocked, ["KUBECONFIG", "TF_VAR_X"])
    }
}
