// The GRU predictor's matrix products through OpenBLAS (Debian's libopenblas-dev),
// a module of its own so only what predicts links OpenBLAS. Every symbol is
// prefixed `CGoFetch_`; cblas.h stays in the .c file: it pulls in OpenBLAS's
// configuration headers, which this module's users need not see.
#pragma once

/// C = alpha·op(A)·op(B) + beta·C for an m×k op(A) and a k×n op(B). The
/// corresponding C function is `cblas_sgemm`.
void CGoFetch_sgemm(int transpose_a, int transpose_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
/// y = alpha·op(A)·x + beta·y for an m×n A. The corresponding C function is `cblas_sgemv`.
void CGoFetch_sgemv(int transpose, int m, int n, float alpha, const float *a, int lda,
                    const float *x, float beta, float *y);
/// Threads OpenBLAS may use for one call. The corresponding C function is
/// `openblas_set_num_threads`.
void CGoFetch_blas_set_threads(int count);
