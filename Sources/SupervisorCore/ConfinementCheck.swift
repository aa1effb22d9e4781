import Confinement
import Glibc
import NodeSupport
import OpenClawIPC

/// The Supervisor's check of a worker's confinement: the worker's own report, cross-checked
/// against what the kernel says in `/proc/<pid>/status` (a worker cannot claim a filter it
/// does not have).
public enum ConfinementCheck {
    /// The fields of `/proc/<pid>/status` that show confinement.
    public struct KernelView: Equatable, Sendable {
        public var seccompMode: Int?
        public var noNewPrivs: Bool?
        public var capEff: UInt64?
        public var capPrm: UInt64?
        public var uid: uid_t?

        public static func read(pid: pid_t) -> KernelView? {
            // To its end, again after EINTR: a read cut short by a signal is no view at all.
            guard let bytes = try? readWholeFile("/proc/\(pid)/status") else { return nil }
            var view = KernelView()
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let value = String(parts[1]).trimmingWhitespace()
                switch parts[0] {
                case "Seccomp": view.seccompMode = Int(value)
                case "NoNewPrivs": view.noNewPrivs = value == "1"
                case "CapEff": view.capEff = UInt64(value, radix: 16)
                case "CapPrm": view.capPrm = UInt64(value, radix: 16)
                case "Uid": view.uid = value.split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { uid_t($0) }
                default: break
                }
            }
            return view
        }
    }

    /// nil when the worker is confined as it must be; otherwise why not (one line for the log).
    public static func problem(kind: String, report: ConfinementReport?, kernel: KernelView?,
                               optedOut: Set<ConfinementStep>) -> String? {
        guard let report else { return "\(kind) worker did not report its confinement" }
        if let failed = report.failure {
            return "\(kind) worker could not apply confinement step \(failed.step.rawValue): \(failed.detail ?? "failed")"
        }
        for step in ConfinementStep.allCases where !optedOut.contains(step) && report.state(of: step) == nil {
            return "\(kind) worker did not apply confinement step \(step.rawValue)"
        }
        guard let kernel else { return "cannot read /proc status of the \(kind) worker" }
        if report.state(of: .seccomp) == .active, kernel.seccompMode != 2 {
            return "\(kind) worker claims a seccomp filter but the kernel shows Seccomp: \(kernel.seccompMode.map(String.init) ?? "?")"
        }
        if report.state(of: .noNewPrivs) == .active, kernel.noNewPrivs != true {
            return "\(kind) worker claims no_new_privs but the kernel shows NoNewPrivs: 0"
        }
        if report.state(of: .capabilities) == .active, kernel.capEff != 0 || kernel.capPrm != 0 {
            return "\(kind) worker claims no capabilities but the kernel shows CapEff/CapPrm set"
        }
        return nil
    }
}
