import NodeSupport

/// What the node tells its service manager (`Type=notify`, `sd_notify(3)`): `READY=1` once the
/// first connection has a verdict the node will live with (connected, waiting for pairing
/// approval, or failed in a way it keeps retrying), and a `STATUS=` line for each change, which
/// `systemctl status` shows. A refused credential exits before `READY=1`, so `systemctl start`
/// (and `install`) report the failure instead of a start.
final class ServiceReadiness {
    private(set) var isReady = false
    private var lastStatus: String?
    private let send: ([(String, String)]) -> Void

    init(send: @escaping ([(String, String)]) -> Void = { SystemdNotify.send($0) }) {
        self.send = send
    }

    /// Reports `status`; `ready` also sends `READY=1` the first time.
    func update(_ status: String, ready: Bool) {
        var fields: [(String, String)] = []
        if ready, !isReady {
            isReady = true
            fields.append(("READY", "1"))
        }
        if status != lastStatus {
            lastStatus = status
            fields.append(("STATUS", status))
        }
        if !fields.isEmpty { send(fields) }
    }

    func stopping(_ status: String) {
        send([("STOPPING", "1"), ("STATUS", status)])
    }
}
