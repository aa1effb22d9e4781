import ArgumentParser
import Glibc
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// `openclaw-node connect <target>`: one paste to join, as upstream's `openclaw connect`. The
/// target is a setup code, an `oc-pair://` URL or a gateway join URL (`https://gw/j/<code>`,
/// fetched once by the confined NetWorker). The node then runs with the code's bootstrap
/// token, which never reaches an argument list, a unit or a log; with `--service` it stops
/// after the first hello (the device token is stored by then) and installs the service
/// (`install --force`) on the endpoint it saved.
struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Connect this machine to an OpenClaw Gateway as a node.",
        discussion: """
        TARGET is what the gateway's pairing screen shows: a setup code, an oc-pair:// URL or a \
        join URL (https://<gateway>/j/<code>; plain http only for a loopback gateway). A join URL \
        works once and for about 10 minutes. Without --service the node runs in the foreground; \
        with it, the node connects once and the service is installed. Errors exit 1.
        """
    )

    @Argument(help: "oc-pair URL, setup code, or HTTPS Gateway join URL")
    var target: String?

    @Option(name: .customLong("target-file"), help: ArgumentHelp(
        "Read the connect target from a private file and remove it", valueName: "path"))
    var targetFile: String?

    @Flag(help: "Install and run the node host as a service (after the first connect)")
    var service = false

    @Flag(help: "With --service: install the system service (/etc/systemd/system, needs root).")
    var system = false

    @Option(name: .customLong("display-name"), help: "Override the node display name")
    var displayName: String?

    @OptionGroup var confinement: ConfinementFlags
    @OptionGroup var surface: CommandSurfaceOptions
    @OptionGroup var workers: WorkerPathOptions

    static let maxTargetFileBytes = 64 * 1024

    func run() throws {
        let code: SetupCode
        do {
            code = try setupCode(from: try resolveTarget())
        } catch let failure as ConnectFailure {
            fputs("\(failure.message)\n", stderr)
            throw ExitCode(1)
        }
        Run.connectPairing = PairingRequest(code: code, preferBootstrapToken: true)
        var shared = confinement.runArguments + surface.runArguments
        if let displayName { shared += ["--display-name", displayName] }
        var node = try Run.parse(shared + workers.arguments + (service ? ["--stop-after-first-connect"] : []))
        do {
            try node.run()
        } catch let code as ExitCode where code == .success {
            // The node stopped on its own after its first hello (--service).
        }
        guard service else { return }
        var install = try Install.parse(["--force"] + shared + (system ? ["--system"] : []))
        try install.run()
    }

    struct ConnectFailure: Error {
        let message: String
    }

    /// The target argument, or the file's content (the file is removed once read).
    func resolveTarget() throws -> String {
        switch (target, targetFile) {
        case (_?, _?): throw ConnectFailure(message: "Provide the connect target or --target-file, not both.")
        case (nil, nil): throw ConnectFailure(message: "Connect target is required.")
        case let (text?, nil): return text.trimmingWhitespace()
        case let (nil, path?):
            let content: String
            switch Self.readTargetFile(path) {
            case let .success(text): content = text
            case let .failure(cause):
                throw ConnectFailure(message: "Could not read --target-file \(path) (max \(Self.maxTargetFileBytes) bytes): \(cause.message)")
            }
            guard !content.isEmpty else { throw ConnectFailure(message: "Connect target file is empty.") }
            unlink(path)
            return content
        }
    }

    /// A regular file (symlinks followed) of at most 64 KiB, trimmed.
    static func readTargetFile(_ path: String) -> Result<String, ConnectFailure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(ConnectFailure(message: SystemError.text(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            return .failure(ConnectFailure(message: "path must be a regular file"))
        }
        guard info.st_size <= maxTargetFileBytes else { return .failure(ConnectFailure(message: "file is too large")) }
        var bytes = [UInt8](repeating: 0, count: maxTargetFileBytes + 1)
        var total = 0
        while total < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            total += count
        }
        guard total <= maxTargetFileBytes else { return .failure(ConnectFailure(message: "file is too large")) }
        return .success(String(decoding: bytes.prefix(total), as: UTF8.self).trimmingWhitespace())
    }

    /// A join URL is fetched (by the NetWorker); anything else is a setup code.
    func setupCode(from text: String) throws -> SetupCode {
        guard let join = EndpointURL(text, schemes: ["https", "http"]) else {
            do {
                return try SetupCode.decode(text, nowMs: currentTimeMillis())
            } catch let failure as SetupCode.Failure {
                throw ConnectFailure(message: failure.description)
            }
        }
        let path = join.path
        let shortcode = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let segments = path.split(separator: "/")
        guard !join.host.contains("@"), !path.contains("?"), !path.contains("#"), segments.count >= 2, segments[segments.count - 2] == "j",
              shortcode.utf8.count == 22, shortcode.utf8.allSatisfy({ SetupCode.isBase64URLByte($0) }) else {
            throw ConnectFailure(message: "Join URL must end with the exact /j/<shortcode> form.")
        }
        if join.scheme == "http", !GatewayURL.isLoopback(join.host) {
            throw ConnectFailure(message: "Plain HTTP join URLs are allowed only for loopback gateways.")
        }
        let port = join.explicitPort ?? (join.scheme == "https" ? 443 : 80)
        let launch = workers.launch(.net)
        let options = confinement.options(for: .net, connectPorts: [UInt16(clamping: port)])
        let securely = ConnectFailure(message: "Could not fetch the Gateway join payload securely.")
        // The URL goes on stdin: its shortcode is a credential, and argv is world-readable in /proc.
        guard let output = ProgramRun.run([launch.argv0] + options.arguments + ["--fetch-join", "-"],
                                          environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], path: launch.path,
                                          input: Array(text.utf8.prefix(16_384))),
              let report = try? JSONText.decode(JSONValue.self, from: output.stdout) else { throw securely }
        if report["error"] != nil { throw securely }
        let status = (report["status"]?.numberValue ?? 0).saturatingInt
        guard (200..<300).contains(status), report["contentType"]?.stringValue?.lowercased().hasPrefix("application/json") == true else {
            throw ConnectFailure(message: "Gateway join code was not found or has expired.")
        }
        guard let body = report["body"]?.stringValue, let payload = try? JSONText.decode(JSONValue.self, from: body),
              case .object = payload else {
            throw ConnectFailure(message: "Gateway returned an invalid pairing payload.")
        }
        do {
            return try SetupCode(payload: payload, nowMs: currentTimeMillis())
        } catch {
            throw securely
        }
    }
}
