// The BLAS product against the naive reference, for every transpose and odd sizes.
#include <gtest/gtest.h>

#include <vector>

#include "framework/random.hpp"
#include "layers/gemm.hpp"

namespace hubel::layers {

TEST(Gemm, MatchesTheReference) {
  Rng rng(1);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t m = 1 + rng.below(37), n = 1 + rng.below(29), k = 1 + rng.below(45);
    const bool ta = rng.below(2), tb = rng.below(2);
    const int64_t lda = (ta ? m : k) + rng.below(3), ldb = (tb ? k : n) + rng.below(3), ldc = n + rng.below(3);
    std::vector<float> a((ta ? k : m) * lda), b((tb ? n : k) * ldb), c(m * ldc), r;
    for (auto& v : a) v = static_cast<float>(rng.normal());
    for (auto& v : b) v = static_cast<float>(rng.normal());
    for (auto& v : c) v = static_cast<float>(rng.normal());
    r = c;
    const float alpha = trial % 3 ? 1.0f : 0.5f, beta = trial % 2 ? 0.0f : 1.0f;
    gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
    gemm_reference(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, r.data(), ldc);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) ASSERT_NEAR(c[i * ldc + j], r[i * ldc + j], 1e-4 * (1 + k)) << "trial " << trial;
  }
}

}  // namespace hubel::layers
