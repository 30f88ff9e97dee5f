#include "CGoFetchBLAS.h"

#include <cblas.h>

void CGoFetch_sgemm(int transpose_a, int transpose_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void CGoFetch_sgemv(int transpose, int m, int n, float alpha, const float *a, int lda,
                    const float *x, float beta, float *y) {
    cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}

void CGoFetch_blas_set_threads(int count) {
    openblas_set_num_threads(count);
}
