import Foundation
@testable import GoFetchEvents
@testable import GoFetchIngest
@testable import GoFetchPredict
import Testing

/// An open event of `file` by `pid` at `time` ns.
func openEvent(_ file: FileID, pid: UInt32 = 1, worker: Int32? = nil, epoch: UInt32? = nil, time: UInt64 = 0, size: UInt64 = 100_000) -> TraceEvent {
    TraceEvent(fileID: file, kind: .open, pid: pid, tid: pid, uid: 0, workerID: worker, epoch: epoch,
               wallNanoseconds: Int64(truncatingIfNeeded: time), monotonicNanoseconds: time, offset: 0, length: size, durationNanoseconds: 1)
}

func readEvent(_ file: FileID, pid: UInt32 = 1, offset: UInt64, length: UInt64, time: UInt64, duration: UInt32 = 1) -> TraceEvent {
    TraceEvent(fileID: file, kind: .read, pid: pid, tid: pid, uid: 0, wallNanoseconds: Int64(truncatingIfNeeded: time),
               monotonicNanoseconds: time, offset: offset, length: length, durationNanoseconds: duration)
}

/// Online top-1 accuracy: each open is predicted before the predictor learns it.
func onlineAccuracy(_ predictor: some Predictor, _ files: [FileID], pid: UInt32 = 1) -> Double {
    var hits = 0, last: TraceEvent?
    for file in files {
        if let last, predictor.predict(after: last, limit: 1).first?.fileID == file { hits += 1 }
        let event = openEvent(file, pid: pid)
        predictor.observe(event)
        last = event
    }
    return Double(hits) / Double(files.count)
}

@Suite("predictors")
struct PredictorTests {
    @Test("Markov predicts a repeated order with accuracy near 1 after one epoch")
    func markovRepeatedOrder() {
        let markov = MarkovPredictor()
        var generator = SplitMix64(seed: 1)
        let order = Array(FileID(1)...500).shuffled(using: &generator)
        _ = onlineAccuracy(markov, order)
        let second = onlineAccuracy(markov, order)
        #expect(second >= 0.99)
    }

    @Test("Markov gives no confident predictions on random permutations")
    func markovShuffled() {
        let markov = MarkovPredictor()
        var generator = SplitMix64(seed: 2)
        let files = Array(FileID(1)...500)
        for _ in 0..<3 { _ = onlineAccuracy(markov, files.shuffled(using: &generator)) }
        var confident = 0, total = 0
        for file in files.shuffled(using: &generator) {
            let event = openEvent(file)
            markov.observe(event)
            for prediction in markov.predict(after: event, limit: 5) {
                total += 1
                if prediction.confidence >= 0.6 { confident += 1 }
            }
        }
        #expect(total > 0)
        #expect(Double(confident) / Double(total) < 0.05)
    }

    @Test("Markov backs off to shorter contexts and keeps streams apart")
    func markovBackOffAndStreams() {
        let markov = MarkovPredictor()
        // Learn 1 → 2 → 3 in stream A only.
        for file in [FileID(1), 2, 3] { markov.observe(openEvent(file, pid: 10)) }
        // Stream B has never seen the order-2 context (9, 1) but knows 1 → 2 by back-off.
        markov.observe(openEvent(9, pid: 20))
        markov.observe(openEvent(1, pid: 20))
        #expect(markov.predict(stream: StreamKey(pid: 20, worker: -1), limit: 1).first?.fileID == 2)
        // Interleaving does not scramble: A's next after 3 is unknown, B's is still 2.
        #expect(markov.predict(stream: StreamKey(pid: 10, worker: -1), limit: 1).isEmpty)
    }

    @Test("a Markov path moves on by one step per open, and gives what a full walk gives")
    func markovPathMovesOn() {
        // Stepped asks at every open (its path moves on); walked asks every 7th open
        // only, so its last path never starts where it is: it walks the whole path.
        let stepped = MarkovPredictor(), walked = MarkovPredictor()
        var generator = SplitMix64(seed: 5)
        let order = Array(FileID(1)...300).shuffled(using: &generator)
        let changed = Array(FileID(1)...300).shuffled(using: &generator)
        let opens = order + order + order + changed + changed
        var compared = 0, thirdEpochSteps = 0
        for (index, file) in opens.enumerated() {
            if index == 600 || index == 900 { thirdEpochSteps = stepped.pathStepsWalked - thirdEpochSteps }
            let event = openEvent(file)
            stepped.observe(event)
            walked.observe(event)
            let path = stepped.predict(stream: StreamKey(event), limit: 2, depth: 8)
            if index % 7 == 0 {
                let full = walked.predict(stream: StreamKey(event), limit: 2, depth: 8)
                #expect(path.map(\.fileID) == full.map(\.fileID), "open \(index)")
                #expect(zip(path, full).allSatisfy { abs($0.confidence - $1.confidence) < 1e-9 }, "open \(index)")
                if index >= 300 { compared += 1 }
            }
        }
        #expect(compared > 150)
        // A repeated epoch costs one step per open (the epoch's first open walks the
        // path: the order wrapped around), not the seven of a full walk.
        #expect(thirdEpochSteps <= 300 + 7)
        #expect(thirdEpochSteps >= 300)
    }

