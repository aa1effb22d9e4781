import CSystemShims
import Dispatch
import Glibc
import NIOCore
import NIOPosix

/// Runs work that reads files a request names (a cwd to canonicalise, a script to hash) off
/// the Supervisor's event loop, with a deadline: a slow or hung file system, or a FIFO where a
/// script should be, delays one answer, never the node.
///
/// The files are looked at as the user commands run as (`as`: its uid and gid become the
/// checking thread's file-system ids), so a plan never hashes, or tells the gateway about, a
/// file that user could not read itself (`/etc/shadow` as a "script operand").
///
/// Guarantees: `completion` runs exactly once, on the calling event loop: with the work's
/// value, with `timedOut()` once `deadline` has passed (a late value is then dropped), or with
/// `timedOut()` at once when `maxWaiting` checks are already waiting (a hung mount does not
/// let a backlog grow). Called off an event loop (unit tests), the work runs inline.
enum FileChecks {
    static let queue = DispatchQueue(label: "openclaw-node.file-checks")
    static let deadline: TimeAmount = .seconds(10)
    static let maxWaiting = 32
    /// Checks queued or running; touched on the Supervisor's loop only.
    nonisolated(unsafe) static var waiting = 0

    static func run<Value>(as user: (uid: uid_t, gid: gid_t)? = nil, _ work: @escaping () -> Value,
                           timedOut: @escaping () -> Value, completion: @escaping (Value) -> Void) {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return completion(work()) }
        guard waiting < maxWaiting else { return completion(timedOut()) }
        waiting += 1
        // Touched on `loop` only.
        var finished = false
        let timer = loop.scheduleTask(in: deadline) {
            guard !finished else { return }
            finished = true
            completion(timedOut())
        }
        queue.async {
            let value = asUser(user, work)
            loop.execute {
                waiting -= 1
                guard !finished else { return }
                finished = true
                timer.cancel()
                completion(value)
            }
        }
    }

    /// `work` with this thread's file-system ids set to `user`'s (and back afterwards).
    static func asUser<Value>(_ user: (uid: uid_t, gid: gid_t)?, _ work: () -> Value) -> Value {
        guard let user, geteuid() == 0 else { return work() }
        let (gid, uid) = (csys_setfsgid(user.gid), csys_setfsuid(user.uid))
        defer {
            _ = csys_setfsuid(uid_t(uid))
            _ = csys_setfsgid(gid_t(gid))
        }
        return work()
    }
}
