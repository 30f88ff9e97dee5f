import GoFetchEvents

/// Streams of opens encoded for the GRU, stretch after stretch: each step's input,
/// the class of the move to the step after it (the target) and whether the state
/// before it starts from zero (a stretch's first step).
struct GRUSequences {
    var inputs: [GRUInput] = []
    var targets: [Int32] = []
    var resets: [Bool] = []

    var count: Int { inputs.count }
    /// Steps with a target (a stretch's last step has none).
    var targetCount: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
    /// Targets that are a known move, not "other".
    func knownTargets(other: Int) -> Int { targets.reduce(0) { $0 + ($1 >= 0 && Int($1) != other ? 1 : 0) } }

    /// Appends `files`, opened in this order after `previous` (`nil`: the stream's start).
    mutating func append(_ files: ArraySlice<FileID>, after previous: FileID?, directories: DirectoryIndex, vocabulary: TransitionVocabulary, hashBuckets: Int) {
        var previousFile = previous
        var previousLocation = previous.flatMap { directories.location(of: $0) }
        for (offset, file) in files.enumerated() {
            let location = directories.location(of: file)
            let from: DirectoryIndex.Location?? = previousFile == nil ? nil : .some(previousLocation)
            inputs.append(GRUInput(previous: from, current: location, pathHash: directories.pathHash(of: file), vocabulary: vocabulary, hashBuckets: hashBuckets))
            resets.append(offset == 0)
            if offset > 0 { targets[targets.count - 1] = Int32(vocabulary.classOf(from: previousLocation, to: location)) }
            targets.append(-1)
            previousFile = file
            previousLocation = location
        }
    }

    /// Loads window number `window` of `window.lanes` lanes of `laneLength` steps
    /// each into `window`. A lane's first step starts from zero; rows past the end
    /// are padding without a target.
    func fill(_ window: GRUWindow, window number: Int, laneLength: Int) {
        for step in 0..<window.length {
            let position = number * window.length + step
            for lane in 0..<window.lanes {
                let row = step * window.lanes + lane
                let index = lane * laneLength + position
                if position < laneLength && index < count {
                    window.inputs[row] = inputs[index]
                    window.targets[row] = targets[index]
                    window.resets[row] = resets[index] || position == 0
                } else {
                    window.targets[row] = -1
                    window.resets[row] = true
                }
            }
        }
    }
}
