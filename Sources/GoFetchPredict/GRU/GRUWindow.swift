import Foundation

/// One training batch: `lanes` stretches of the trace side by side, `length` steps
/// each, run forward and then backward through time (truncated at the window's
/// start; the state itself carries on into the next window).
///
/// Rows are time-major (row t·lanes + lane), so each step's batch is contiguous
/// and the input-side and output-side products run over the whole window at once.
final class GRUWindow {
    /// Loss and top-1 hits over the steps that had a target.
    struct Score: Sendable {
        var loss = 0.0
        var targets = 0
        var hits = 0

        mutating func add(_ other: Score) {
            loss += other.loss
            targets += other.targets
            hits += other.hits
        }

        var meanLoss: Double { targets == 0 ? 0 : loss / Double(targets) }
        var accuracy: Double { targets == 0 ? 0 : Double(hits) / Double(targets) }
    }

    let lanes: Int
    let length: Int
    var rows: Int { lanes * length }
    /// Each row's input, target class (-1: none) and whether the state before it is zero
    /// (a stream's first open, a lane's start, padding).
    var inputs: [GRUInput]
    var targets: [Int32]
    var resets: [Bool]
    /// The lanes' states entering the window; after ``forward(_:)``, leaving it.
    let carried: UnsafeMutablePointer<Float>

    private let layout: GRUModel.Layout
    private let sizes: GRUModel.Hyperparameters
    private let classes: Int
    private let otherClass: Int
    private let cell: GRUCell
    private let output: GRUOutputLayer
    private let buffers: FloatBuffers
    private let x, gx, gh, r, z, n, hPrevious, hOut, probabilities: UnsafeMutablePointer<Float>
    private let dLogits, dhOut, dh, dhNext, dgx, dgh, dx: UnsafeMutablePointer<Float>

    init(model: GRUModel, lanes: Int, length: Int, backend: MatrixBackend) {
        self.lanes = lanes
        self.length = length
        layout = model.layout
        sizes = model.hyperparameters
        classes = model.classCount
        otherClass = model.vocabulary.otherClass
        cell = GRUCell(hidden: sizes.hidden, backend: backend)
        output = GRUOutputLayer(hidden: sizes.hidden, classes: classes, backend: backend)
        let rows = lanes * length, hidden = sizes.hidden, gates = 3 * hidden, width = sizes.inputWidth
        inputs = Array(repeating: GRUInput(file: 0, transition: 0, remaining: 0, index: 0), count: rows)
        targets = Array(repeating: -1, count: rows)
        resets = Array(repeating: true, count: rows)
        let buffers = FloatBuffers()
        self.buffers = buffers
        carried = buffers.make(lanes * hidden)
        x = buffers.make(rows * width)
        gx = buffers.make(rows * gates)
        gh = buffers.make(rows * gates)
        r = buffers.make(rows * hidden)
        z = buffers.make(rows * hidden)
        n = buffers.make(rows * hidden)
        hPrevious = buffers.make(rows * hidden)
        hOut = buffers.make(rows * hidden)
        probabilities = buffers.make(rows * classes)
        dLogits = buffers.make(rows * classes)
        dhOut = buffers.make(rows * hidden)
        dh = buffers.make(lanes * hidden)
        dhNext = buffers.make(lanes * hidden)
        dgx = buffers.make(rows * gates)
        dgh = buffers.make(rows * gates)
        dx = buffers.make(rows * width)
    }

    /// Zeroes the carried states (a new pass over the lanes).
    func resetState() { carried.update(repeating: 0, count: lanes * sizes.hidden) }

    /// Runs the window forward from ``carried`` and scores it.
    func forward(_ parameters: UnsafePointer<Float>) -> Score {
        let hidden = sizes.hidden, gates = 3 * hidden, width = sizes.inputWidth
        for row in 0..<rows { layout.gather(inputs[row], from: parameters, into: x + row * width) }
        cell.inputGates(rows: rows, input: width, x: x, weight: parameters + layout.inputWeight.offset, bias: parameters + layout.inputBias.offset, gx: gx)
        for step in 0..<length {
            let base = step * lanes
            for lane in 0..<lanes {
                let destination = hPrevious + (base + lane) * hidden
                if resets[base + lane] {
                    destination.update(repeating: 0, count: hidden)
                } else {
                    destination.update(from: step == 0 ? carried + lane * hidden : hOut + (base - lanes + lane) * hidden, count: hidden)
                }
            }
            cell.forward(
                batch: lanes, gx: gx + base * gates, hPrevious: hPrevious + base * hidden,
                weight: parameters + layout.hiddenWeight.offset, bias: parameters + layout.hiddenBias.offset,
                gh: gh + base * gates, r: r + base * hidden, z: z + base * hidden, n: n + base * hidden, h: hOut + base * hidden)
        }
        carried.update(from: hOut + (rows - lanes) * hidden, count: lanes * hidden)
        output.forward(rows: rows, h: hOut, weight: parameters + layout.outputWeight.offset, bias: parameters + layout.outputBias.offset, probabilities: probabilities)

        var score = Score()
        for row in 0..<rows where targets[row] >= 0 {
            let target = Int(targets[row]), p = probabilities + row * classes
            score.loss -= log(Double(max(p[target], Float.leastNormalMagnitude)))
            score.targets += 1
            if target != otherClass && GRUOutputLayer.best(p, count: classes, excluding: otherClass) == target { score.hits += 1 }
        }
        return score
    }

