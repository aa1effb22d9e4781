import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NodeSupport
import OpenClawIPC

/// `openclaw-node connect <join URL>`: the one GET of a gateway's join URL, run inside the
/// confined NetWorker (the only role with network access), with the link's TLS rules (CA
/// validation; the gateway's name checked). No redirect is followed, the body is capped at
/// 24 KiB and the whole exchange at 15 s, as upstream's join fetch. The Supervisor reads the
/// report from standard output and validates the payload itself.
public enum JoinFetch {
    public static let maxBytes = 24 * 1024

    public static func fetch(url: String, timeout: TimeAmount = .seconds(15)) -> JSONValue {
        guard let target = EndpointURL(url, schemes: ["https", "http"]) else {
            return .object(["error": .string("unusable join URL")])
        }
        let secure = target.scheme == "https"
        let port = target.explicitPort ?? (secure ? 443 : 80)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let done = Outcome(group.next().makePromise(of: JSONValue.self))
        do {
            let context = secure ? try GatewayTLS.context(pinned: false) : nil
            let channel = try ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let context {
                            try channel.pipeline.syncOperations.addHandler(try GatewayTLS.handler(context, host: target.host, pin: nil) { _ in })
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector(done: done))
                    }
                }
                .connect(host: target.host, port: port)
                .wait()
            let timer = channel.eventLoop.scheduleTask(in: timeout) {
                done.finish(.failure(ChannelError.connectTimeout(timeout)))
                channel.close(promise: nil)
            }
            var headers = HTTPHeaders()
            let name = target.host.contains(":") ? "[\(target.host)]" : target.host
            headers.add(name: "Host", value: target.explicitPort.map { "\(name):\($0)" } ?? name)
            headers.add(name: "Accept", value: "application/json")
            headers.add(name: "Connection", value: "close")
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target.path, headers: headers)),
                          promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            defer {
                timer.cancel()
                channel.close(promise: nil)
            }
            return try done.promise.futureResult.wait()
        } catch {
            // The promise is completed whatever failed (NIO reports a leaked one), on its loop.
            try? done.promise.futureResult.eventLoop.submit { done.finish(.failure(error)) }.wait()
            return .object(["error": .string("\(error)")])
        }
    }

    /// The exchange's one outcome: the first of the response, an error, the deadline.
    private final class Outcome: @unchecked Sendable {
        let promise: EventLoopPromise<JSONValue>
        private var finished = false
        init(_ promise: EventLoopPromise<JSONValue>) { self.promise = promise }

        func finish(_ result: Result<JSONValue, Error>) {
            guard !finished else { return }
            finished = true
            promise.completeWith(result)
        }
    }

    /// Collects one response: its status, content type and body (at most `maxBytes`).
    private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let done: Outcome
        var status = 0
        var contentType = ""
        var body: [UInt8] = []

        init(done: Outcome) { self.done = done }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case let .head(head):
                status = Int(head.status.code)
                contentType = head.headers.first(name: "Content-Type") ?? ""
            case var .body(buffer):
                guard body.count + buffer.readableBytes <= JoinFetch.maxBytes else {
                    done.finish(.failure(JoinFetchError.tooLarge))
                    context.close(promise: nil)
                    return
                }
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                done.finish(.success(.object(["status": .number(Double(status)), "contentType": .string(contentType),
                                              "body": .string(String(decoding: body, as: UTF8.self))])))
                context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            done.finish(.failure(error))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.finish(.failure(ChannelError.ioOnClosedChannel))
        }
    }

    enum JoinFetchError: Error, CustomStringConvertible {
        case tooLarge
        var description: String { "the join payload is larger than \(JoinFetch.maxBytes) bytes" }
    }
}
