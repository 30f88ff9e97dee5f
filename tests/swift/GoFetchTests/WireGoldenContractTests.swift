import Foundation
@testable import GoFetchEvents
@testable import GoFetchSystem
import Testing

/// The wire format is written by the shim (C), the Python client and the daemon's
/// own encoder (Swift), and read by the daemon: all three run
/// `tests/contracts/wire-golden.json`.
@Suite("wire format contract")
struct WireGoldenContractTests {
    struct Table: Decodable {
        struct Message: Decodable {
            var name: String
            var source: UInt8
            var pid: UInt32
            var dropped: UInt32
            var sent_ns: UInt64
            var records: [Record]
            var hex: String
        }
        struct Record: Decodable {
            var kind: UInt8, flags: UInt8, tid: UInt32, fd: Int32, worker_id: Int32, epoch: UInt32
            var time_ns: UInt64, dev: UInt64, ino: UInt64, offset: UInt64, length: UInt64, duration_ns: UInt32
            var path_hex: String?
        }
        var messages: [Message]
    }

    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    static func event(_ record: Table.Record, source: TraceSource, pid: UInt32) throws -> AccessEvent {
        AccessEvent(
            kind: try #require(AccessKind(rawValue: record.kind)), flags: AccessFlags(rawValue: record.flags), source: source,
            pid: pid, tid: record.tid, fd: record.fd, workerID: record.worker_id < 0 ? nil : record.worker_id,
            epoch: record.epoch == WireFormat.unknownEpoch ? nil : record.epoch, monotonicNanoseconds: record.time_ns,
            device: record.dev, inode: record.ino, offset: record.offset, length: record.length,
            durationNanoseconds: record.duration_ns, path: record.path_hex.map { PathName.decode(bytes($0))! })
    }

    @Test("the daemon's encoder writes every message of the shared table byte for byte, and its decoder reads them back to the same records")
    func sharedTable() throws {
        let table = try contractTable("wire-golden.json", as: Table.self)
        #expect(table.messages.count >= 3)
        var kinds: Set<UInt8> = []
        for message in table.messages {
            let source = try #require(TraceSource(rawValue: message.source))
            let events = try message.records.map { try Self.event($0, source: source, pid: message.pid) }
            kinds.formUnion(message.records.map(\.kind))
            var encoder = WireEncoder(source: source, pid: message.pid)
            encoder.droppedTotal = message.dropped
            for event in events { encoder.append(event) }
            let golden = Self.bytes(message.hex)
            #expect(encoder.finish(sentNanoseconds: message.sent_ns) == golden, "\(message.name)")
            var decoder = WireDecoder()
            var decoded: [AccessEvent] = []
            let header = golden.withUnsafeBytes { decoder.decode($0, into: &decoded) }
            #expect(header?.droppedTotal == message.dropped && header?.recordCount == message.records.count, "\(message.name)")
            #expect(decoded == events, "\(message.name)")
            #expect(decoder.statistics.total == 0)
        }
        #expect(kinds == Set(AccessKind.allCases.map(\.rawValue)))
    }
}
