// A stand-in worker for tests: it plays a NetWorker or ExecWorker that misbehaves in one
// chosen way, to show that the Supervisor refuses it (logs, kills, re-spawns) and stays up.
//
// Usage (tests wrap it in a script that passes the Supervisor's arguments on):
//   ForgedWorker MODE [PARAM] [confinement options from the Supervisor]
// It confines itself exactly like the worker it replaces (a compromised worker is still
// confined), then misbehaves.
// MODEs:
//   garbage          bytes that are not a frame of JSON
//   oversize         a length prefix above the frame limit
//   zero-length      an empty frame
//   unknown-type     a well-formed frame with an unknown `type`
//   out-of-state     (net) an `invoke` before `ready`
//   exec-out-of-state (exec) a `run.finished` before `ready`
//   unknown-run      (exec) ready, then run.finished for a run that was never ordered
//   sign-forged-nonce (net) ready, then a sign.request whose nonce contains `|`
//   sign-stale       (net) ready, then a sign.request with a signedAt an hour old
//   sign-twice       (net) ready, then two sign.requests in one connect attempt
//   idle             ready, then nothing (a well-behaved but silent worker)
//   invoke-approved-no-plan PARAM  (net) linked, then system.run `touch PARAM` claiming approved:true, no plan
//   invoke-forged-plan PARAM       (net) linked, then an approved system.run `touch PARAM` with a
//                                  self-made matching plan (must still obey security=deny)
//   invoke-plain PARAM             (net) linked, then system.run `touch PARAM` with no approval
//   browser-early-response         (browser) a browser.response before ready
//   browser-file-path PARAM        (browser) ready, then answers every route with {"ok":true,"path":PARAM}
//                                  (a compromised BrowserWorker naming a file it must not get read)
import Confinement
import Glibc
import NIOCore
import OpenClawIPC

let (confinementOptions, words) = ConfinementOptions.parse(Array(CommandLine.arguments.dropFirst()))
let mode = words.first ?? "garbage"
let param = words.count > 1 ? words[1] : ""
let fd = workerIPCDescriptor
let role: WorkerRole = mode.hasPrefix("exec-") || mode == "unknown-run" ? .exec
    : mode.hasPrefix("browser-") ? .browser : .net
let confinement = WorkerConfinement.apply(role, confinementOptions)
let confinementJSON = (try? JSONText.encode(confinement)) ?? "null"

func send(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
        if count <= 0 { exit(1) }
        offset += count
    }
}

func frame(_ json: String) -> [UInt8] {
    let body = Array(json.utf8)
    let length = UInt32(body.count)
    return [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)] + body
}

func ready() {
    send(frame(#"{"type":"ready","pid":\#(getpid()),"role":"\#(role.rawValue)","confinement":\#(confinementJSON)}"#))
}

/// Reads one frame body (blocking); nil when the Supervisor hung up.
func readFrame() -> String? {
    func readExactly(_ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, count - offset) }
            if got <= 0 { return nil }
            offset += got
        }
        return bytes
    }
    guard let header = readExactly(4) else { return nil }
    let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
    guard let body = readExactly(length) else { return nil }
    return String(decoding: body, as: UTF8.self)
}

/// Plays a NetWorker that completed the handshake, then sends `params` as a system.run invoke.
func linkedThenInvoke(_ params: String) {
    ready()
    _ = readFrame() // configure
    send(frame(#"{"type":"link.state","phase":"connected"}"#))
    send(frame(#"{"type":"hello.ok","protocol":3,"tickIntervalMs":30000}"#))
    let paramsJSON = String(decoding: try! JSONText.encode(JSONValue.string(params)).utf8, as: UTF8.self)
    send(frame(#"{"type":"invoke","id":"forged-1","nodeId":"n","command":"system.run","paramsJSON":\#(paramsJSON)}"#))
}

func nowMs() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec / 1_000_000)
}

switch mode {
case "garbage":
    send(Array("this is not a frame at all\n".utf8) + [0xff, 0xfe])
case "oversize":
    send([0x7f, 0xff, 0xff, 0xff] + Array(repeating: UInt8(ascii: "{"), count: 16))
case "zero-length":
    send([0, 0, 0, 0])
case "unknown-type":
    send(frame(#"{"type":"please.run.this","argv":["/bin/true"]}"#))
case "out-of-state":
    send(frame(#"{"type":"invoke","id":"x","nodeId":"y","command":"system.run","paramsJSON":"{}"}"#))
case "exec-out-of-state":
    send(frame(#"{"type":"run.finished","id":"x","timedOut":false,"stdout":"","stderr":"","truncated":false,"durationMs":0}"#))
case "unknown-run":
    ready()
    send(frame(#"{"type":"run.finished","id":"never-ordered","timedOut":false,"stdout":"","stderr":"","truncated":false,"durationMs":0}"#))
case "sign-forged-nonce":
    ready()
    send(frame(#"{"type":"sign.request","requestId":"r1","nonce":"n|v3|evil","signedAt":\#(nowMs()),"version":"v3"}"#))
case "sign-stale":
    ready()
    send(frame(#"{"type":"sign.request","requestId":"r1","nonce":"abc","signedAt":\#(nowMs() - 3_600_000),"version":"v3"}"#))
case "sign-twice":
    ready()
    _ = readFrame() // configure: the link is linking
    send(frame(#"{"type":"link.state","phase":"connecting"}"#))
    for id in ["r1", "r2"] {
        send(frame(#"{"type":"sign.request","requestId":"\#(id)","nonce":"abc","signedAt":\#(nowMs()),"version":"v3"}"#))
    }
    while readFrame() != nil {}
case "idle":
    ready()
case "invoke-approved-no-plan":
    linkedThenInvoke(#"{"command":["/usr/bin/touch","\#(param)"],"approved":true,"approvalDecision":"allow-once"}"#)
case "invoke-forged-plan":
    let plan = #"{"argv":["/usr/bin/touch","\#(param)"],"cwd":null,"commandText":"/usr/bin/touch \#(param)"}"#
    linkedThenInvoke(#"{"command":["/usr/bin/touch","\#(param)"],"approved":true,"approvalDecision":"allow-always","systemRunPlan":\#(plan)}"#)
case "invoke-plain":
    linkedThenInvoke(#"{"command":["/usr/bin/touch","\#(param)"]}"#)
case "browser-early-response":
    send(frame(#"{"type":"browser.response","id":"b1","status":200,"body":{"ok":true}}"#))
case "browser-file-path":
    ready()
    while let body = readFrame() {
        guard case let .object(message)? = try? JSONText.decode(JSONValue.self, from: body),
              message["type"]?.stringValue == "browser.request", let id = message["id"]?.stringValue else { continue }
        let path = String(decoding: try! JSONText.encode(JSONValue.string(param)).utf8, as: UTF8.self)
        send(frame(#"{"type":"browser.response","id":"\#(id)","status":200,"body":{"ok":true,"path":\#(path)}}"#))
    }
    exit(0)
default:
    fputs("unknown mode \(mode)\n", stderr)
    exit(64)
}

// Echo every frame the Supervisor sends to stderr (tests read it), until it hangs up.
if mode.hasPrefix("invoke-") {
    while let body = readFrame() { fputs("forged worker received: \(body)\n", stderr) }
    exit(0)
}
var buffer = [UInt8](repeating: 0, count: 65536)
while true {
    let count = read(fd, &buffer, buffer.count)
    if count <= 0 { exit(0) }
    fputs("forged worker received \(count) bytes\n", stderr)
}
