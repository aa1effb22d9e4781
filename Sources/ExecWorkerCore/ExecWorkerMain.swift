import Confinement
import Glibc
import Logging
import NodeSupport
import OpenClawIPC

/// Entry point of `openclaw-node-exec`: confine, then serve run orders from the Supervisor
/// on one thread (`ExecLoop`).
public enum ExecWorkerMain {
    public static func run() -> Never {
        // Before any thread exists: every command inherits what is applied here.
        let started = WorkerStartup.confine(.exec) { ExecToSupervisor.ready($0) }
        let logger = started.attachToSupervisor(.exec)
        let loop: ExecLoop
        do {
            loop = try ExecLoop(link: workerIPCDescriptor, logger: logger)
        } catch {
            logger.error("cannot open the supervisor link", metadata: ["error": "\(error)"])
            exit(70)
        }
        // Children are reaped through their pidfds, not SIGCHLD.
        loop.send(.ready(WorkerHello(pid: getpid(), role: .exec, confinement: started.report)))
        loop.run()
    }
}
