// Single-precision matrix products for the layers: the BLAS (run single-threaded inside
// TBB tasks), hubel's own kernels for the shapes the BLAS runs slowly (gemm_kernels.hpp:
// a small side against a long one), and a naive reference kernel the tests compare both with.
#pragma once

#include <cstdint>

namespace hubel::layers {

// Row-major C[M,N] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T.
// lda, ldb, ldc are the row strides of A, B and C as stored. Which kernel runs is decided
// by the shapes alone (kernel_takes), so equal shapes give bitwise-equal results.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same contract, three loops, for tests.
void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace hubel::layers
