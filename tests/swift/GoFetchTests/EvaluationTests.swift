import Foundation
@testable import GoFetchConfig
@testable import GoFetchEvents
@testable import GoFetchPredict
@testable import GoFetchStore
import Testing

@Suite("eval")
struct EvaluationTests {
    /// `epochs` passes over `files` opens by one process, reshuffled each epoch when `shuffle`.
    func trace(files: Int, epochs: Int, shuffle: Bool, seed: UInt64) -> [TraceEvent] {
        var generator = SplitMix64(seed: seed)
        let ids = Array(FileID(1)...FileID(files))
        let fixed = ids.shuffled(using: &generator)
        var events: [TraceEvent] = []
        var time: UInt64 = 0
        for _ in 0..<epochs {
            for file in shuffle ? ids.shuffled(using: &generator) : fixed {
                time += 1_000_000
                events.append(openEvent(file, time: time))
            }
        }
        return events
    }

    func evaluate(_ events: [TraceEvent]) throws -> [String: PredictorScore] {
        let files = (1...1_000).map { FileRecord(id: FileID($0), path: "/data/\($0).jpg", device: 1, inode: UInt64($0), size: 100_000, firstSeenWallNanoseconds: 0) }
        var options = OfflineEvaluation.Options()
        options.window = 256  // a quarter of an epoch: a prediction must come true within it
        let evaluation = OfflineEvaluation(candidates: try OfflineEvaluation.standardCandidates(Configuration(), files: files), options: options)
        for event in events { evaluation.feed(event) }
        return Dictionary(uniqueKeysWithValues: evaluation.scores().map { ($0.name, $0) })
    }

    @Test("a repeated order ranks Markov first; a shuffled one ranks the remaining set above Markov")
    func ranking() throws {
        let repeated = try evaluate(trace(files: 1_000, epochs: 3, shuffle: false, seed: 1))
        let markov = repeated["markov-3"]!, remaining = repeated["remaining-set"]!, hybrid = repeated["hybrid"]!
        // Epoch 1 is unknown to every predictor; epochs 2 and 3 Markov knows exactly.
        #expect(markov.topOneAccuracy > 0.95)
        #expect(markov.coverage > 0.6)
        #expect(markov.accuracy > 0.95)
        #expect(markov.accuracy > remaining.accuracy || markov.topOneAccuracy > remaining.topOneAccuracy + 0.5)
        #expect(markov.leadAccessesP50 <= 8)  // just ahead, not an epoch ahead
        #expect(hybrid.coverage > 0.6)

        let shuffled = try evaluate(trace(files: 1_000, epochs: 3, shuffle: true, seed: 2))
        let markovShuffled = shuffled["markov-3"]!, remainingShuffled = shuffled["remaining-set"]!
        // Markov's confident guesses are transitions of the last epoch: never the next file, and
        // (within a long window) only by chance one still unread; the remaining set names unread files only.
        #expect(markovShuffled.topOneAccuracy < 0.05)
        #expect(remainingShuffled.accuracy > markovShuffled.accuracy)
        #expect(remainingShuffled.coverage > 1.5 * markovShuffled.coverage)
        #expect(shuffled["hybrid"]!.coverage >= remainingShuffled.coverage - 0.02)
        #expect(markov.accuracy > 2 * remaining.accuracy)
        print("repeated:", repeated.values.sorted { $0.name < $1.name }.map { "\($0.name) acc \($0.accuracy) cov \($0.coverage) top1 \($0.topOneAccuracy)" })
        print("shuffled:", shuffled.values.sorted { $0.name < $1.name }.map { "\($0.name) acc \($0.accuracy) cov \($0.coverage) top1 \($0.topOneAccuracy)" })
        // Every score is computed online: nothing is scored before it could have been predicted.
        #expect(markov.accesses == 3_000 && markovShuffled.accesses == 3_000)
    }

    @Test("eval replays a trace store and loads a model trained on another trace first")
    func replayFromStore() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("t.db"))
        let run = try store.beginRun(command: "test", source: "test")
        let files = (1...50).map { FileRecord(id: FileID($0), path: "/data/\($0).jpg", device: 1, inode: UInt64($0), size: 100_000, firstSeenWallNanoseconds: 0) }
        let events = trace(files: 50, epochs: 1, shuffle: false, seed: 3)
        try store.write(files: files, events: events[...], runID: run)
        #expect(try store.eventCount(kinds: [.open]) == 50)
        var replayed: [FileID] = []
        try store.replay { replayed.append($0.fileID); return true }
        #expect(replayed == events.map(\.fileID))

        // A model trained on the same order (another store) makes the first pass predictable.
        let markov = MarkovPredictor()
        for event in events { markov.observe(event) }
        let model = directory.file("markov.gfmk")
        try markov.save(to: model) { "/data/\($0).jpg" }
        let evaluation = OfflineEvaluation(candidates: try OfflineEvaluation.standardCandidates(Configuration(), files: files, markovModel: model))
        try store.replay { evaluation.feed($0); return true }
        let score = evaluation.scores().first { $0.name == "markov-3" }!
        #expect(score.topOneAccuracy > 0.9)
        #expect(score.coverage > 0.9)
    }
}

@Suite("eval with the GRU")
struct GRUEvaluationTests {
    func scores(_ order: [FileID], passes: Int, model: String) throws -> [String: PredictorScore] {
        let evaluation = OfflineEvaluation(candidates: try OfflineEvaluation.standardCandidates(
            Configuration(), files: folderDataSet(directories: 300), gruModel: model))
        var time: UInt64 = 0
        for _ in 0..<passes {
            for file in order {
                time += 1_000_000
                evaluation.feed(openEvent(file, time: time))
            }
        }
        return Dictionary(uniqueKeysWithValues: evaluation.scores().map { ($0.name, $0) })
    }

    @Test("a first strided pass over unseen folders: the GRU (trained on other folders) beats Markov; a repeated order: close to it")
    func gruAgainstMarkov() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("gru.safetensors")
        try stridedTraining.model.save(to: path)

        let unseen = try scores(stridedPass(150..<300), passes: 1, model: path)
        let gru = unseen["gru"]!, markov = unseen["markov-3"]!
        print("strided first pass: gru top-1 \(gru.topOneAccuracy) coverage \(gru.coverage); markov top-1 \(markov.topOneAccuracy) coverage \(markov.coverage); hybrid+gru coverage \(unseen["hybrid+gru"]!.coverage)")
        #expect(gru.topOneAccuracy > 0.85)
        #expect(gru.coverage > 0.85)
        #expect(markov.coverage < 0.05)
        #expect(unseen["hybrid+gru"]!.coverage > 0.8)  // the hybrid switches to the GRU where it measures better

        let repeated = try scores(stridedPass(0..<60), passes: 2, model: path)
        let gruRepeated = repeated["gru"]!, markovRepeated = repeated["markov-3"]!
        print("repeated: gru top-1 \(gruRepeated.topOneAccuracy) coverage \(gruRepeated.coverage); markov top-1 \(markovRepeated.topOneAccuracy) coverage \(markovRepeated.coverage)")
        #expect(gruRepeated.coverage > markovRepeated.coverage - 0.1)
    }
}
