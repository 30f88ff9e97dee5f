import Foundation
@testable import GoFetchEvents
@testable import GoFetchPredict
@testable import GoFetchStore
import Testing

/// A data set of `directories` folders of 30 to 52 files each, as the catalog
/// knows it: file k of folder d has id d·1000 + k + 1.
func folderDataSet(directories: Int) -> [FileRecord] {
    (0..<directories).flatMap { folder in
        (0..<(30 + folder * 7 % 23)).map { index in
            FileRecord(
                id: FileID(folder * 1_000 + index + 1), path: "/data/train/d\(padded(folder, 3))/img\(padded(index, 4)).jpg",
                device: 1, inode: UInt64(folder * 1_000 + index + 1), size: 100_000, firstSeenWallNanoseconds: 0)
        }
    }
}

private func padded(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// A first pass over `folders` in listing order, reading in folder d every
/// (1 + d mod 3)-th file from the first: regular moves, but every file new.
func stridedPass(_ folders: Range<Int>) -> [FileID] {
    folders.flatMap { folder in
        stride(from: 0, to: 30 + folder * 7 % 23, by: 1 + folder % 3).map { FileID(folder * 1_000 + $0 + 1) }
    }
}

/// A model trained once on the strided pass over folders 0..<150, shared by the tests.
let stridedTraining: (model: GRUModel, report: GRUTraining.Report) = {
    var options = GRUTraining.Options()
    options.hyperparameters = GRUModel.Hyperparameters(hashBuckets: 64, fileEmbedding: 4, transitionEmbedding: 8, positionEmbedding: 4, hidden: 24, transitions: 15)
    options.epochs = 12
    options.window = 16
    options.batch = 8
    options.learningRate = 0.01
    let opens = stridedPass(0..<150).map { StoredOpen(stream: StreamKey(pid: 1, worker: -1), file: $0) }
    return GRUTraining.train(opens: opens, directories: DirectoryIndex(files: folderDataSet(directories: 300)), options: options)
}()

@Suite("GRU predictor")
struct GRUTests {
    /// A small random model and a window of inputs that touch every part of it.
    static func smallWindow(backend: MatrixBackend) -> (model: GRUModel, window: GRUWindow) {
        let vocabulary = TransitionVocabulary(crossing: .absolute, transitions: [Transition(directories: 0, files: 1), Transition(directories: 0, files: 2), Transition(directories: 1, files: 0)])
        let sizes = GRUModel.Hyperparameters(hashBuckets: 5, fileEmbedding: 2, transitionEmbedding: 3, positionEmbedding: 2, hidden: 4, transitions: 3)
        let model = GRUModel(hyperparameters: sizes, vocabulary: vocabulary, seed: 7)
        let window = GRUWindow(model: model, lanes: 2, length: 5, backend: backend)
        var generator = SplitMix64(seed: 11)
        for row in 0..<window.rows {
            window.inputs[row] = GRUInput(
                file: Int32(generator.next() % 6), transition: Int32(generator.next() % 5),
                remaining: Int32(generator.next() % UInt64(GRUInput.positionBuckets)), index: Int32(generator.next() % UInt64(GRUInput.positionBuckets)))
            window.targets[row] = row == 3 ? -1 : Int32(generator.next() % 4)
            window.resets[row] = row == 6  // lane 0 restarts at step 3
        }
        for i in 0..<2 * sizes.hidden { window.carried[i] = generator.uniform(0.8) }
        return (model, window)
    }

    /// Mean loss of the window's forward pass from the given carried state.
    static func loss(_ window: GRUWindow, _ parameters: [Float], carried: [Float]) -> Double {
        window.carried.update(from: carried, count: carried.count)
        return parameters.withUnsafeBufferPointer { window.forward($0.baseAddress!).meanLoss }
    }

    @Test("backpropagation through time matches finite differences for every weight (cell, output layer, embeddings)")
    func gradientCheck() {
        let (model, window) = Self.smallWindow(backend: .blas)
        let carried = Array(UnsafeBufferPointer(start: window.carried, count: window.lanes * model.hyperparameters.hidden))
        var parameters = model.parameters
        _ = Self.loss(window, parameters, carried: carried)
        var analytic = [Float](repeating: 0, count: parameters.count)
        parameters.withUnsafeBufferPointer { p in analytic.withUnsafeMutableBufferPointer { window.backward(p.baseAddress!, into: $0.baseAddress!) } }

        // Central differences in Float: a step of 1e-2 keeps rounding noise (~1e-7 / 1e-2)
        // well under the gradients checked, and the truncation error (~step²) as small.
        let step: Float = 1e-2
        var checked = 0, worst = 0.0
        for tensor in model.tensors {
            for i in tensor.offset..<tensor.offset + tensor.count {
                let saved = parameters[i]
                parameters[i] = saved + step
                let up = Self.loss(window, parameters, carried: carried)
                parameters[i] = saved - step
                let down = Self.loss(window, parameters, carried: carried)
                parameters[i] = saved
                let numeric = (up - down) / Double(2 * step)
                let error = abs(numeric - Double(analytic[i])) / max(1e-3, abs(numeric) + abs(Double(analytic[i])))
                worst = max(worst, error)
                #expect(error < 2e-2, "\(tensor.name)[\(i - tensor.offset)]: backprop \(analytic[i]), finite difference \(numeric)")
                if abs(analytic[i]) > 1e-3 { checked += 1 }
            }
        }
        // The check means something only if most weights had a gradient to compare.
        #expect(checked > model.parameters.count / 2, "only \(checked) of \(model.parameters.count) gradients were non-zero")
        print("gradient check: \(model.parameters.count) weights, \(checked) with a gradient, worst relative error \(worst)")
    }

    @Test("the Swift fallback computes what OpenBLAS computes")
    func backendsAgree() {
        var results: [[Float]] = []
        for backend in MatrixBackend.allCases {
            let (model, window) = Self.smallWindow(backend: backend)
            var gradients = [Float](repeating: 0, count: model.parameters.count)
            model.parameters.withUnsafeBufferPointer { p in
                _ = window.forward(p.baseAddress!)
                gradients.withUnsafeMutableBufferPointer { window.backward(p.baseAddress!, into: $0.baseAddress!) }
            }
            results.append(gradients + Array(UnsafeBufferPointer(start: window.outputs, count: window.rows * model.classCount)))
        }
        let difference = zip(results[0], results[1]).map { abs($0 - $1) }.max() ?? 0
        #expect(difference < 1e-5)
    }

    @Test("live inference, one step per open or batched across streams, computes what training computes")
    func inferenceMatchesTraining() throws {
        let files = folderDataSet(directories: 4)
        let directories = DirectoryIndex(files: files)
        let sequence = stridedPass(0..<4)
        let model = GRUModel(hyperparameters: .init(hashBuckets: 16, hidden: 8, transitions: 4), vocabulary: TransitionVocabulary(crossing: .absolute, transitions: [Transition(directories: 0, files: 1), Transition(directories: 0, files: 2), Transition(directories: 1, files: 0)]), seed: 3)
        var encoded = GRUSequences()
        encoded.append(sequence[...], after: nil, directories: directories, vocabulary: model.vocabulary, hashBuckets: 16)
        let window = GRUWindow(model: model, lanes: 1, length: sequence.count, backend: .blas)
        encoded.fill(window, window: 0, laneLength: sequence.count)
        _ = model.parameters.withUnsafeBufferPointer { window.forward($0.baseAddress!) }

        let single = GRUPredictor(model: model, directories: directories)
        let batched = GRUPredictor(model: model, directories: directories, options: .init(maxBatch: 3, backend: .swift))
        let stream = StreamKey(pid: 1, worker: -1)
        var events: [TraceEvent] = []
        for (step, file) in sequence.enumerated() {
            single.observe(file: file, stream: stream)
            let live = try #require(single.probabilities(stream: stream))
            let trained = Array(UnsafeBufferPointer(start: window.outputs + step * model.classCount, count: model.classCount))
            #expect(zip(live, trained).allSatisfy { abs($0 - $1) < 1e-5 }, "step \(step)")
            // A second stream interleaved with the first, fed in batches of 5 events.
            events += [openEvent(file, pid: 1), openEvent(sequence[(step + 7) % sequence.count], pid: 2)]
        }
        for start in stride(from: 0, to: events.count, by: 5) { batched.observe(events[start..<min(events.count, start + 5)]) }
        let fromBatches = try #require(batched.probabilities(stream: stream))
        let fromSingle = try #require(single.probabilities(stream: stream))
        #expect(zip(fromBatches, fromSingle).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test("a model round-trips through safetensors, whose header is JSON with F32 tensors and metadata")
    func safetensorsRoundTrip() throws {
        let directory = TemporaryDirectory()
        let vocabulary = TransitionVocabulary(crossing: .relative, transitions: [Transition(directories: 0, files: 1), Transition(directories: -2, files: -7), Transition(directories: 0, files: -3)])
        let model = GRUModel(hyperparameters: .init(hashBuckets: 32, hidden: 6, transitions: 3), vocabulary: vocabulary, seed: 9)
        let path = directory.file("models/gru.safetensors")
        try model.save(to: path, extra: ["training": "{\"epochs\":3}"])

        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0)
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let metadata = try #require(header["__metadata__"] as? [String: String])
        #expect(metadata["format"] == "gofetch-gru")
        #expect(metadata["transitions"] == "+1,dir-2:-7,-3")
        #expect(metadata["crossing"] == "relative")
        #expect(metadata["training"] == "{\"epochs\":3}")
        let weights = try #require(header["gru.weight_hh"] as? [String: Any])
        #expect(weights["dtype"] as? String == "F32")
        #expect(weights["shape"] as? [Int] == [18, 6])
        var dataBytes = 0
        for tensor in model.tensors {
            let entry = try #require(header[tensor.name] as? [String: Any])
            let offsets = try #require(entry["data_offsets"] as? [Int])
            #expect(offsets[1] - offsets[0] == 4 * tensor.count)
            dataBytes += 4 * tensor.count
        }
        #expect(bytes.count == 8 + headerLength + dataBytes)

        let (loaded, loadedMetadata) = try GRUModel.load(from: path)
        #expect(loaded.parameters == model.parameters)
        #expect(loaded.vocabulary == vocabulary)
        #expect(loaded.hyperparameters == model.hyperparameters)
        #expect(loadedMetadata["training"] == "{\"epochs\":3}")

        // Damage is an error naming the file, not a crash.
        for damaged in [Array(bytes.prefix(20)), [UInt8](repeating: 0xFF, count: 64), Array(bytes[0..<8]) + Array(repeating: UInt8(ascii: "x"), count: headerLength)] {
            try Data(damaged).write(to: URL(fileURLWithPath: directory.file("bad")))
            #expect(throws: ModelFileError.self) { try GRUModel.load(from: directory.file("bad")) }
        }
    }

    @Test("the directory index places files by sorted listing, also files added later")
    func directoryIndex() {
        let index = DirectoryIndex(files: [
            FileRecord(id: 3, path: "/d/b/2.jpg", device: 0, inode: 0, size: 0, firstSeenWallNanoseconds: 0),
            FileRecord(id: 1, path: "/d/b/1.jpg", device: 0, inode: 0, size: 0, firstSeenWallNanoseconds: 0),
            FileRecord(id: 2, path: "/d/a/9.jpg", device: 0, inode: 0, size: 0, firstSeenWallNanoseconds: 0),
        ])
        #expect(index.location(of: 2) == .init(directory: 0, index: 0, count: 1))
        #expect(index.location(of: 3) == .init(directory: 1, index: 1, count: 2))
        index.add(id: 4, path: "/d/b/0.jpg")
        index.add(id: 5, path: "/d/a0/x.jpg")  // a new folder between a and b
        #expect(index.location(of: 3) == .init(directory: 2, index: 2, count: 3))
        #expect(index.file(directory: 2, index: 0) == 4)
        #expect(index.file(directory: 1, index: 0) == 5)
        #expect(index.file(directory: 3, index: 0) == nil)
        #expect(index.location(of: 99) == nil)
    }

    @Test("folders added one by one in any order keep their ranks in path order (ranks are searched, not renumbered)")
    func directoryRanks() {
        let index = DirectoryIndex()
        var generator = SplitMix64(seed: 5)
        var paths: [String] = []
        for i in 0..<5_000 {
            let path = "/flood/\(generator.next() % 1_000_000)/\(i).bin"
            paths.append(path)
            index.add(id: FileID(i), path: path)
        }
        let folders = Array(Set(paths.map { String($0[..<$0.lastIndex(of: "/")!]) })).sorted()
        let rank = Dictionary(uniqueKeysWithValues: folders.enumerated().map { ($1, $0) })
        for (i, path) in paths.enumerated() {
            #expect(index.location(of: FileID(i))?.directory == rank[String(path[..<path.lastIndex(of: "/")!])])
        }
        #expect(index.directoryCount == folders.count)
    }

    @Test("the vocabulary names a folder change by index when folders are walked from their start, by difference when interleaved")
    func crossing() {
        let files = folderDataSet(directories: 20)
        let index = DirectoryIndex(files: files)
        func vocabulary(_ order: [FileID]) -> TransitionVocabulary {
            let locations = order.map { index.location(of: $0)! }
            return TransitionVocabulary.build(moves: zip(locations, locations.dropFirst()).map { ($0, $1) }, size: 4)
        }
        let walked = vocabulary(files.map(\.id))
        #expect(walked.crossing == .absolute)
        #expect(walked.transitions.prefix(2) == [Transition(directories: 0, files: 1), Transition(directories: 1, files: 0)])
        let interleaved = vocabulary((0..<30).flatMap { k in (0..<20).map { FileID($0 * 1_000 + k + 1) } })
        #expect(interleaved.crossing == .relative)
        #expect(interleaved.transitions.first == Transition(directories: 1, files: 0))
    }

    @Test("trained on a strided first pass, the GRU predicts files never seen before; Markov cannot")
    func stridedFirstPass() {
        let (model, report) = stridedTraining
        print("strided training: \(report.epochs.count) epochs, best \(report.bestEpoch), validation accuracy \(report.best?.validationAccuracy ?? 0), \(Int(report.eventsPerSecond)) events/s (debug)")
        #expect(report.epochs.first!.trainingLoss > report.best!.trainingLoss)
        #expect(report.best!.validationAccuracy > 0.85)

        // Folders 150..<300: never read in training.
        let unseen = stridedPass(150..<300)
        let gru = GRUPredictor(model: model, directories: DirectoryIndex(files: folderDataSet(directories: 300)))
        let markov = MarkovPredictor(options: .init(maxOrder: 3))
        for file in stridedPass(0..<150) { markov.observe(file: file, stream: StreamKey(pid: 9, worker: -1)) }
        let gruAccuracy = onlineAccuracy(gru, unseen)
        let markovAccuracy = onlineAccuracy(markov, unseen)
        print("first pass over unseen folders: GRU \(gruAccuracy), Markov \(markovAccuracy)")
        #expect(gruAccuracy > 0.85)
        #expect(markovAccuracy < 0.05)
    }

    @Test("on a repeated order the GRU is close to Markov")
    func repeatedOrder() {
        let (model, _) = stridedTraining
        let order = stridedPass(0..<60)
        let gru = GRUPredictor(model: model, directories: DirectoryIndex(files: folderDataSet(directories: 300)))
        let markov = MarkovPredictor(options: .init(maxOrder: 3))
        _ = onlineAccuracy(gru, order)
        _ = onlineAccuracy(markov, order)
        let gruAccuracy = onlineAccuracy(gru, order)
        let markovAccuracy = onlineAccuracy(markov, order)
        print("second pass in the same order: GRU \(gruAccuracy), Markov \(markovAccuracy)")
        #expect(markovAccuracy > 0.95)
        #expect(gruAccuracy > 0.85)
        #expect(gruAccuracy > markovAccuracy - 0.1)
    }

    @Test("trained from a trace store's opens, saved and loaded, the model predicts the next folder's files")
    func fromStore() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        let run = try store.beginRun(command: "t", source: "test")
        let files = folderDataSet(directories: 40)
        // Two workers of one job, interleaved: each its own stream.
        let first = stridedPass(0..<20), second = stridedPass(20..<40)
        var events: [TraceEvent] = []
        for i in 0..<max(first.count, second.count) {
            if i < first.count { events.append(openEvent(first[i], pid: 11, worker: 0)) }
            if i < second.count { events.append(openEvent(second[i], pid: 12, worker: 1)) }
        }
        try store.write(files: files, events: events[...], runID: run)
        let opens = try store.opens()
        #expect(opens.count == events.count)
        #expect(Set(opens.map(\.stream)).count == 2)

        var options = GRUTraining.Options()
        options.hyperparameters = .init(hashBuckets: 64, hidden: 16, transitions: 8)
        options.epochs = 8
        options.window = 16
        let (model, report) = GRUTraining.train(opens: opens, directories: DirectoryIndex(files: try store.files(limit: 1_000)), options: options)
        #expect(report.streams == 2)
        #expect(report.crossing == "absolute")
        // A fixed seed gives the same weights.
        #expect(GRUTraining.train(opens: opens, directories: DirectoryIndex(files: try store.files(limit: 1_000)), options: options).model.parameters == model.parameters)
        try model.save(to: directory.file("gru.safetensors"))
        let gru = try GRUPredictor(contentsOf: directory.file("gru.safetensors"), files: try store.files(limit: 1_000))
        // The last file of folder 0 (every file read): next is the first of folder 1.
        gru.observe(openEvent(FileID(29), pid: 5))
        gru.observe(openEvent(FileID(30), pid: 5))
        #expect(gru.predict(after: openEvent(FileID(30), pid: 5), limit: 1).first?.fileID == 1_001)
    }

    @Test("predictions carry the move's probability, paths run ahead, and streams are bounded")
    func predictionsAndBounds() throws {
        let (model, _) = stridedTraining
        let directories = DirectoryIndex(files: folderDataSet(directories: 300))
        let gru = GRUPredictor(model: model, directories: directories, options: .init(maxStreams: 2))
        for file in stridedPass(200..<201).prefix(5) { gru.observe(openEvent(file, pid: 1)) }
        let stream = StreamKey(pid: 1, worker: -1)
        let probabilities = try #require(gru.probabilities(stream: stream))
        let top = gru.predict(stream: stream, limit: 3)
        #expect(top.count == 3)
        #expect(top.allSatisfy { $0.predictor == .gru })
        let bestMove = probabilities.indices.filter { $0 != model.vocabulary.otherClass }.map { probabilities[$0] }.max()!
        #expect(abs(top[0].confidence - Double(bestMove)) < 1e-6)
        // Folder 200 is read every (1 + 200 mod 3) = 3rd file: the path follows the stride.
        let path = gru.predict(stream: stream, limit: 1, depth: 4)
        #expect(path.map(\.fileID) == [200_016, 200_019, 200_022, 200_025])
        #expect(zip(path, path.dropFirst()).allSatisfy { $0.confidence >= $1.confidence })

        gru.observe(openEvent(200_001, pid: 2))
        gru.observe(openEvent(200_001, pid: 3))
        #expect(gru.streamCount == 2)
        #expect(gru.streamsEvicted == 1)
        #expect(gru.predict(stream: stream, limit: 1).isEmpty)  // the least recently used went
    }
}
