import Foundation

/// Adam (Kingma and Ba, 2015) with bias correction, over one flat parameter
/// array, after clipping the gradient's global L2 norm.
struct AdamOptimizer {
    var learningRate: Float
    var beta1: Float = 0.9
    var beta2: Float = 0.999
    var epsilon: Float = 1e-8
    /// The gradient's L2 norm is scaled down to this when larger (RNNs' exploding gradients).
    var clipNorm: Float
    private var firstMoment: [Float]
    private var secondMoment: [Float]
    private var step = 0
    /// Updates whose gradient was clipped.
    private(set) var clipped = 0

    init(parameterCount: Int, learningRate: Float, clipNorm: Float) {
        self.learningRate = learningRate
        self.clipNorm = clipNorm
        firstMoment = Array(repeating: 0, count: parameterCount)
        secondMoment = Array(repeating: 0, count: parameterCount)
    }

    /// One step of `parameters` against `gradients`.
    mutating func update(_ parameters: inout [Float], gradients: [Float]) {
        precondition(parameters.count == gradients.count && parameters.count == firstMoment.count)
        var squares: Double = 0
        for g in gradients { squares += Double(g) * Double(g) }
        let norm = Float(squares.squareRoot())
        var scale: Float = 1
        if norm > clipNorm {
            scale = clipNorm / norm
            clipped += 1
        }
        step += 1
        let correction1 = 1 - pow(beta1, Float(step)), correction2 = 1 - pow(beta2, Float(step))
        let rate = learningRate * correction2.squareRoot() / correction1
        let (beta1, beta2, epsilon) = (self.beta1, self.beta2, self.epsilon)
        parameters.withUnsafeMutableBufferPointer { p in
            firstMoment.withUnsafeMutableBufferPointer { m in
                secondMoment.withUnsafeMutableBufferPointer { v in
                    gradients.withUnsafeBufferPointer { g in
                        for i in 0..<p.count {
                            let gradient = g[i] * scale
                            m[i] = beta1 * m[i] + (1 - beta1) * gradient
                            v[i] = beta2 * v[i] + (1 - beta2) * gradient * gradient
                            p[i] -= rate * m[i] / (v[i].squareRoot() + epsilon)
                        }
                    }
                }
            }
        }
    }
}
