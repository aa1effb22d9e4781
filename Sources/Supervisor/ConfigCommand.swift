import ArgumentParser
import Glibc
import OpenClawIPC
import SupervisorCore

/// `openclaw-node config …`: the configuration files.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check the configuration files.",
        subcommands: [ConfigCheckCommand.self]
    )
}

/// `openclaw-node config check`: like `sshd -t` or `nginx -t`.
struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check openclaw.json and exec-approvals.json; print every problem.",
        discussion: """
        Reads $OPENCLAW_CONFIG_PATH (default <state dir>/openclaw.json, JSON5) and \\
        <state dir>/exec-approvals.json. Errors: a file that does not parse (file:line:column), \\
        or a safety setting with an invalid value (security, ask, askFallback, allowlist entries, \\
        nodeHost.browserProxy, browser.enabled, …), which the node applies fail-closed (deny, ask \\
        always, proxy disabled). Warnings: keys the node does not know, with the nearest known one.

        Exit status: 0 no errors (warnings allowed), 1 errors found.
        """
    )

    @Flag(help: "Print the result as JSON: {ok, files, problems: [{severity, file, key, message, line, column}]}.")
    var json = false

    func run() throws {
        let paths = StatePaths.resolve()
        let problems = ConfigCheck.run(configPath: paths.configPath, approvalsPath: paths.approvalsFile)
        let ok = !problems.contains { $0.severity == .error }
        if json {
            let report: JSONValue = .object([
                "ok": .bool(ok),
                "files": .array([.string(paths.configPath), .string(paths.approvalsFile)]),
                "problems": .array(problems.map(\.json)),
            ])
            print((try? JSONText.encode(report)) ?? "{}")
        } else {
            for problem in problems { print("\(problem.severity.rawValue): \(problem.text)") }
            let errors = problems.filter { $0.severity == .error }.count
            let warnings = problems.count - errors
            print(ok ? "config OK (\(paths.configPath), \(paths.approvalsFile))\(warnings > 0 ? "; \(warnings) warning(s)" : "")"
                     : "config has \(errors) error(s)\(warnings > 0 ? " and \(warnings) warning(s)" : "")")
        }
        if !ok { throw ExitCode(1) }
    }
}