    /// Adds the gradients of the mean loss of the last ``forward(_:)`` to `gradients`
    /// (laid out as the parameters).
    func backward(_ parameters: UnsafePointer<Float>, into gradients: UnsafeMutablePointer<Float>) {
        let count = targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }
        guard count > 0 else { return }
        let hidden = sizes.hidden, gates = 3 * hidden, width = sizes.inputWidth
        let backend = cell.backend
        let scale = 1 / Float(count)
        // Softmax with cross-entropy: dlogits = (p − onehot(target)) / count.
        for row in 0..<rows {
            let d = dLogits + row * classes
            if targets[row] < 0 {
                d.update(repeating: 0, count: classes)
                continue
            }
            for j in 0..<classes { d[j] = probabilities[row * classes + j] * scale }
            d[Int(targets[row])] -= scale
        }
        backend.gemm(transposeA: true, m: classes, n: hidden, k: rows, dLogits, lda: classes, hOut, ldb: hidden, beta: 1, gradients + layout.outputWeight.offset, ldc: hidden)
        Self.addColumnSums(rows: rows, columns: classes, dLogits, into: gradients + layout.outputBias.offset)
        backend.gemm(m: rows, n: hidden, k: classes, dLogits, lda: classes, parameters + layout.outputWeight.offset, ldb: hidden, beta: 0, dhOut, ldc: hidden)

        dhNext.update(repeating: 0, count: lanes * hidden)
        for step in stride(from: length - 1, through: 0, by: -1) {
            let base = step * lanes
            for i in 0..<lanes * hidden { dh[i] = dhOut[base * hidden + i] + dhNext[i] }
            cell.backward(
                batch: lanes, dh: dh, hPrevious: hPrevious + base * hidden, gh: gh + base * gates,
                r: r + base * hidden, z: z + base * hidden, n: n + base * hidden, weight: parameters + layout.hiddenWeight.offset,
                dgx: dgx + base * gates, dgh: dgh + base * gates, dhPrevious: dhNext)
            // A reset state was a constant zero: nothing flows back past it.
            for lane in 0..<lanes where resets[base + lane] { (dhNext + lane * hidden).update(repeating: 0, count: hidden) }
        }
        backend.gemm(transposeA: true, m: gates, n: hidden, k: rows, dgh, lda: gates, hPrevious, ldb: hidden, beta: 1, gradients + layout.hiddenWeight.offset, ldc: hidden)
        Self.addColumnSums(rows: rows, columns: gates, dgh, into: gradients + layout.hiddenBias.offset)
        backend.gemm(transposeA: true, m: gates, n: width, k: rows, dgx, lda: gates, x, ldb: width, beta: 1, gradients + layout.inputWeight.offset, ldc: width)
        Self.addColumnSums(rows: rows, columns: gates, dgx, into: gradients + layout.inputBias.offset)

        // The embeddings: each row's slice of dx goes back to the table row it came from.
        backend.gemm(m: rows, n: width, k: gates, dgx, lda: gates, parameters + layout.inputWeight.offset, ldb: width, beta: 0, dx, ldc: width)
        for row in 0..<rows { layout.scatter(inputs[row], gradient: dx + row * width, into: gradients) }
    }

    /// The states after each row (rows × hidden), for tests.
    var states: UnsafePointer<Float> { UnsafePointer(hOut) }

    /// The class probabilities of each row (rows × classes), for tests.
    var outputs: UnsafePointer<Float> { UnsafePointer(probabilities) }

    private static func addColumnSums(rows: Int, columns: Int, _ matrix: UnsafePointer<Float>, into sums: UnsafeMutablePointer<Float>) {
        for row in 0..<rows {
            let values = matrix + row * columns
            for j in 0..<columns { sums[j] += values[j] }
        }
    }
}
