// BLAS binding. The CBLAS prototype is declared here (its enums are ints in the ABI), so
// hubel builds against any CBLAS without depending on where a distribution puts cblas.h.
#include "layers/gemm.hpp"

#include "layers/gemm_kernels.hpp"

extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                            int lda, const float* b, int ldb, float beta, float* c, int ldc);
// OpenBLAS's thread control, when the BLAS is OpenBLAS (weak: other BLAS lack it).
extern "C" __attribute__((weak)) void openblas_set_num_threads(int);

namespace hubel::layers {

namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  // Threads belong to TBB: every BLAS call runs on the calling task's thread only.
  static const bool single = [] {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  if (kernel_takes(trans_a, trans_b, m, n, k)) {
    if (trans_b) return kernel_gemm_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    const int64_t main = n - n % kernel_panel();
    kernel_gemm_nn(trans_a, m, main, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (main == n) return;
    b += main, c += main, n -= main;  // the last columns, fewer than a panel
  }
  cblas_sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        s += static_cast<double>(av) * bv;
      }
      c[i * ldc + j] = static_cast<float>(alpha * s + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
}

}  // namespace hubel::layers
