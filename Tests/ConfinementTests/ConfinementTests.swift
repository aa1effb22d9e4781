import OpenClawIPC
import XCTest
@testable import Confinement

/// The per-role policy tables and the options the Supervisor passes to a worker.
final class ConfinementTests: XCTestCase {
    func testOptionsRoundTripThroughTheWorkerCommandLine() {
        let options = ConfinementOptions(user: "openclaw-net", optedOut: [.landlock, .seccomp], connectPorts: [443],
                                         metricsPort: 9464, writablePaths: ["/var/lib/x/browser"], executablePaths: ["/usr/lib/chromium"])
        XCTAssertEqual(options.arguments, ["--user", "openclaw-net", "--unconfined", "landlock", "--unconfined", "seccomp",
                                           "--connect-port", "443", "--metrics-port", "9464", "--write-path", "/var/lib/x/browser",
                                           "--exec-path", "/usr/lib/chromium"])
        let (parsed, rest) = ConfinementOptions.parse(options.arguments + ["--check-gateway", "ws://h:1"])
        XCTAssertEqual(parsed, options)
        XCTAssertEqual(rest, ["--check-gateway", "ws://h:1"])
    }

    func testAnUnknownStepIsNotAnOptOut() {
        XCTAssertEqual(ConfinementOptions.parse(["--unconfined", "everything"]).0.optedOut, [])
    }

    func testEveryStepOptedOutAppliesNothingAndSaysSo() {
        for role in WorkerRole.allCases {
            let report = WorkerConfinement.apply(role, ConfinementOptions(optedOut: Set(ConfinementStep.allCases)))
            XCTAssertNil(report.failure, "\(role)")
            XCTAssertEqual(report.entries.map(\.step), [.user, .capabilities, .noNewPrivs, .landlock, .seccomp], "\(role): in order")
            XCTAssertEqual(Set(report.entries.map(\.state)), [.optedOut], "\(role)")
        }
    }

    func testThePolicyTables() {
        let surface = Set(ConfinementPolicy.kernelAttackSurface)
        for call in ["ptrace", "bpf", "keyctl", "mount", "unshare", "setns", "kexec_load", "io_uring_setup", "userfaultfd"] {
            XCTAssertTrue(surface.contains(call), call)
        }
        XCTAssertEqual(ConfinementPolicy.netNoProcesses, ["execve", "execveat", "fork", "vfork"])
        XCTAssertTrue(Set(ConfinementPolicy.browserSandboxCalls).isSubset(of: surface),
                      "the browser keeps only calls that are otherwise denied")
        XCTAssertFalse(ConfinementPolicy.netReadablePaths.contains { $0 == "/" || $0.hasPrefix("/home") || $0.hasPrefix("/root") })
        XCTAssertEqual(ConfinementPolicy.defaultNetUser, "nobody")
    }
}
