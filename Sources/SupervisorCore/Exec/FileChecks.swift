import Dispatch
import NIOPosix
import NIOCore

/// Runs work that reads files a request names (a cwd to canonicalise, a script to hash) off
/// the Supervisor's event loop, with a deadline: a slow or hung file system, or a FIFO where a
/// script should be, delays one answer, never the node.
///
/// Guarantees: `completion` runs exactly once, on the calling event loop: with the work's
/// value, or with `timedOut()` once `deadline` has passed (a late value is then dropped).
/// Called off an event loop (unit tests), the work runs inline.
enum FileChecks {
    static let queue = DispatchQueue(label: "openclaw-node.file-checks")
    static let deadline: TimeAmount = .seconds(10)

    static func run<Value>(_ work: @escaping () -> Value, timedOut: @escaping () -> Value,
                           completion: @escaping (Value) -> Void) {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return completion(work()) }
        // Touched on `loop` only.
        var finished = false
        let timer = loop.scheduleTask(in: deadline) {
            guard !finished else { return }
            finished = true
            completion(timedOut())
        }
        queue.async {
            let value = work()
            loop.execute {
                guard !finished else { return }
                finished = true
                timer.cancel()
                completion(value)
            }
        }
    }
}
