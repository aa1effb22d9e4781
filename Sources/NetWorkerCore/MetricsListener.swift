import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import OpenClawIPC

/// Serves Prometheus scrapes on 127.0.0.1:<port> from the NetWorker (the only process that
/// faces a network): each scrape asks the Supervisor for the exposition over IPC. Not an HTTP
/// server: it reads at most 8 KiB up to the end of the request head, ignores what it says,
/// answers and closes.
public final class MetricsListener: @unchecked Sendable {
    private let loop: EventLoop
    private let logger: Logger
    private let askSupervisor: (MetricsRequest) -> Void
    /// Scrapes waiting for the Supervisor's text (five seconds each).
    private let waiting: PendingCalls<String, String>

    public init(loop: EventLoop, logger: Logger, askSupervisor: @escaping (MetricsRequest) -> Void) {
        self.loop = loop
        self.logger = logger
        self.askSupervisor = askSupervisor
        waiting = PendingCalls(loop: loop)
    }

    public func start(port: Int) {
        ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ScrapeHandler(listener: self))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .whenComplete { [logger] result in
                switch result {
                case .success: logger.info("metrics on http://127.0.0.1:\(port)/metrics")
                case let .failure(error):
                    logger.warning("metrics listener unavailable", metadata: ["port": .typed(port), "error": "\(error)"])
                }
            }
    }

    /// The Supervisor's answer to a scrape.
    public func replied(_ reply: MetricsReply) {
        loop.execute { self.waiting.complete(reply.requestId, with: .success(reply.text)) }
    }

    fileprivate func scrape(_ respond: @escaping (String?) -> Void) {
        let id = RandomID.uuid()
        waiting.add(id, deadline: .seconds(5)) { respond(try? $0.get()) }
        askSupervisor(MetricsRequest(requestId: id))
    }
}

private final class ScrapeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let listener: MetricsListener
    private var seen: [UInt8] = []
    private var answered = false

    init(listener: MetricsListener) { self.listener = listener }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        seen += unwrapInboundIn(data).readableBytesView.prefix(max(0, 8192 - seen.count))
        let endOfHead = seen.indices.dropFirst(3).contains { index in
            seen[index - 3] == 13 && seen[index - 2] == 10 && seen[index - 1] == 13 && seen[index] == 10
        }
        guard endOfHead || seen.count >= 8192 else { return }
        answered = true
        let channel = context.channel
        listener.scrape { text in
            let status = text == nil ? "503 Service Unavailable" : "200 OK"
            let body = text ?? "supervisor did not answer\n"
            let head = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            channel.writeAndFlush(ByteBuffer(string: head + body)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
