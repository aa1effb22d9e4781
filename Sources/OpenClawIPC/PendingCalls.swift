import NIOCore

/// Calls sent to another process and waiting for its answer, by id. Each call completes
/// exactly once: with the answer, at its deadline, or with the error of a fan-out (the peer
/// died, the process is shutting down). Used on one event loop only (no locks).
public final class PendingCalls<ID: Hashable, Reply> {
    public typealias Completion = (Result<Reply, WireError>) -> Void

    private struct Call {
        let completion: Completion
        let timer: Scheduled<Void>?
    }

    private let loop: EventLoop
    private var calls: [ID: Call] = [:]
    /// Ids in the order they were added (for fan-outs in a stable order).
    private var order: [ID] = []

    public init(loop: EventLoop) { self.loop = loop }

    public var count: Int { calls.count }
    public var isEmpty: Bool { calls.isEmpty }
    public func contains(_ id: ID) -> Bool { calls[id] != nil }
    /// Outstanding ids, oldest first.
    public var ids: [ID] { order }

    /// Waits for `id`'s answer; with a `deadline`, the call fails with `expired()` when it
    /// passes first. An id already waiting is refused (false): ids name one call.
    @discardableResult
    public func add(_ id: ID, deadline: TimeAmount? = nil, expired: @escaping () -> WireError = PendingCalls.timedOut,
                    completion: @escaping Completion) -> Bool {
        loop.preconditionInEventLoop()
        guard calls[id] == nil else { return false }
        let timer = deadline.map { deadline in
            loop.scheduleTask(in: deadline) { [weak self] () -> Void in
                guard let call = self?.take(id) else { return }
                call.completion(.failure(expired()))
            }
        }
        calls[id] = Call(completion: completion, timer: timer)
        order.append(id)
        return true
    }

    /// Completes `id` with `result`; false when no call is waiting under that id (answered,
    /// expired, or never asked).
    @discardableResult
    public func complete(_ id: ID, with result: Result<Reply, WireError>) -> Bool {
        guard let call = take(id) else { return false }
        call.completion(result)
        return true
    }

    /// Fails every waiting call (or those `matching`) with `error`, oldest first.
    public func failAll(_ error: WireError, matching: (ID) -> Bool = { _ in true }) {
        for id in order where matching(id) {
            take(id)?.completion(.failure(error))
        }
    }

    private func take(_ id: ID) -> Call? {
        guard let call = calls.removeValue(forKey: id) else { return nil }
        order.removeAll { $0 == id }
        call.timer?.cancel()
        return call
    }

    public static func timedOut() -> WireError { WireError(code: "TIMEOUT", message: "no answer in time") }
}
