import GoFetchEvents

/// One step's input to the GRU: a row of each of its four embedding tables, which
/// together describe the file just opened without naming it, so the table sizes
/// stay fixed however many files the data set has.
struct GRUInput: Hashable, Sendable {
    /// The file's path hashed into `hashBuckets` rows (row `hashBuckets`: a file the
    /// directory index does not know). Collisions are allowed: the row only lets the
    /// model tell familiar places apart.
    var file: Int32
    /// The class of the move into this file (row `classCount`: the stream's first open).
    var transition: Int32
    /// Bucket of how many files follow it in its directory: the model sees a folder's end coming.
    var remaining: Int32
    /// Bucket of its index in the directory.
    var index: Int32

    init(file: Int32, transition: Int32, remaining: Int32, index: Int32) {
        self.file = file
        self.transition = transition
        self.remaining = remaining
        self.index = index
    }

    /// The row of embedding table `table`, in the order x joins them: file,
    /// transition, remaining, index.
    subscript(table: Int) -> Int32 {
        switch table {
        case 0: file
        case 1: transition
        case 2: remaining
        default: index
        }
    }

    /// Exact for 0…7, then powers of two up to 128 and more, then one for unknown.
    static let positionBuckets = 14

    static func bucket(_ value: Int) -> Int32 {
        if value < 8 { return Int32(max(0, value)) }
        // 8–15 → 8, 16–31 → 9, 32–63 → 10, 64–127 → 11, 128+ → 12.
        return Int32(min(12, 5 + (Int.bitWidth - value.leadingZeroBitCount) - 1))
    }

    static let unknownPosition = Int32(positionBuckets - 1)

    /// The input for opening `current` after `previous` (`nil`: the stream's first open).
    init(previous: FileID?, current: FileID, directories: DirectoryIndex, vocabulary: TransitionVocabulary, hashBuckets: Int) {
        let here = directories.location(of: current)
        let before = previous.flatMap { directories.location(of: $0) }
        self.init(
            previous: previous == nil ? nil : .some(before), current: here, pathHash: directories.pathHash(of: current),
            vocabulary: vocabulary, hashBuckets: hashBuckets)
    }

    /// The input at `current` (`nil`: unknown file) reached from `previous`
    /// (`nil`: the stream's first open; `.some(nil)`: from an unknown file).
    init(previous: DirectoryIndex.Location??, current: DirectoryIndex.Location?, pathHash: UInt64?, vocabulary: TransitionVocabulary, hashBuckets: Int) {
        file = Int32(pathHash.map { Int($0 % UInt64(hashBuckets)) } ?? hashBuckets)
        switch previous {
        case .none: transition = Int32(vocabulary.classCount)
        case .some(let before): transition = Int32(vocabulary.classOf(from: before, to: current))
        }
        remaining = current.map { Self.bucket($0.remaining) } ?? Self.unknownPosition
        index = current.map { Self.bucket($0.index) } ?? Self.unknownPosition
    }
}
