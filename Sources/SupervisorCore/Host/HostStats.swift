import Glibc
import NodeSupport
import OpenClawIPC

/// `node.host.stats`: the machine's resources as upstream's node host reports them, right after
/// each hello and then every 60 s (a `node.event` with `payloadJSON`). Gathered here in the
/// Supervisor from `/proc` and `statvfs`; the NetWorker only carries it.
///
/// The payload is upstream's closed object: `cpuCount` (1…4096), `loadAverage` (three numbers
/// in 0…100000, omitted when all are 0), `memoryTotalBytes` and `memoryFreeBytes` (the memory
/// *available*, clamped to the total), and the home volume's `diskTotalBytes` with
/// `diskAvailableBytes` (a pair, or neither). Sizes are integer bytes.
public enum HostStats {
    public static let event = "node.host.stats"
    public static let intervalMs = 60_000

    /// A volume's size and what is available on it, in bytes.
    public struct Disk: Equatable {
        public var total: Int64
        public var available: Int64
    }

    public struct Sample: Equatable {
        public var cpuCount: Int
        public var loadAverage: [Double]
        public var memoryTotalBytes: Int64
        public var memoryFreeBytes: Int64
        public var disk: Disk?

        /// Upstream's payload (clamped and rounded as its sampler does).
        public var payload: JSONValue {
            var object: [String: JSONValue] = [
                "cpuCount": .number(Double(min(4096, max(1, cpuCount)))),
                "memoryTotalBytes": .number(Double(max(0, memoryTotalBytes))),
                "memoryFreeBytes": .number(Double(min(max(0, memoryTotalBytes), max(0, memoryFreeBytes)))),
            ]
            let loads = loadAverage.prefix(3).map { $0.isFinite ? min(100_000, max(0, $0)) : 0 }
            if loads.count == 3, loads.contains(where: { $0 != 0 }) { object["loadAverage"] = .array(loads.map(JSONValue.number)) }
            if let disk {
                let total = max(0, disk.total)
                object["diskTotalBytes"] = .number(Double(total))
                object["diskAvailableBytes"] = .number(Double(min(total, max(0, disk.available))))
            }
            return .object(object)
        }
    }

    /// The node event carrying `sample`.
    public static func nodeEvent(_ sample: Sample) -> NodeEvent {
        NodeEvent(event: event, payloadJSON: (try? JSONText.encode(sample.payload)) ?? "{}")
    }

    /// Reads this machine now. `home`: the volume reported (its nearest existing ancestor).
    public static func sample(home: String) -> Sample {
        let memory = meminfo()
        return Sample(cpuCount: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), loadAverage: loadAverage(),
                      memoryTotalBytes: memory.total, memoryFreeBytes: memory.available, disk: disk(home))
    }

    /// `MemTotal` and `MemAvailable` (else `MemFree`), in bytes.
    static func meminfo(_ text: String? = try? String(contentsOfProcFile: "/proc/meminfo")) -> (total: Int64, available: Int64) {
        var fields: [String: Int64] = [:]
        for line in (text ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let value = Int64(parts[1]) else { continue }
            fields[String(parts[0].dropLast())] = value * 1024
        }
        return (fields["MemTotal"] ?? 0, fields["MemAvailable"] ?? fields["MemFree"] ?? 0)
    }

    static func loadAverage(_ text: String? = try? String(contentsOfProcFile: "/proc/loadavg")) -> [Double] {
        let parts = (text ?? "").split(separator: " ").prefix(3).compactMap { Double($0) }
        return parts.count == 3 ? parts : [0, 0, 0]
    }

    /// `blocks × unit`, clamped to 2^53 − 1 (upstream clamps to `MAX_SAFE_INTEGER`): a file
    /// system reporting absurd counts must not trap the Supervisor.
    static func bytes(_ blocks: UInt, _ unit: UInt) -> Int64 {
        let limit: UInt64 = 9_007_199_254_740_991
        let product = UInt64(blocks).multipliedReportingOverflow(by: UInt64(unit))
        return Int64(product.overflow ? limit : min(limit, product.partialValue))
    }

    /// Total and available bytes of the file system holding `path` (its nearest existing
    /// ancestor), or nil when none can be read.
    static func disk(_ path: String) -> Disk? {
        var candidate = path.isEmpty ? "/" : path
        while true {
            var info = statvfs()
            if statvfs(candidate, &info) == 0 {
                return Disk(total: bytes(info.f_blocks, info.f_frsize), available: bytes(info.f_bavail, info.f_frsize))
            }
            guard candidate != "/", let slash = candidate.lastIndex(of: "/") else { return nil }
            candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
        }
    }
}
