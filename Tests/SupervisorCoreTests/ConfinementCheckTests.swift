import Confinement
import OpenClawIPC
import XCTest

@testable import SupervisorCore

final class ConfinementCheckTests: XCTestCase {
    let confinedKernel = ConfinementCheck.KernelView(seccompMode: 2, noNewPrivs: true, capEff: 0, capPrm: 0, uid: 65534)

    func report(_ states: [ConfinementStep: ConfinementReport.State]) -> ConfinementReport {
        ConfinementReport(entries: ConfinementStep.allCases.compactMap { step in states[step].map { .init(step: step, state: $0) } })
    }

    var allActive: ConfinementReport {
        report(Dictionary(uniqueKeysWithValues: ConfinementStep.allCases.map { ($0, .active) }))
    }

    func testAFullyConfinedWorkerPasses() {
        XCTAssertNil(ConfinementCheck.problem(kind: "net", report: allActive, kernel: confinedKernel, optedOut: []))
    }

    func testAMissingReportIsRefused() {
        XCTAssertEqual(ConfinementCheck.problem(kind: "net", report: nil, kernel: confinedKernel, optedOut: []),
                       "net worker did not report its confinement")
    }

    func testAFailedStepIsNamed() {
        var failing = allActive
        failing.entries[3] = .init(step: .landlock, state: .failed, detail: "Landlock is not available on this kernel")
        XCTAssertEqual(ConfinementCheck.problem(kind: "net", report: failing, kernel: confinedKernel, optedOut: []),
                       "net worker could not apply confinement step landlock: Landlock is not available on this kernel")
    }

    func testAClaimTheKernelContradictsIsRefused() {
        var kernel = confinedKernel
        kernel.seccompMode = 0
        XCTAssertEqual(ConfinementCheck.problem(kind: "exec", report: allActive, kernel: kernel, optedOut: []),
                       "exec worker claims a seccomp filter but the kernel shows Seccomp: 0")
        kernel = confinedKernel
        kernel.capEff = 0x20
        XCTAssertEqual(ConfinementCheck.problem(kind: "exec", report: allActive, kernel: kernel, optedOut: []),
                       "exec worker claims no capabilities but the kernel shows CapEff/CapPrm set")
    }

    func testASkippedStepNeedsAnOptOut() {
        let partial = report([.user: .active, .capabilities: .active, .noNewPrivs: .active, .landlock: .active])
        XCTAssertEqual(ConfinementCheck.problem(kind: "net", report: partial, kernel: confinedKernel, optedOut: []),
                       "net worker did not apply confinement step seccomp")
        XCTAssertNil(ConfinementCheck.problem(kind: "net", report: partial, kernel: confinedKernel, optedOut: [.seccomp]))
    }

    func testWorkerArgumentsRoundTrip() {
        let options = ConfinementOptions(user: "svc", optedOut: [.landlock, .seccomp], connectPorts: [18789])
        let (parsed, rest) = ConfinementOptions.parse(options.arguments + ["--probe", "fork"])
        XCTAssertEqual(parsed, options)
        XCTAssertEqual(rest, ["--probe", "fork"])
    }

    func testTheKernelViewOfThisProcessParses() throws {
        let view = try XCTUnwrap(ConfinementCheck.KernelView.read(pid: getpid()))
        XCTAssertNotNil(view.seccompMode)
        XCTAssertEqual(view.uid, geteuid())
    }
}
