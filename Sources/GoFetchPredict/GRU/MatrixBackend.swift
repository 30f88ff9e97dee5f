import CGoFetchBLAS

/// Which code multiplies the GRU's matrices: OpenBLAS, or plain Swift loops (kept
/// to measure what BLAS buys; docs/gru.md has the figures).
///
/// Matrices are row-major `Float`s. `op(A)` is `A` or, when `transposeA` is set,
/// its transpose.
public enum MatrixBackend: String, Sendable, CaseIterable, Codable {
    /// OpenBLAS (`cblas_sgemm`, `cblas_sgemv`) through the C shim, one thread.
    case blas
    /// Plain Swift loops.
    case swift

    /// OpenBLAS starts a thread per core; the GRU's products are small, and the
    /// daemon must not take every core from the training job, so it uses one
    /// unless told otherwise.
    private static let defaultThreads: Void = CGoFetch_blas_set_threads(1)

    /// Threads OpenBLAS may use for one product (1 unless changed).
    public static func setBLASThreads(_ count: Int) {
        _ = defaultThreads
        CGoFetch_blas_set_threads(Int32(max(1, count)))
    }

    /// C = op(A)·op(B) + beta·C, with op(A) m×k and op(B) k×n.
    /// The corresponding C function is `cblas_sgemm`.
    func gemm(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        switch self {
        case .blas:
            _ = Self.defaultThreads
            CGoFetch_sgemm(
                transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), 1,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        case .swift:
            Self.scale(m: m, n: n, beta, c, ldc: ldc)
            switch (transposeA, transposeB) {
            case (false, false):
                // Row i of C gathers rows of B: the inner loop runs along contiguous memory.
                for i in 0..<m {
                    for p in 0..<k { Self.axpy(n, a[i * lda + p], b + p * ldb, c + i * ldc) }
                }
            case (false, true):
                for i in 0..<m {
                    for j in 0..<n { c[i * ldc + j] += Self.dot(k, a + i * lda, b + j * ldb) }
                }
            case (true, false):
                for p in 0..<k {
                    for i in 0..<m { Self.axpy(n, a[p * lda + i], b + p * ldb, c + i * ldc) }
                }
            case (true, true):
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Float = 0
                        for p in 0..<k { sum += a[p * lda + i] * b[j * ldb + p] }
                        c[i * ldc + j] += sum
                    }
                }
            }
        }
    }

    /// y = A·x + beta·y for an m×n A (`transpose`: Aᵀ·x, y of n).
    /// The corresponding C function is `cblas_sgemv`.
    func gemv(
        transpose: Bool = false, m: Int, n: Int, _ a: UnsafePointer<Float>, lda: Int,
        _ x: UnsafePointer<Float>, beta: Float, _ y: UnsafeMutablePointer<Float>
    ) {
        switch self {
        case .blas:
            _ = Self.defaultThreads
            CGoFetch_sgemv(transpose ? 1 : 0, Int32(m), Int32(n), 1, a, Int32(lda), x, beta, y)
        case .swift:
            Self.scale(m: 1, n: transpose ? n : m, beta, y, ldc: 0)
            if transpose {
                for i in 0..<m { Self.axpy(n, x[i], a + i * lda, y) }
            } else {
                for i in 0..<m { y[i] += Self.dot(n, a + i * lda, x) }
            }
        }
    }

    private static func scale(m: Int, n: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard beta != 1 else { return }
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 {
                row.update(repeating: 0, count: n)
            } else {
                for j in 0..<n { row[j] *= beta }
            }
        }
    }

    @inline(__always)
    private static func axpy(_ count: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        guard alpha != 0 else { return }
        for j in 0..<count { y[j] += alpha * x[j] }
    }

    @inline(__always)
    private static func dot(_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        var sum: Float = 0
        for p in 0..<count { sum += x[p] * y[p] }
        return sum
    }
}
