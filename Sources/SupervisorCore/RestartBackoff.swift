/// Delay before re-spawning a worker that died: doubles on each quick death, and returns
/// to the initial delay once a worker has stayed up for `stableAfterMs`.
public struct RestartBackoff: Equatable, Sendable {
    public let initialMs: Int
    public let maxMs: Int
    public let stableAfterMs: Int
    public private(set) var nextMs: Int

    public init(initialMs: Int = 250, maxMs: Int = 30_000, stableAfterMs: Int = 30_000) {
        self.initialMs = initialMs
        self.maxMs = maxMs
        self.stableAfterMs = stableAfterMs
        self.nextMs = initialMs
    }

    /// The delay to wait after a worker that lived `uptimeMs` died.
    public mutating func delayAfterDeath(uptimeMs: Int) -> Int {
        if uptimeMs >= stableAfterMs { nextMs = initialMs }
        let delay = nextMs
        nextMs = min(maxMs, nextMs * 2)
        return delay
    }
}
