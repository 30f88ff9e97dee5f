// GRU training throughput and inference latency, measured on this machine.
//
//   swift run -c release gofetch-bench-gru [opens-in-thousands]
//
// The trace: 8 data-loader workers, each walking its own share of 2,000 folders
// (30–52 files each) in listing order, every (1 + folder mod 3)-th file: regular
// moves over files never repeated. Training runs 3 epochs (no early stopping) with
// the default sizes (hidden 64, 63 moves, 4,096 hashed file rows), once with
// OpenBLAS (one thread, then two) and once with plain Swift loops, and prints
// events/s for each. Then the trained model predicts live: each open is observed
// (one GRU step) and predicted (top-5, and a 8-step path); p50/p99 per call.
//
//   swift run -c release gofetch-bench-gru representations
//
// instead compares input and output representations on six kinds of trace
// (docs/gru.md): online top-1 next-file accuracy on a test part, after training on
// a training part, for Markov (order 3) and GRU variants.
import Foundation
import GoFetchEvents
import GoFetchPredict
import GoFetchStore
import GoFetchSystem

if CommandLine.arguments.dropFirst().first == "representations" {
    compareRepresentations()
    exit(0)
}

let thousands = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 200 : 200
let workers = 8
let folders = 2_000

var files: [FileRecord] = []
var byFolder: [[FileID]] = []
for folder in 0..<folders {
    var listing: [FileID] = []
    for index in 0..<(30 + folder * 7 % 23) {
        let id = FileID(folder * 1_000 + index + 1)
        files.append(FileRecord(id: id, path: "/data/train/d\(folder)/img\(100_000 + index).jpg", device: 1, inode: UInt64(id), size: 100_000, firstSeenWallNanoseconds: 0))
        listing.append(id)
    }
    byFolder.append(listing)
}
var opens: [StoredOpen] = []
var cursors = (0..<workers).map { (folder: $0 * folders / workers, index: 0) }
while opens.count < thousands * 1_000 {
    for worker in 0..<workers {
        var (folder, index) = cursors[worker]
        if index >= byFolder[folder].count { (folder, index) = ((folder + 1) % folders, 0) }
        opens.append(StoredOpen(stream: StreamKey(pid: 1, worker: Int32(worker)), file: byFolder[folder][index]))
        cursors[worker] = (folder, index + 1 + folder % 3)
    }
}
let directories = DirectoryIndex(files: files)
print("trace: \(opens.count) opens by \(workers) workers over \(files.count) files in \(folders) folders")

var trained: GRUModel?
for (backend, threads) in [(MatrixBackend.blas, 1), (.blas, 2), (.swift, 1)] {
    MatrixBackend.setBLASThreads(threads)
    var options = GRUTraining.Options()
    options.epochs = 3
    options.patience = 10
    options.backend = backend
    let (model, report) = GRUTraining.train(opens: opens, directories: directories, options: options)
    let best = report.best!
    print("train \(backend.rawValue)\(backend == .blas ? " (\(threads) thread\(threads > 1 ? "s" : ""))" : ""): \(Int(report.eventsPerSecond)) events/s; \(report.epochs.count) epochs in \(Format.fixed(report.trainingSeconds, 2)) s; validation loss \(Format.fixed(best.validationLoss, 4)), accuracy \(Format.fixed(100 * best.validationAccuracy, 1)) %")
    if backend == .blas && threads == 1 { trained = model }
}
MatrixBackend.setBLASThreads(1)

func percentiles(_ latencies: inout [UInt64]) -> String {
    latencies.sort()
    func at(_ p: Double) -> String { Format.duration(nanoseconds: latencies[Int(Double(latencies.count - 1) * p)]) }
    return "p50 \(at(0.5)), p99 \(at(0.99)), p99.9 \(at(0.999)), max \(at(1.0))"
}

for backend in MatrixBackend.allCases {
    let gru = GRUPredictor(model: trained!, directories: directories, options: .init(backend: backend))
    var observe: [UInt64] = [], top5: [UInt64] = [], path8: [UInt64] = []
    var hits = 0, sink = 0
    for (number, open) in opens.prefix(200_000).enumerated() {
        let t0 = Clock.monotonicNanoseconds()
        if gru.predict(stream: open.stream, limit: 1).first?.fileID == open.file { hits += 1 }
        let t1 = Clock.monotonicNanoseconds()
        gru.observe(file: open.file, stream: open.stream)
        let t2 = Clock.monotonicNanoseconds()
        if number % 4 == 0 {
            sink &+= gru.predict(stream: open.stream, limit: 5).count
            let t3 = Clock.monotonicNanoseconds()
            sink &+= gru.predict(stream: open.stream, limit: 5, depth: 8).count
            path8.append(Clock.monotonicNanoseconds() - t3)
        }
        top5.append(t1 - t0)
        observe.append(t2 - t1)
    }
    let count = min(opens.count, 200_000)
    print("live \(backend.rawValue), \(count) opens: top-1 accuracy \(Format.fixed(100 * Double(hits) / Double(count), 1)) % (\(sink) predictions)")
    print("  observe (one GRU step):  \(percentiles(&observe))")
    print("  predict top-1:           \(percentiles(&top5))")
    print("  predict top-5 + 8-step path: \(percentiles(&path8))")

    // The same opens fed in batches of 64, as ingest hands them over.
    let batched = GRUPredictor(model: trained!, directories: directories, options: .init(backend: backend))
    let events = opens.prefix(count).map { open in
        TraceEvent(fileID: open.file, kind: .open, pid: 1, tid: 1, uid: 0, workerID: open.stream.worker, wallNanoseconds: 0, monotonicNanoseconds: 0, offset: 0, length: 0, durationNanoseconds: 0)
    }
    let start = Clock.monotonicNanoseconds()
    for first in stride(from: 0, to: events.count, by: 64) { batched.observe(events[first..<min(events.count, first + 64)]) }
    let seconds = Double(Clock.monotonicNanoseconds() - start) / 1e9
    print("  observe in batches of 64: \(Format.duration(nanoseconds: UInt64(seconds * 1e9 / Double(count)))) per open (\(Int(Double(count) / seconds)) opens/s)")
}
