import GoFetchEvents
import GoFetchPredict
import GoFetchStore


/// Online top-1 accuracy: each open is predicted before the predictor learns it.
func onlineAccuracy(_ predictor: some Predictor, _ files: [FileID]) -> Double {
    var hits = 0
    var last: TraceEvent?
    for file in files {
        if let last, predictor.predict(after: last, limit: 1).first?.fileID == file { hits += 1 }
        let event = TraceEvent(fileID: file, kind: .open, pid: 1, tid: 1, uid: 0, wallNanoseconds: 0, monotonicNanoseconds: 0, offset: 0, length: 0, durationNanoseconds: 0)
        predictor.observe(event)
        last = event
    }
    return Double(hits) / Double(max(1, files.count - 1))
}

/// Compares GRU representations on traces of 600 folders (30–52 files each), one
/// stream: each trace has a training part and a test part scored online.
func compareRepresentations() {
    let folders = 600
    var records: [FileRecord] = []
    var listing: [[FileID]] = []
    for folder in 0..<folders {
        let ids = (0..<(30 + folder * 7 % 23)).map { FileID(folder * 1_000 + $0 + 1) }
        for (index, id) in ids.enumerated() {
            records.append(FileRecord(id: id, path: "/data/train/d\(1_000 + folder)/img\(100_000 + index).jpg", device: 1, inode: UInt64(id), size: 1, firstSeenWallNanoseconds: 0))
        }
        listing.append(ids)
    }
    func strided(_ range: Range<Int>) -> [FileID] {
        range.flatMap { folder in stride(from: 0, to: listing[folder].count, by: 1 + folder % 3).map { listing[folder][$0] } }
    }
    /// The k-th file of each of 20 folders, then the (k+1)-th.
    func interleaved(_ range: Range<Int>) -> [FileID] {
        stride(from: range.lowerBound, to: range.upperBound, by: 20).flatMap { group in
            (0..<30).flatMap { k in (group..<min(group + 20, range.upperBound)).map { listing[$0][k] } }
        }
    }
    var generator = SplitMix64(seed: 1)
    /// Folder after folder in listing order, each file kept with probability 2/3
    /// (a filtered subset): small moves, but irregular ones.
    let filtered = (0..<100).flatMap { folder in listing[folder].filter { _ in generator.next() % 3 != 0 } }
    let permutation = Array(listing[0..<100].joined()).shuffled(using: &generator)
    let pool = Array(listing[0..<100].joined())
    let traces: [(name: String, training: [FileID], test: [FileID])] = [
        ("strided first pass, unseen folders", strided(0..<300), strided(300..<600)),
        ("strided, same order again", strided(0..<300), strided(0..<100)),
        ("interleaved folders, unseen", interleaved(0..<300), interleaved(300..<600)),
        ("sequential, unseen folders", listing[0..<300].flatMap { $0 }, listing[300..<600].flatMap { $0 }),
        ("filtered subset, same order again", filtered, filtered),
        ("filtered subset, trained on 3 epochs", filtered + filtered + filtered, filtered),
        ("random order, repeated", permutation, permutation),
        ("shuffled every epoch", pool.shuffled(using: &generator), pool.shuffled(using: &generator)),
    ]
    struct Variant {
        var name: String
        var change: (inout GRUTraining.Options) -> Void
    }
    let variants = [
        Variant(name: "GRU") { _ in },
        Variant(name: "no file emb.") { $0.hyperparameters.fileEmbedding = 0 },
        Variant(name: "no position") { $0.hyperparameters.positionEmbedding = 0 },
        Variant(name: "relative only") { $0.crossing = .relative },
        Variant(name: "absolute only") { $0.crossing = .absolute },
    ]
    let directories = DirectoryIndex(files: records)
    print("| trace | Markov | " + variants.map(\.name).joined(separator: " | ") + " |")
    print("|---|---:|" + String(repeating: "---:|", count: variants.count))
    for trace in traces {
        let markov = MarkovPredictor()
        _ = onlineAccuracy(markov, trace.training)
        var row = "| \(trace.name) | \(Format.fixed(100 * onlineAccuracy(markov, trace.test), 1)) |"
        for variant in variants {
            var options = GRUTraining.Options()
            options.epochs = 15
            variant.change(&options)
            let opens = trace.training.map { StoredOpen(stream: StreamKey(pid: 1, worker: -1), file: $0) }
            let (model, _) = GRUTraining.train(opens: opens, directories: directories, options: options)
            let gru = GRUPredictor(model: model, directories: directories)
            row += " \(Format.fixed(100 * onlineAccuracy(gru, trace.test), 1)) |"
        }
        print(row)
    }
}
