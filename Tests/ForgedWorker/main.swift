// A stand-in worker for tests: it plays a NetWorker or ExecWorker that misbehaves in one
// chosen way, to show that the Supervisor refuses it (logs, kills, re-spawns) and stays up.
//
// Usage (the Supervisor starts it with no arguments, so tests wrap it in a script):
//   openclaw-node-forged MODE
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
//   idle             ready, then nothing (a well-behaved but silent worker)
import Glibc
import NIOCore
import OpenClawIPC

let mode = CommandLine.arguments.dropFirst().first ?? "garbage"
let fd = workerIPCDescriptor

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

func ready() { send(frame(#"{"type":"ready","pid":\#(getpid()),"version":"forged"}"#)) }

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
case "idle":
    ready()
default:
    fputs("unknown mode \(mode)\n", stderr)
    exit(64)
}

// Echo whatever the Supervisor sends to stderr (tests read it), until it hangs up.
var buffer = [UInt8](repeating: 0, count: 65536)
while true {
    let count = read(fd, &buffer, buffer.count)
    if count <= 0 { exit(0) }
    fputs("forged worker received \(count) bytes\n", stderr)
}
