import Glibc
import NodeSupport
import OpenClawIPC
import SupervisorCore

/// The doctor's end-to-end self-test: the real `openclaw-node run` (with its confined
/// workers and the same confinement flags) against `SelfTestGateway` on loopback, in a
/// throwaway state dir: pairing, reconnect on approval, `system.which`, `system.run`, stop.
struct SelfTest {
    var program: String
    var confinement: ConfinementFlags

    func run() -> DoctorCheck {
        let began = Clock.monotonicMs()
        var template = Array("/tmp/openclaw-selftest.XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            return fail("cannot create a temporary state dir")
        }
        defer { removeTree(dir) }
        let candidates = ["/usr/bin/echo", "/bin/echo"]
        let echo = candidates.first { path in access(path, X_OK) == 0 } ?? "/bin/echo"
        let approvals = #"{"version":1,"defaults":{"security":"allowlist","ask":"off"},"agents":{"main":{"allowlist":[{"pattern":"\#(echo)"}]}}}"#
        guard (try? SecureFile.write("\(dir)/exec-approvals.json", Array(approvals.utf8))) != nil else {
            return fail("cannot write the self-test approvals file")
        }
        let gateway = SelfTestGateway()
        let port: Int
        do { port = try gateway.start() } catch { return fail("cannot start the loopback gateway: \(error)") }
        defer { gateway.stop() }

        var arguments = [program, "run", "--host", "127.0.0.1", "--port", String(port), "--display-name", "openclaw-selftest"]
        arguments += confinement.runArguments
        let log = "\(dir)/node.log"
        let logFd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { if logFd >= 0 { close(logFd) } }
        let environment = ["PATH": ExecutableSearch.defaultPath, "HOME": dir,
                           "OPENCLAW_STATE_DIR": dir]
        let pid: pid_t
        do {
            pid = try Spawner.spawn(SpawnSpec(path: program, argv: arguments, env: environment,
                                              fdMap: logFd >= 0 ? [(logFd, CInt(1)), (logFd, CInt(2))] : []))
        } catch {
            return fail("cannot start \(program): \(error)")
        }
        var stopped = false
        defer {
            if !stopped {
                kill(pid, SIGKILL)
                waitpid(pid, nil, 0)
            }
        }
        func tail() -> String {
            guard let bytes = try? SecureFile.read(log) else { return "" }
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
            return lines.suffix(3).joined(separator: " | ")
        }

        guard gateway.waitUntil(15, { gateway.pairingRequests > 0 }) else {
            return fail("the node never presented a verifiable connect (\(gateway.problems.first ?? tail()))")
        }
        gateway.approve()
        guard gateway.waitUntil(20, { gateway.helloSent }) else { return fail("no hello after pairing approval: \(tail())") }
        // The hello-ok is processed asynchronously; invokes are retried until the link is up.
        var which: JSONValue?
        for _ in 0..<20 where which == nil {
            which = gateway.invoke("system.which", params: .object(["bins": .array([.string("sh")])]), timeout: .seconds(2))
            if which == nil { usleep(100_000) }
        }
        guard let which, which["ok"]?.boolValue == true,
              let whichPayload = which["payloadJSON"]?.stringValue.flatMap({ try? JSONText.decode(JSONValue.self, from: $0) }),
              whichPayload["bins"]?["sh"]?.stringValue != nil else {
            return fail("system.which did not answer: \(which.map { "\($0)" } ?? tail())")
        }
        guard let run = gateway.invoke("system.run", params: .object(["command": .array([.string(echo), .string("openclaw-selftest")])])),
              run["ok"]?.boolValue == true,
              let runPayload = run["payloadJSON"]?.stringValue.flatMap({ try? JSONText.decode(JSONValue.self, from: $0) }),
              runPayload["stdout"]?.stringValue == "openclaw-selftest\n" else {
            return fail("system.run did not run \(echo) through the exec worker: \(tail())")
        }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) == pid { stopped = true; break }
            usleep(50_000)
        }
        // A clean stop on SIGTERM exits 143 (upstream's code), not killed by the signal.
        guard stopped, status & 0x7f == 0, (status >> 8) & 0xff == SupervisorExit.terminated.rawValue else {
            return fail("the node did not stop cleanly on SIGTERM within 5 s")
        }
        return DoctorCheck(name: "self-test", status: .ok,
                           detail: "paired, system.which and system.run through the confined workers, clean stop (\(Clock.monotonicMs() - began) ms)")
    }

    func fail(_ detail: String) -> DoctorCheck {
        DoctorCheck(name: "self-test", status: .fail, detail: detail,
                    fix: "run `openclaw-node run` in the foreground and read its log; report it if this persists")
    }
}