    @Test("Markov memory is bounded: contexts and successors evict the least used, counted")
    func markovBounded() {
        let markov = MarkovPredictor(options: .init(maxOrder: 3, maxContexts: 1_000, maxSuccessors: 2))
        var generator = SplitMix64(seed: 3)
        for _ in 0..<20_000 { markov.observe(openEvent(FileID(1 + generator.next() % 5_000))) }
        #expect(markov.contextCount <= 1_000)
        #expect(markov.contextsEvicted > 0)
        for _ in 0..<100 { for file in [FileID(1), FileID(2 + generator.next() % 50)] { markov.observe(openEvent(file)) } }
        #expect(markov.successorsEvicted > 0)
    }

    @Test("a saved Markov model loads against other file ids by path")
    func markovSaveLoad() throws {
        let directory = TemporaryDirectory()
        let markov = MarkovPredictor()
        let order: [FileID] = [1, 2, 3, 4, 5]
        for _ in 0..<2 { for file in order { markov.observe(openEvent(file)) } }
        try markov.save(to: directory.file("m.bin")) { "/data/\($0)" }
        let loaded = MarkovPredictor()
        // The other store numbers the same files from 100.
        let result = try loaded.load(from: directory.file("m.bin")) { path in FileID(path.split(separator: "/").last!)! + 100 }
        #expect(result.contexts == markov.contextCount)
        loaded.observe(openEvent(103))
        #expect(loaded.predict(stream: StreamKey(pid: 1, worker: -1), limit: 1).first?.fileID == 104)
        #expect(throws: ModelFileError.self) { try loaded.load(from: directory.file("missing")) { _ in nil } }
        _ = FileManager.default.createFile(atPath: directory.file("junk"), contents: Data("GFMKjunk".utf8))
        #expect(throws: ModelFileError.self) { try loaded.load(from: directory.file("junk")) { _ in nil } }
    }

    @Test("the pattern detector finds sequential, strided, batch, epoch-restart and model-load readers")
    func patterns() {
        let detector = PatternDetector(pathOf: { $0 == 5 ? "/ckpt/model.pt" : "/data/shard.tar" })
        let size: UInt64 = 64 << 20
        for file in FileID(1)...5 { detector.observe(openEvent(file, size: size)) }
        var time: UInt64 = 0
        func read(_ file: FileID, _ offset: UInt64, _ length: UInt64 = 4096) {
            time += 1_000_000
            detector.observe(readEvent(file, offset: offset, length: length, time: time))
        }
        // 1: sequential
        for i in 0..<6 { read(1, UInt64(i) * 4096) }
        #expect(detector.pattern(file: 1, pid: 1)?.0 == .sequential)
        let next = detector.predict(file: 1, pid: 1, limit: 4)
        let sequentialNext: UInt64 = 6 * 4096
        #expect(next.first?.offset == sequentialNext)
        #expect(next.first.map { $0.length >= 256 << 10 } == true)
        #expect(detector.predict(file: 1, pid: 1, limit: 4).isEmpty)  // already ahead: no refill yet
        // 2: strided by 3 records
        for i in 0..<6 { read(2, UInt64(i) * 3 * 4096) }
        let strided = detector.pattern(file: 2, pid: 1)
        #expect(strided?.0 == .strided)
        #expect(strided?.stride == Int64(3 * 4096))
        let stride: UInt64 = 3 * 4096
        let stridedOffsets = detector.predict(file: 2, pid: 1, limit: 2).map(\.offset)
        #expect(stridedOffsets == [6 * stride, 7 * stride])
        // 3: a batch of records read out of order inside a moving window
        for offset in [2, 0, 3, 1, 6, 4, 7, 5].map({ UInt64($0) * 4096 }) { read(3, offset) }
        #expect(detector.pattern(file: 3, pid: 1)?.0 == .batch)
        // 4: read through to the end, then back to the start
        for i in 0..<64 { read(4, UInt64(i) << 20, 1 << 20) }
        read(4, 0)
        #expect(detector.pattern(file: 4, pid: 1)?.0 == .epoch)
        // 5: a checkpoint read sequentially
        for i in 0..<4 { read(5, UInt64(i) << 20, 1 << 20) }
        #expect(detector.pattern(file: 5, pid: 1)?.0 == .model)
        // A random reader is not predicted.
        detector.observe(openEvent(6, size: size))
        for offset in [9, 1, 40, 3, 27, 14].map({ UInt64($0) << 20 }) { read(6, offset) }
        #expect(detector.pattern(file: 6, pid: 1)?.0 == .random)
        #expect(detector.predict(file: 6, pid: 1, limit: 4).isEmpty)
    }

