import Confinement
import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import NodeSupport
import OpenClawIPC

/// Entry point of `openclaw-node-exec`: confine, then serve run orders from the Supervisor.
public enum ExecWorkerMain {
    public static func run() -> Never {
        // Before any thread exists: every command inherits what is applied here.
        let started = WorkerStartup.confine(.exec) { ExecToSupervisor.ready($0) }
        let logger = started.attachToSupervisor(.exec)
        let confinement = started.report

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor: RunExecutor
        do {
            executor = try RunExecutor(loop: loop, logger: logger)
        } catch {
            logger.error("cannot start the output pump", metadata: ["error": "\(error)"])
            exit(70)
        }
        var connection: IPCConnection<SupervisorToExec, ExecToSupervisor>?

        func stop(_ code: Int32) -> Never {
            executor.killAll()
            exit(code)
        }

        // Children are reaped through their pidfds (OutputPump), not SIGCHLD.
        executor.onStarted = { connection?.send(.runStarted($0)) }
        executor.onFinished = { connection?.send(.runFinished($0)) }

        let adopted = IPCConnection<SupervisorToExec, ExecToSupervisor>.adopt(
            fd: workerIPCDescriptor, group: loop,
            onMessage: { message in
                switch message {
                case let .run(order):
                    guard !order.argv.isEmpty else {
                        logger.error("run order without argv; ignoring", metadata: ["run": "\(order.id)"])
                        return
                    }
                    executor.start(order)
                case let .cancel(cancel):
                    executor.cancel(cancel.id)
                case .shutdown:
                    logger.info("shutting down", metadata: ["running": "\(executor.activeCount)"])
                    stop(0)
                }
            },
            onViolation: { violation in
                logger.error("supervisor link violation", metadata: ["reason": "\(violation)"])
            },
            onClose: { stop(0) }
        )
        do {
            connection = try adopted.wait()
        } catch {
            logger.error("cannot open the supervisor link", metadata: ["error": "\(error)"])
            exit(70)
        }
        connection?.send(.ready(WorkerHello(pid: getpid(), version: "exec", confinement: confinement)))
        connection?.startReading()
        while true { pause() }
    }
}
