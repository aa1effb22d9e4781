import Glibc

/// The two clocks every process reads: monotonic milliseconds for deadlines, and wall-clock
/// time as the ISO 8601 UTC text used in logs and console entries.
public enum Clock {
    /// Milliseconds on `CLOCK_MONOTONIC` (deadlines, durations).
    public static func monotonicMs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }

    /// Milliseconds since the epoch, now.
    public static func wallMs() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) * 1000 + Double(now.tv_nsec / 1_000_000)
    }

    /// `2026-11-25T22:57:40.123Z` for `ms` since the epoch.
    /// `ms` outside JavaScript's date range (±8.64e15, NaN) is clamped: it may come from another process.
    public static func isoTimestamp(ms rawMs: Double) -> String {
        let ms = rawMs.isNaN ? 0 : min(max(rawMs, -8.64e15), 8.64e15)
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let millis = Int32(ms.truncatingRemainder(dividingBy: 1000))
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}