    @Test("the remaining set detects epoch restart and predicts each unread file once")
    func remainingSet() {
        let remaining = EpochRemainingSet()
        var generator = SplitMix64(seed: 4)
        let files = Array(FileID(1)...200)
        for file in files.shuffled(using: &generator) { remaining.observe(openEvent(file)) }
        #expect(remaining.epochsCompleted == 0)
        let second = files.shuffled(using: &generator)
        for file in second.prefix(3) { remaining.observe(openEvent(file)) }
        #expect(remaining.epochsCompleted == 1)
        #expect(remaining.remaining == 197)
        var predicted: [FileID] = []
        for file in second.dropFirst(3).prefix(50) {
            remaining.observe(openEvent(file))
            predicted += remaining.next(limit: 3).map(\.fileID)
        }
        #expect(Set(predicted).count == predicted.count)  // never twice
        #expect(Set(predicted).isDisjoint(with: Set(second.prefix(3))))  // never what was already read
        #expect(Set(predicted).isSubset(of: Set(files)))
    }

    @Test("the remaining set follows the hook's epoch tags")
    func remainingSetTags() {
        let remaining = EpochRemainingSet()
        for file in FileID(1)...10 { remaining.observe(openEvent(file, epoch: 0)) }
        remaining.observe(openEvent(4, epoch: 1))
        #expect(remaining.epochsCompleted == 1)
        #expect(remaining.remaining == 9)
        #expect(!remaining.expects(4))
        #expect(remaining.expects(5))
    }

    @Test("epoch tags end an epoch once per job: its workers moving on together, or another job's tags interleaved, are no new boundary")
    func remainingSetTagsOfTwoJobs() {
        let remaining = EpochRemainingSet()
        func open(_ file: FileID, pid: UInt32, parent: UInt32, epoch: UInt32) -> TraceEvent {
            var event = openEvent(file, pid: pid, epoch: epoch)
            event.parentPID = parent
            return event
        }
        // Job A (workers 11, 12 of parent 10) in its epoch 3; job B (worker 21 of 20) in its epoch 7.
        for file in FileID(1)...10 {
            remaining.observe(open(file, pid: 11 + UInt32(file % 2), parent: 10, epoch: 3))
            remaining.observe(open(100 + file, pid: 21, parent: 20, epoch: 7))
        }
        #expect(remaining.epochsCompleted == 1)  // B's first tag differs from the current one: one boundary, not one per open
        // A's new workers (new pids, same parent) start its epoch 4: one more boundary, not one per worker.
        remaining.observe(open(1, pid: 13, parent: 10, epoch: 4))
        remaining.observe(open(2, pid: 14, parent: 10, epoch: 4))
        remaining.observe(open(101, pid: 21, parent: 20, epoch: 7))
        #expect(remaining.epochsCompleted == 2)
    }

    @Test("the hybrid uses Markov for a repeated order and the remaining set when shuffled")
    func hybrid() {
        var generator = SplitMix64(seed: 5)
        let files = Array(FileID(1)...300)

        let repeated = HybridPredictor(markov: MarkovPredictor(), remaining: EpochRemainingSet())
        let order = files.shuffled(using: &generator)
        for _ in 0..<2 { for file in order { _ = repeated.predict(after: { repeated.observe($0); return $0 }(openEvent(file)), limit: 3) } }
        #expect((repeated.choices[.markov] ?? 0) > 250)

        let shuffled = HybridPredictor(markov: MarkovPredictor(), remaining: EpochRemainingSet())
        var markovAfterWarmup = 0
        var remainingFiles: [Int: Set<FileID>] = [:]
        for epoch in 0..<3 {
            for (index, file) in files.shuffled(using: &generator).enumerated() {
                let event = openEvent(file)
                shuffled.observe(event)
                let predictions = shuffled.predict(after: event, limit: 3)
                if epoch > 0 && index > 50 { markovAfterWarmup += predictions.filter { $0.predictor == .markov }.count }
                remainingFiles[epoch, default: []].formUnion(predictions.filter { $0.predictor == .remainingSet }.map(\.fileID))
            }
        }
        #expect(markovAfterWarmup == 0)
        // From the second epoch on, the remaining set hands out (nearly) the whole data set.
        #expect((remainingFiles[1]?.count ?? 0) >= 290)
        #expect((remainingFiles[2]?.count ?? 0) >= 290)
        #expect((shuffled.choices[.remainingSet] ?? 0) > 0)
    }

