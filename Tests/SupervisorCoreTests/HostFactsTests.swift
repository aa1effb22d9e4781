import Glibc
import OpenClawIPC
@testable import SupervisorCore
import XCTest

/// What the node says about its machine: the model identifier in `connect`, `node.host.stats`.
final class HostFactsTests: XCTestCase {
    func testTheModelIsTrimmedStrippedOfNULsAndCutAt64UTF16Units() {
        XCTAssertEqual(MachineModel.normalize("  Standard PC (Q35 + ICH9, 2009)\n"), "Standard PC (Q35 + ICH9, 2009)")
        XCTAssertEqual(MachineModel.normalize("Raspberry Pi 4 Model B Rev 1.4\0"), "Raspberry Pi 4 Model B Rev 1.4")
        XCTAssertNil(MachineModel.normalize(" \n\0"))
        XCTAssertEqual(MachineModel.normalize(String(repeating: "x", count: 80))?.count, 64)
        // 63 units, then a character of two units that does not fit whole.
        XCTAssertEqual(MachineModel.normalize(String(repeating: "a", count: 63) + "😀b"), String(repeating: "a", count: 63))
    }

    func testTheFirstSourceWithAModelWins() throws {
        var template = Array("/tmp/model-XXXXXX".utf8CString)
        let directory = String(cString: try XCTUnwrap(mkdtemp(&template)))
        defer { _ = rmdir(directory) }
        let empty = directory + "/empty", model = directory + "/model"
        for (path, text) in [(empty, "\n"), (model, "Board X\0")] {
            let fd = open(path, O_WRONLY | O_CREAT, 0o600)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        defer { unlink(empty); unlink(model) }
        XCTAssertEqual(MachineModel.identifier(sources: [directory + "/missing", empty, model]), "Board X")
        XCTAssertNil(MachineModel.identifier(sources: [directory + "/missing"]))
    }

    func payload(_ sample: HostStats.Sample) throws -> [String: JSONValue] {
        try XCTUnwrap(sample.payload.objectValue)
    }

    func testTheStatsPayloadFollowsUpstreamsContract() throws {
        let full = try payload(HostStats.Sample(cpuCount: 8, loadAverage: [1.25, 0, 200_000], memoryTotalBytes: 17_179_869_184,
                                                memoryFreeBytes: 4_294_967_296, disk: .init(total: 1_000_000_000_000, available: 250_000_000_000)))
        XCTAssertEqual(full, [
            "cpuCount": .number(8), "loadAverage": .array([.number(1.25), .number(0), .number(100_000)]),
            "memoryTotalBytes": .number(17_179_869_184), "memoryFreeBytes": .number(4_294_967_296),
            "diskTotalBytes": .number(1_000_000_000_000), "diskAvailableBytes": .number(250_000_000_000),
        ])
        let idle = try payload(HostStats.Sample(cpuCount: 0, loadAverage: [0, 0, 0], memoryTotalBytes: 100, memoryFreeBytes: 500, disk: nil))
        XCTAssertEqual(idle, ["cpuCount": .number(1), "memoryTotalBytes": .number(100), "memoryFreeBytes": .number(100)],
                       "no load when all zero, free clamped to total, no disk fields without a disk")
        let event = HostStats.nodeEvent(HostStats.Sample(cpuCount: 5000, loadAverage: [.nan, 1, 2], memoryTotalBytes: 1,
                                                         memoryFreeBytes: 1, disk: .init(total: 10, available: 20)))
        XCTAssertEqual(event.event, "node.host.stats")
        XCTAssertEqual(event.payloadJSON, #"{"cpuCount":4096,"diskAvailableBytes":10,"diskTotalBytes":10,"loadAverage":[0,1,2],"memoryFreeBytes":1,"memoryTotalBytes":1}"#)
    }

    func testProcFilesAreReadAsTheKernelWritesThem() {
        let meminfo = "MemTotal:        2048 kB\nMemFree:          512 kB\nMemAvailable:    1024 kB\n"
        XCTAssertTrue(HostStats.meminfo(meminfo) == (2_097_152, 1_048_576))
        XCTAssertTrue(HostStats.meminfo("MemTotal: 2048 kB\nMemFree: 512 kB\n") == (2_097_152, 524_288), "MemFree without MemAvailable")
        XCTAssertEqual(HostStats.loadAverage("0.52 0.58 0.59 1/402 12345\n"), [0.52, 0.58, 0.59])
        XCTAssertEqual(HostStats.loadAverage(nil), [0, 0, 0])
        let root = HostStats.disk("/")
        XCTAssertNotNil(root)
        XCTAssertEqual(HostStats.disk("/no/such/dir/below/root"), root, "the nearest existing ancestor")
    }

    func testAbsurdDiskCountsAreClampedNotTrapped() {
        XCTAssertEqual(HostStats.bytes(UInt.max, 4096), 9_007_199_254_740_991)
        XCTAssertEqual(HostStats.bytes(1 << 40, 1 << 20), 9_007_199_254_740_991)
        XCTAssertEqual(HostStats.bytes(1000, 4096), 4_096_000)
    }
}
