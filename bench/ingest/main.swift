// Ingest and store throughput, measured on this machine.
//
//   swift run -c release gofetch-bench-ingest [events-in-millions]
//
// 1. decode: wire messages of 250 read records decoded in memory.
// 2. socket: two sender threads → SOCK_SEQPACKET → receive thread → decode → resolve.
// 3. store: TraceStore.write in 20k-event transactions (WAL, synchronous=NORMAL).
// 4. daemon: socket → ingest → writer queue → SQLite, counted when committed.
import Foundation
import Glibc
import GoFetchConfig
import GoFetchEvents
import GoFetchIngest
import GoFetchRuntime
import GoFetchStore
import GoFetchSystem
import Logging

let millions = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 2 : 2
let total = Int(millions * 1_000_000)
let perMessage = 250
var logger = Logger(label: "bench")
logger.logLevel = .error

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = Clock.monotonicNanoseconds()
    try body()
    return Double(Clock.monotonicNanoseconds() - start) / 1e9
}

func rate(_ events: Int, _ seconds: Double) -> String {
    "\(Format.fixed(Double(events) / seconds / 1e6, 2)) M events/s (\(events) events in \(Format.fixed(seconds, 2)) s)"
}

func readMessage(pid: UInt32, base: Int) -> [UInt8] {
    var encoder = WireEncoder(pid: pid)
    for i in 0..<perMessage {
        encoder.append(AccessEvent(
            kind: .read, flags: [.positional], pid: pid, tid: pid, fd: 3, monotonicNanoseconds: UInt64(base + i),
            device: 1, inode: 1, offset: UInt64(i) * 4096, length: 4096, durationNanoseconds: 700))
    }
    return encoder.finish()
}

func openMessage(pid: UInt32) -> [UInt8] {
    var encoder = WireEncoder(pid: pid)
    encoder.append(AccessEvent(kind: .open, pid: pid, tid: pid, fd: 3, monotonicNanoseconds: 0, device: 1, inode: 1,
                               offset: 0, length: 1 << 30, durationNanoseconds: 1, path: "/data/shard-000.tar"))
    return encoder.finish()
}

// 1. Decode.
let messages = (0..<1_000).map { readMessage(pid: 7, base: $0 * perMessage) }
var decoder = WireDecoder()
var decoded: [AccessEvent] = []
decoded.reserveCapacity(perMessage)
var decodedCount = 0
let decodeTime = seconds {
    while decodedCount < total {
        for message in messages {
            decoded.removeAll(keepingCapacity: true)
            message.withUnsafeBytes { _ = decoder.decode($0, into: &decoded) }
            decodedCount += decoded.count
        }
    }
}
print("decode            \(rate(decodedCount, decodeTime))")

// 2. Socket → decode → resolve, no store.
final class CountingSink: EventSink, @unchecked Sendable {
    func consume(_ batch: EventBatch) {}
}
let directory = NSTemporaryDirectory() + "gofetch-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }

func sendAll(socketPath: String, senders: Int, events: Int) throws {
    let group = DispatchGroup()
    for sender in 0..<senders {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            let client = try! IngestClient(socketPath: socketPath)
            let pid = UInt32(1_000 + sender)
            try! client.send(openMessage(pid: pid))
            let message = readMessage(pid: pid, base: 0)
            for _ in 0..<(events / senders / perMessage) { try! client.send(message) }
            client.close()
        }
        thread.start()
    }
    group.wait()
}

do {
    let statistics = IngestStatistics()
    let pipeline = IngestPipeline(catalog: FileCatalog(capacity: 1_000), tableCapacity: 1_000, sinks: [CountingSink()], statistics: statistics)
    let server = IngestServer(socketPath: directory + "/ingest.sock", socketMode: 0o600, maxClients: 16, pipeline: pipeline, statistics: statistics, logger: logger)
    try server.start()
    let expected = (total / 2 / perMessage) * perMessage * 2 + 2
    let time = try seconds {
        try sendAll(socketPath: server.socketPath, senders: 2, events: total)
        while statistics.eventsAccepted.value < expected { usleep(500) }
    }
    server.stop()
    print("socket ingest     \(rate(statistics.eventsAccepted.value, time)), \(statistics.rejected) rejected")
}

// 3. Store writes alone.
do {
    let store = try TraceStore(path: directory + "/store.db")
    let run = try store.beginRun(command: "bench", source: "bench")
    let file = FileRecord(id: 1, path: "/data/shard-000.tar", device: 1, inode: 1, size: 1 << 30, firstSeenWallNanoseconds: 0)
    var batch = (0..<20_000).map {
        TraceEvent(fileID: 1, kind: .read, pid: 7, tid: 7, uid: 0, workerID: Int32($0 % 4), epoch: 0,
                   wallNanoseconds: Int64($0), monotonicNanoseconds: UInt64($0), offset: UInt64($0) * 4096, length: 4096,
                   durationNanoseconds: 700)
    }
    try store.write(files: [file], events: [][...], runID: run)
    var written = 0
    let time = try seconds {
        while written < total {
            try store.write(files: [], events: batch[...], runID: run)
            written += batch.count
            for i in batch.indices { batch[i].wallNanoseconds += Int64(batch.count) }  // time moves on, as in a trace
        }
    }
    print("store commit      \(rate(written, time))")
}

// 4. The whole daemon: socket → ingest → writer → SQLite.
do {
    var configuration = Configuration()
    configuration.storage.dbPath = directory + "/daemon.db"
    configuration.storage.queueCapacity = 4_000_000
    let daemon = try TraceDaemon(configuration: configuration, socketPath: directory + "/daemon.sock", command: "bench", source: "bench", logger: logger)
    try daemon.start()
    let expected = (total / 2 / perMessage) * perMessage * 2 + 2
    let time = try seconds {
        try sendAll(socketPath: daemon.server.socketPath, senders: 2, events: total)
        while daemon.storeStatistics.committedEvents.value + daemon.storeStatistics.dropped.value < expected { usleep(1_000) }
    }
    daemon.stop()
    print("daemon committed  \(rate(daemon.storeStatistics.committedEvents.value, time)), \(daemon.storeStatistics.dropped.value) dropped")
}
