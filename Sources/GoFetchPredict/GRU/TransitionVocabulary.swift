/// The GRU's output classes: the most frequent ``Transition``s of the training
/// trace, plus "other" for every move outside them. However many files a data set
/// has, the model's size depends only on this table's length.
public struct TransitionVocabulary: Sendable, Equatable {
    /// How a move into another directory names its file.
    public enum Crossing: String, Sendable, CaseIterable {
        /// By the same listing-index difference as within a directory: a job that
        /// reads the k-th file of every folder, then the (k+1)-th, moves by (+1, 0).
        case relative
        /// By the index in the new directory: a job that walks each folder from its
        /// start moves by (+1, 0) whatever the folders' sizes.
        case absolute
    }

    public let crossing: Crossing
    /// Class i is `transitions[i]`, most frequent first; class `transitions.count` is "other".
    public let transitions: [Transition]
    private let classes: [Transition: Int]

    public init(crossing: Crossing, transitions: [Transition]) {
        self.crossing = crossing
        self.transitions = transitions
        classes = Dictionary(transitions.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Output classes: the transitions and "other".
    public var classCount: Int { transitions.count + 1 }
    public var otherClass: Int { transitions.count }

    /// The `size` most frequent moves between consecutive locations, in `crossing`
    /// or, when `nil`, whichever crossing covers more of them; within 1 % of each
    /// other, the one that needs fewer distinct moves (a folder walk named by index
    /// is one move, (+1, 0), where by difference it is one per folder size). Equal
    /// counts are ordered by the move, so the table is the same on every run.
    public static func build(moves: some Sequence<(from: DirectoryIndex.Location, to: DirectoryIndex.Location)>, size: Int, crossing: Crossing? = nil) -> TransitionVocabulary {
        let candidates = crossing.map { [$0] } ?? Crossing.allCases
        var counts: [Crossing: [Transition: Int]] = [:]
        var total = 0
        for (from, to) in moves {
            total += 1
            for crossing in candidates {
                counts[crossing, default: [:]][transition(from: from, to: to, crossing: crossing), default: 0] += 1
            }
        }
        var best: (coverage: Int, distinct: Int, vocabulary: TransitionVocabulary)?
        for crossing in candidates {
            let table = counts[crossing] ?? [:]
            let ranked = table.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(size)
            let coverage = ranked.reduce(0) { $0 + $1.value }
            let better: Bool
            if let best {
                better = abs(coverage - best.coverage) * 100 > total ? coverage > best.coverage : table.count < best.distinct
            } else {
                better = true
            }
            if better { best = (coverage, table.count, TransitionVocabulary(crossing: crossing, transitions: ranked.map(\.key))) }
        }
        return best!.vocabulary
    }

    /// The move from `from` to `to`.
    public func transition(from: DirectoryIndex.Location, to: DirectoryIndex.Location) -> Transition {
        Self.transition(from: from, to: to, crossing: crossing)
    }

    /// The class of the move from `from` to `to`: its transition's, or "other"
    /// (also when either file is unknown).
    public func classOf(from: DirectoryIndex.Location?, to: DirectoryIndex.Location?) -> Int {
        guard let from, let to else { return otherClass }
        return classes[transition(from: from, to: to)] ?? otherClass
    }

    /// Where class `index` leads from `from`: a directory rank and a listing index
    /// (not checked against the listing), or `nil` for "other".
    public func destination(of index: Int, from: DirectoryIndex.Location) -> (directory: Int, index: Int)? {
        guard transitions.indices.contains(index) else { return nil }
        let move = transitions[index]
        let directory = from.directory + Int(move.directories)
        if move.directories != 0 && crossing == .absolute { return (directory, Int(move.files)) }
        return (directory, from.index + Int(move.files))
    }

    static func transition(from: DirectoryIndex.Location, to: DirectoryIndex.Location, crossing: Crossing) -> Transition {
        let directories = clamp(to.directory - from.directory)
        if directories != 0 && crossing == .absolute { return Transition(directories: directories, files: clamp(to.index)) }
        return Transition(directories: directories, files: clamp(to.index - from.index))
    }

    private static func clamp(_ value: Int) -> Int32 { Int32(clamping: value) }
}
