import Foundation

/// The GRU's recurrent step for a batch of rows, forward and backward (the
/// equations are on ``GRUModel``). Gate vectors are laid out [r | z | n], 3·hidden
/// wide, as in PyTorch. Buffers are row-major, one row per batch entry; the
/// caller owns them, so the step allocates nothing.
struct GRUCell {
    let hidden: Int
    let backend: MatrixBackend

    /// gx = x·Wᵀ + b_ih for `rows` rows of width `input` (many time steps at once in training).
    func inputGates(rows: Int, input: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>) {
        let gates = 3 * hidden
        for row in 0..<rows { (gx + row * gates).update(from: bias, count: gates) }
        if rows == 1 {
            backend.gemv(m: gates, n: input, weight, lda: input, x, beta: 1, gx)
        } else {
            backend.gemm(transposeB: true, m: rows, n: gates, k: input, x, lda: input, weight, ldb: input, beta: 1, gx, ldc: gates)
        }
    }

    /// One step: gh = h_prev·Uᵀ + b_hh, then the gates r, z, n and the new state h.
    /// `gx` holds the input side (``inputGates(rows:input:x:weight:bias:gx:)``); `gh`,
    /// `r`, `z`, `n` are kept for ``backward``.
    func forward(
        batch: Int, gx: UnsafePointer<Float>, hPrevious: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        gh: UnsafeMutablePointer<Float>, r: UnsafeMutablePointer<Float>, z: UnsafeMutablePointer<Float>, n: UnsafeMutablePointer<Float>,
        h: UnsafeMutablePointer<Float>
    ) {
        let size = hidden, gates = 3 * hidden
        for row in 0..<batch { (gh + row * gates).update(from: bias, count: gates) }
        if batch == 1 {
            backend.gemv(m: gates, n: size, weight, lda: size, hPrevious, beta: 1, gh)
        } else {
            backend.gemm(transposeB: true, m: batch, n: gates, k: size, hPrevious, lda: size, weight, ldb: size, beta: 1, gh, ldc: gates)
        }
        for row in 0..<batch {
            let x = gx + row * gates, g = gh + row * gates, previous = hPrevious + row * size
            let rRow = r + row * size, zRow = z + row * size, nRow = n + row * size, hRow = h + row * size
            for j in 0..<size {
                let reset = Self.sigmoid(x[j] + g[j])
                let update = Self.sigmoid(x[size + j] + g[size + j])
                let candidate = Self.tanh(x[2 * size + j] + reset * g[2 * size + j])
                rRow[j] = reset
                zRow[j] = update
                nRow[j] = candidate
                hRow[j] = (1 - update) * candidate + update * previous[j]
            }
        }
    }

    /// Backward of one step. From dh (the loss's gradient at the new state) it writes
    /// the gradients at the gates' pre-activations, input side `dgx` and hidden side
    /// `dgh` (both 3·hidden wide), and at the previous state:
    /// dh_prev = dh ⊙ z + dgh·U.
    func backward(
        batch: Int, dh: UnsafePointer<Float>, hPrevious: UnsafePointer<Float>, gh: UnsafePointer<Float>,
        r: UnsafePointer<Float>, z: UnsafePointer<Float>, n: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        dgx: UnsafeMutablePointer<Float>, dgh: UnsafeMutablePointer<Float>, dhPrevious: UnsafeMutablePointer<Float>
    ) {
        let size = hidden, gates = 3 * hidden
        for row in 0..<batch {
            let d = dh + row * size, previous = hPrevious + row * size, g = gh + row * gates
            let rRow = r + row * size, zRow = z + row * size, nRow = n + row * size
            let dx = dgx + row * gates, dhh = dgh + row * gates, dPrevious = dhPrevious + row * size
            for j in 0..<size {
                let reset = rRow[j], update = zRow[j], candidate = nRow[j]
                let dCandidate = d[j] * (1 - update) * (1 - candidate * candidate)
                let dUpdate = d[j] * (previous[j] - candidate) * update * (1 - update)
                let dReset = dCandidate * g[2 * size + j] * reset * (1 - reset)
                dx[j] = dReset
                dx[size + j] = dUpdate
                dx[2 * size + j] = dCandidate
                dhh[j] = dReset
                dhh[size + j] = dUpdate
                dhh[2 * size + j] = dCandidate * reset
                dPrevious[j] = d[j] * update
            }
        }
        backend.gemm(m: batch, n: size, k: gates, dgh, lda: gates, weight, ldb: size, beta: 1, dhPrevious, ldc: size)
    }

    @inline(__always)
    static func sigmoid(_ value: Float) -> Float { 1 / (1 + exp(-value)) }

    /// tanh by way of one `expf` (glibc's `tanhf` goes through `expm1f` and cost a
    /// fifth of the training time); its error, a few 1e-8 near 0, is far below
    /// what training notices.
    @inline(__always)
    static func tanh(_ value: Float) -> Float { 2 / (1 + exp(-2 * value)) - 1 }
}