    @Test("a sequential reader's range comes in pieces, dated by its read rate over several reads")
    func patternPieces() {
        var options = PatternDetector.Options()
        options.pieceBytes = 256 << 10
        options.lookaheadSeconds = 1
        let detector = PatternDetector(options: options, pathOf: { _ in "/data/shard.tar" })
        detector.observe(openEvent(1, size: 64 << 20))
        // 64 KiB reads, one in four waiting 50 ms on storage, the others cached 0.1 ms
        // apart: 448 KiB over the last 8 reads' 50.6 ms, 8.6 MiB/s (one cached read to
        // the next alone says 625 MiB/s).
        var time: UInt64 = 0
        for i in 0..<16 {
            time += i % 4 == 0 ? 50_000_000 : 100_000
            detector.observe(readEvent(1, offset: UInt64(i) << 16, length: 64 << 10, time: time))
        }
        let pieces = detector.predict(file: 1, pid: 1, limit: 2)
        // One second of the rate ahead, in pieces: `limit` counts strides, not pieces.
        #expect(pieces.count == 35)
        #expect(pieces.first?.offset == 16 << 16)
        #expect(pieces.allSatisfy { $0.length <= 256 << 10 && $0.predictor == .pattern })
        #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.offset + $0.length == $1.offset && $0.deadline! < $1.deadline! })
        // The last piece is due about a second after the last read, at the reader's rate.
        let due = Double(pieces.last!.deadline! - time) / 1e9
        #expect(due > 0.9 && due < 1.0)
    }

    @Test("a reader that waits on cold reads is dated at the rate it uses bytes, as a reader of cached ones")
    func patternRateWithoutWaits() {
        var options = PatternDetector.Options()
        options.lookaheadSeconds = 0.5
        let detector = PatternDetector(options: options, pathOf: { _ in "/data/shard.tar" })
        detector.observe(openEvent(1, pid: 1, size: 256 << 20))
        detector.observe(openEvent(2, pid: 2, size: 256 << 20))
        // Two loader workers, each using a 64 KiB record a millisecond: worker 1's reads
        // are cached (10 µs), worker 2's go to storage (10 ms each).
        var warmTime: UInt64 = 0, coldTime: UInt64 = 0
        for i in 0..<16 {
            detector.observe(readEvent(1, pid: 1, offset: UInt64(i) << 16, length: 64 << 10, time: warmTime, duration: 10_000))
            detector.observe(readEvent(2, pid: 2, offset: UInt64(i) << 16, length: 64 << 10, time: coldTime, duration: 10_000_000))
            warmTime += 1_010_000
            coldTime += 11_000_000
        }
        let warm = detector.predict(file: 1, pid: 1, limit: 1)
        let cold = detector.predict(file: 2, pid: 2, limit: 1)
        // Both use 64 KiB a millisecond (~62 MiB/s): half a second of it ahead, 31 pieces
        // of 1 MiB each. By the reads' times alone the cold one used 5.7 MiB/s: 3 pieces,
        // each dated 11 × later, behind the warm reader's far pieces, and it stayed cold.
        #expect(warm.count == cold.count && cold.count >= 30)
        func secondsAway(_ pieces: [Prediction], from time: UInt64) -> [Double] {
            pieces.map { Double($0.deadline! &- time) / 1e9 }
        }
        for (w, c) in zip(secondsAway(warm, from: warmTime - 1_010_000), secondsAway(cold, from: coldTime - 11_000_000)) {
            #expect(abs(w - c) < 0.02)
        }
    }

