import Foundation

/// The GRU's output: class probabilities p = softmax(V h + c) for rows of states.
struct GRUOutputLayer {
    let hidden: Int
    let classes: Int
    let backend: MatrixBackend

    /// Fills `probabilities` (rows × classes) from the states `h` (rows × hidden).
    func forward(rows: Int, h: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>) {
        for row in 0..<rows { (probabilities + row * classes).update(from: bias, count: classes) }
        if rows == 1 {
            backend.gemv(m: classes, n: hidden, weight, lda: hidden, h, beta: 1, probabilities)
        } else {
            backend.gemm(transposeB: true, m: rows, n: classes, k: hidden, h, lda: hidden, weight, ldb: hidden, beta: 1, probabilities, ldc: classes)
        }
        for row in 0..<rows { Self.softmax(probabilities + row * classes, count: classes) }
    }

    /// Turns logits into probabilities in place (shifted by the largest, so exp cannot overflow).
    static func softmax(_ values: UnsafeMutablePointer<Float>, count: Int) {
        var largest = -Float.infinity
        for i in 0..<count { largest = max(largest, values[i]) }
        var sum: Float = 0
        for i in 0..<count {
            values[i] = exp(values[i] - largest)
            sum += values[i]
        }
        let scale = 1 / sum
        for i in 0..<count { values[i] *= scale }
    }

    /// The most probable class other than `excluded` ("other": it names no file).
    /// With no class but `excluded`, returns it.
    static func best(_ probabilities: UnsafePointer<Float>, count: Int, excluding excluded: Int) -> Int {
        guard count > 1 else { return excluded }
        var best = excluded == 0 ? 1 : 0
        for i in 0..<count where i != excluded && probabilities[i] > probabilities[best] { best = i }
        return best
    }
}
