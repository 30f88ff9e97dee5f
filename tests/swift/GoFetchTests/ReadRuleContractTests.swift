import Foundation
@testable import GoFetchEvents
@testable import GoFetchStore
import Testing

/// Warm or cold is decided in two places: the live accounting (``ReadTiming``) and
/// the trace store's SQL (stats, report). Both run `tests/contracts/read-rule.json`.
@Suite("read rule contract")
struct ReadRuleContractTests {
    struct Table: Decodable {
        struct Case: Decodable {
            var base_ns: UInt64
            var warm_bytes_per_second: Double
            var bytes: UInt64
            var ns: UInt32
            var cold: Bool
        }
        var cases: [Case]
    }

    @Test("the live accounting and the store's SQL call every read of the shared table warm or cold alike")
    func sharedTable() throws {
        let table = try contractTable("read-rule.json", as: Table.self)
        #expect(table.cases.count >= 10)
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        for (index, item) in table.cases.enumerated() {
            let timing = ReadTiming(baseNanoseconds: item.base_ns, warmBytesPerSecond: item.warm_bytes_per_second)
            #expect(timing.isCold(bytes: item.bytes, nanoseconds: UInt64(item.ns)) == item.cold, "live: case \(index)")
            // One run and one file per case: the store counts that file's cold reads.
            let run = try store.beginRun(command: "case \(index)", source: "test")
            let file = FileRecord(id: FileID(index + 1), path: "/case/\(index)", device: 1, inode: UInt64(index + 1), size: 1,
                                  firstSeenWallNanoseconds: 0)
            let read = TraceEvent(fileID: file.id, kind: .read, pid: 1, tid: 1, uid: 0, wallNanoseconds: 1, monotonicNanoseconds: 1,
                                  offset: 0, length: item.bytes, durationNanoseconds: item.ns)
            try store.write(files: [file], events: [read][...], runID: run)
            let top = try store.topFiles(1, runID: run, timing: timing, order: .bytes)
            #expect(top.first?.coldReads == (item.cold ? 1 : 0), "store: case \(index)")
        }
    }
}
