import ArgumentParser
import Glibc
import Logging
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// `openclaw-node approvals …`: the node's exec approvals, seen from this machine.
struct ApprovalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "Explain the node's exec-approval decisions.",
        subcommands: [ApprovalsExplainCommand.self]
    )
}

/// `openclaw-node approvals explain -- <argv…>`: the real `system.run` decision for a command,
/// run locally through the same code, without running anything or writing any file.
struct ApprovalsExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say whether a command would run on this node, and why (nothing is run).",
        discussion: """
        Decides `system.run` for ARGV exactly as the running node would, from openclaw.json \
        (tools.exec), <state dir>/exec-approvals.json and the allowlist analysis in CWD, with \
        this shell's PATH and HOME: run it as the node's user, with the node's environment, for \
        the same answer. Nothing runs and no file is written.

        Prints allow (and the argv that would run), ask (an operator must approve it first), deny \
        (the reason code, upstream's message, the policy that produced it and a remedy) or invalid. \
        Exit status: 0 allow, 1 ask, deny or invalid.
        """
    )

    @Option(help: "The agent whose policy applies (default: main).")
    var agent: String?

    @Option(help: "The directory the command would run in (default: this one).")
    var cwd: String?

    @Flag(name: .customLong("ask-fallback"), help: "Decide as for the gateway's ask fallback (no operator reachable).")
    var askFallback = false

    @Flag(help: "Print the decision as JSON.")
    var json = false

    @Argument(parsing: .captureForPassthrough, help: "The command, after --.")
    var argv: [String] = []

    func validate() throws {
        if argv.first == "--" { return }
        if argv.isEmpty { throw ValidationError("give the command after --, e.g. approvals explain -- /usr/bin/uname -a") }
    }

    func run() throws {
        let command = argv.first == "--" ? Array(argv.dropFirst()) : argv
        let paths = StatePaths.resolve()
        let environment = ProcessEnvironment.current()
        let pathEnv = environment["PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? NodeSetup.defaultPath
        let config: OpenClawConfig
        do {
            config = try OpenClawConfig.load(paths.configPath)
        } catch {
            fputs("openclaw-node approvals explain: \(error)\n", stderr)
            throw ExitCode(ExitStatus.config)
        }
        let node = try? NodeConfigFile.load(paths.nodeFile)
        let handler = SystemRunHandler(
            environment: ExecEnvironment(nodeEnvironment: environment, pathEnv: pathEnv, user: nil), pathEnv: pathEnv,
            home: environment["HOME"], approvals: ExecApprovalsStore(stateDir: paths.stateDir, sha256Hex: FileDigest.sha256Hex(bytes:)),
            config: config, runner: NothingRuns(), nodeName: node?.displayName ?? "<node>",
            logger: Logger(label: "approvals-explain", factory: { _ in SwiftLogNoOpLogHandler() }))
        let decision = handler.explain(argv: command, agentId: agent, cwd: cwd, askFallback: askFallback)
        if json {
            print((try? JSONText.encode(decision)) ?? "{}")
        } else {
            printText(decision, command: command)
        }
        if decision["decision"]?.stringValue != "allow" { throw ExitCode(1) }
    }

    func printText(_ decision: JSONValue, command: [String]) {
        let policy = decision["policy"]
        let policyLine = policy.map {
            "policy: security=\($0["security"]?.stringValue ?? "?") ask=\($0["ask"]?.stringValue ?? "?") "
                + "askFallback=\($0["askFallback"]?.stringValue ?? "?") (agent \($0["agent"]?.stringValue ?? "?"))"
                + ($0["askFallbackApplied"]?.boolValue == true ? ", ask fallback applied" : "")
        }
        switch decision["decision"]?.stringValue {
        case "allow":
            let argv = decision["argv"]?.arrayValue?.compactMap(\.stringValue) ?? command
            print("allow: \(argv.joined(separator: " ")) would run in \(decision["cwd"]?.stringValue ?? "-")")
            for match in decision["matched"]?.arrayValue ?? [] {
                print("allowlist: \(match["resolvedPath"]?.stringValue ?? "?") matched \"\(match["pattern"]?.stringValue ?? "?")\"")
            }
        case let verdict?:
            let reason = decision["reason"]?.stringValue ?? decision["code"]?.stringValue ?? "?"
            print("\(verdict) (\(reason)): \(decision["message"]?.stringValue ?? "")")
            if let remedy = decision["remedy"]?.stringValue { print("remedy: \(remedy)") }
        case nil:
            print("no decision")
        }
        if let policyLine { print(policyLine) }
    }
}

/// `approvals explain` never starts a command.
private final class NothingRuns: ExecRunner {
    func refusal() -> WireError? { nil }
    func run(_ order: RunOrder, completion: @escaping (Result<RunOutcome, WireError>) -> Void) -> WireError? {
        WireError(code: "UNAVAILABLE", message: "approvals explain runs nothing")
    }
    func cancel(_ runId: String) {}
}
