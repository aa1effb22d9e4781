import ArgumentParser
import Confinement
import Glibc
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// `openclaw-node doctor`: which protections each worker gets on this kernel, found by
/// starting each worker in report mode with the same confinement flags `run` would use.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report which confinement steps each worker gets on this machine.",
        discussion: """
        Starts openclaw-node-net and openclaw-node-exec once each, in report mode: each applies \
        its confinement exactly as under `run` (user, capabilities, no-new-privs, landlock, \
        seccomp), prints what took effect, and exits. Nothing connects anywhere. \
        Exit status: 0 every step is active, not needed or opted out; 1 a step failed (`run` \
        would refuse to start that worker).
        """
    )

    @OptionGroup var confinement: ConfinementFlags

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(name: .customLong("net-worker-path"), help: .hidden)
    var netWorkerPath: String?

    @Option(name: .customLong("exec-worker-path"), help: .hidden)
    var execWorkerPath: String?

    func run() throws {
        guard let me = currentExecutablePath(),
              let net = netWorkerPath ?? WorkerKind.net.locate(besides: me),
              let exec = execWorkerPath ?? WorkerKind.exec.locate(besides: me) else {
            fputs("openclaw-node doctor: worker executables not found next to this program\n", stderr)
            throw ExitCode(ExitStatus.config)
        }
        let workers: [(name: String, path: String)] = [("net", net), ("exec", exec)]
        var reports: [String: ConfinementReport] = [:]
        var problems: [String] = []
        for worker in workers {
            let options = confinement.options(for: worker.name)
            switch Self.report(executable: worker.path, arguments: options.arguments + ["--confinement-report"]) {
            case let .success(report):
                reports[worker.name] = report
                if let failed = report.failure {
                    problems.append("\(worker.name): \(failed.step.rawValue) failed: \(failed.detail ?? "")")
                }
            case let .failure(problem):
                problems.append("\(worker.name): \(problem.message)")
            }
        }
        let landlock = Landlock.abi()
        if json {
            var object: [String: JSONValue] = [
                "ok": .bool(problems.isEmpty),
                "kernel": .object([
                    "landlockAbi": landlock.map { .number(Double($0)) } ?? .null,
                    "uid": .number(Double(geteuid())),
                ]),
                "problems": .array(problems.map(JSONValue.string)),
            ]
            var workersObject: [String: JSONValue] = [:]
            for (name, report) in reports {
                workersObject[name] = .array(report.entries.map { entry in
                    var item: [String: JSONValue] = ["step": .string(entry.step.rawValue), "state": .string(entry.state.rawValue)]
                    if let detail = entry.detail { item["detail"] = .string(detail) }
                    return .object(item)
                })
            }
            object["workers"] = .object(workersObject)
            print((try? JSONText.encode(JSONValue.object(object))) ?? "{}")
        } else {
            print("kernel: Landlock \(landlock.map { "ABI \($0)" } ?? "unavailable"); running as uid \(geteuid())")
            for worker in workers {
                print("\(worker.name) worker (\(worker.path)):")
                for entry in reports[worker.name]?.entries ?? [] {
                    let step = Self.pad(entry.step.rawValue, 14)
                    let state = Self.pad(entry.state.rawValue, 11)
                    print("  \(step)\(state)\(entry.detail ?? "")")
                }
            }
            for problem in problems { print("problem: \(problem)") }
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    /// Runs a worker in report mode and parses what it prints.
    static func report(executable: String, arguments: [String]) -> Result<ConfinementReport, DoctorProblem> {
        guard let output = ProgramRun.run([executable] + arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"],
                                          path: executable) else {
            return .failure(DoctorProblem("cannot start \(executable)"))
        }
        guard let report = try? JSONText.decode(ConfinementReport.self, from: output.stdout) else {
            return .failure(DoctorProblem("no confinement report (worker exited with status \(output.status)): \(output.stderr.prefix(200))"))
        }
        return .success(report)
    }
}

struct DoctorProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