    @Test("absurd offsets, sizes, lengths and times from a client never trap")
    func hostileNumbers() {
        let detector = PatternDetector()
        detector.observe(openEvent(1, size: .max))
        let cases: [(UInt64, UInt64, UInt64)] = [
            (.max, 1, 1), (0, .max, 2), (3_000_000_000_000_000_000, 1 << 40, 3), (6_000_000_000_000_000_000, 1 << 40, 4),
            (9_000_000_000_000_000_000, 1 << 40, .max - 1), (0, 1, .max), (1 << 61, 1 << 61, 5),
        ]
        for (offset, length, time) in cases {
            detector.observe(readEvent(1, offset: offset, length: length, time: time))
            _ = detector.predict(file: 1, pid: 1, limit: 8)
        }
        for i in 0..<8 {
            detector.observe(readEvent(1, offset: UInt64(i) << 58, length: 1 << 40, time: UInt64(i)))
            _ = detector.predict(file: 1, pid: 1, limit: 8)
        }
        let statistics = IngestStatistics()
        let pipeline = IngestPipeline(catalog: FileCatalog(capacity: 10), tableCapacity: 10, sinks: [], statistics: statistics)
        pipeline.ingest([
            AccessEvent(kind: .open, pid: 1, tid: 1, fd: 3, monotonicNanoseconds: .max, device: 1, inode: 1,
                        offset: 0, length: .max, durationNanoseconds: .max, path: "/x"),
            AccessEvent(kind: .read, pid: 1, tid: 1, fd: 3, monotonicNanoseconds: .max, device: 1, inode: 1,
                        offset: .max, length: .max, durationNanoseconds: .max),
            AccessEvent(kind: .read, pid: 1, tid: 1, fd: 3, monotonicNanoseconds: .max, device: 1, inode: 1,
                        offset: .max, length: .max, durationNanoseconds: .max),
        ], uid: 0)
        #expect(statistics.reads.value == 2)
    }

    @Test("lookahead prefetches the announced order a window ahead of the furthest file opened")
    func lookahead() {
        let predictor = LookaheadPredictor(window: 4)
        let order: [FileID] = [50, 10, 40, 20, 30, 60, 70, 80]
        for (position, file) in order.enumerated() {
            predictor.announce(TraceEvent(
                fileID: file, kind: .lookahead, flags: position == 0 ? [.announcementStart] : [], source: .pythonHook,
                pid: 7, tid: 7, uid: 0, workerID: Int32(position % 2), epoch: 0, wallNanoseconds: 0, monotonicNanoseconds: 0,
                offset: UInt64(position), length: 1_000, durationNanoseconds: 0))
        }
        #expect(predictor.next(announcer: 7).map(\.fileID) == [50, 10, 40, 20])
        // A worker (another pid) opens the second file: the window moves on, nothing twice.
        let open = openEvent(10, pid: 99)
        predictor.observe(open)
        #expect(predictor.predict(after: open, limit: 5).map(\.fileID) == [30, 60])  // positions 2…5
        let later = openEvent(20, pid: 98)
        predictor.observe(later)
        #expect(predictor.predict(after: later, limit: 5).map(\.fileID) == [70, 80])  // positions 4…7
        #expect(predictor.predict(after: later, limit: 5).isEmpty)
        #expect(!predictor.covers(999))
        // A new announcement from the same sender replaces the old list.
        predictor.announce(TraceEvent(
            fileID: 5, kind: .lookahead, flags: [.announcementStart], source: .pythonHook, pid: 7, tid: 7, uid: 0,
            epoch: 1, wallNanoseconds: 0, monotonicNanoseconds: 0, offset: 0, length: 1, durationNanoseconds: 0))
        #expect(!predictor.covers(50))
        #expect(predictor.next(announcer: 7).map(\.fileID) == [5])
    }

    @Test("lookahead lists are bounded by their entries, not only by distinct files: one file announced over and over stops at the bound, counted")
    func lookaheadBound() {
        let predictor = LookaheadPredictor(window: 4, maxFiles: 10)
        func record(_ file: FileID, position: Int, pid: UInt32 = 7) -> TraceEvent {
            TraceEvent(fileID: file, kind: .lookahead, flags: position == 0 ? [.announcementStart] : [], source: .pythonHook,
                       pid: pid, tid: pid, uid: 0, epoch: 0, wallNanoseconds: 0, monotonicNanoseconds: 0,
                       offset: UInt64(position), length: 1, durationNanoseconds: 0)
        }
        for position in 0..<100 { predictor.announce(record(1, position: position)) }
        #expect(predictor.announcedFiles == 10)
        #expect(predictor.dropped == 90)
        // A new announcement of the same sender frees its old list's entries.
        for position in 0..<5 { predictor.announce(record(FileID(100 + position), position: position)) }
        #expect(predictor.announcedFiles == 15)
        #expect(predictor.next(announcer: 7).map(\.fileID) == [100, 101, 102, 103])
        // Another sender gets what is left of the bound.
        for position in 0..<10 { predictor.announce(record(FileID(200 + position), position: position, pid: 8)) }
        #expect(predictor.announcedFiles == 20)
        #expect(predictor.dropped == 95)
    }
}
