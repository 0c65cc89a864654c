// The BLAS product against the naive reference, for every transpose and odd sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/random.hpp"
#include "layers/conv_products.hpp"
#include "layers/gemm.hpp"
#include "layers/gemm_kernels.hpp"

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

// The kernels of every width this build runs on this CPU (256 and, with AVX-512, 512
// bits), each test once per width; the process's own choice is restored after.
class GemmKernels : public testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    before_ = kernel_width();
    use_kernel_width(GetParam());
  }
  void TearDown() override { use_kernel_width(before_); }
  int before_ = 0;
};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GemmKernels);  // a build without vector kernels
INSTANTIATE_TEST_SUITE_P(Widths, GemmKernels, testing::ValuesIn(kernel_widths()),
                         [](const testing::TestParamInfo<int>& w) { return "bits" + std::to_string(w.param); });

// The process's width: the widest the CPU runs whole unless HUBEL_VECTOR_WIDTH says;
// other widths are refused by name.
TEST(Gemm, KernelWidthIsOneThisCpuRuns) {
  const std::vector<int> widths = kernel_widths();
  if (widths.empty()) {
    EXPECT_EQ(kernel_width(), 0);
    EXPECT_EQ(kernel_panel(), 0);
    return;
  }
  EXPECT_EQ(widths.front(), 256);  // AVX2 comes with every AVX-512 CPU
  EXPECT_NE(std::find(widths.begin(), widths.end(), kernel_width()), widths.end()) << kernel_width();
  EXPECT_EQ(kernel_panel(), kernel_width() / 16);  // two vectors of floats
  EXPECT_THROW(use_kernel_width(128), std::invalid_argument);
  if (widths.back() != 512) {
    EXPECT_THROW(use_kernel_width(512), std::invalid_argument);
  }
}

// The register-blocked kernels against the reference on the shapes they are chosen for
// (a convolution's: 6 or 16 filters, 25 or 150 taps, a few hundred columns) and on odd
// ones: row remainders of every size, dot products with tails, k longer than one pass,
// transposed A, alpha and beta; and gemm() picks them for exactly those shapes.
TEST_P(GemmKernels, MatchTheReference) {
  const int64_t panel = kernel_panel();
  ASSERT_EQ(panel, GetParam() / 16);
  Rng rng(2);
  struct Case {
    int64_t m, n, k;
  };
  // nn: C[m, n] = op(A)[m, k] B[k, n]; n a multiple of the panel.
  for (const Case& s : {Case{16, 28 * panel, 150}, Case{150, 26 * panel, 16}, Case{6, 49 * panel, 25},
                        Case{1, panel, 1}, Case{13, 3 * panel, 700}, Case{7, 2 * panel, 33},
                        // many row tiles, many panels, and both over two passes of k
                        Case{29, 5 * panel, 60}, Case{40, 9 * panel, 70}, Case{31, 8 * panel, 530}})
    for (int variant = 0; variant < 4; ++variant) {
      const bool ta = variant & 1;
      const float alpha = variant == 2 ? 0.5f : 1.0f, beta = variant & 2 ? 1.0f : 0.0f;
      const int64_t lda = (ta ? s.m : s.k) + 3, ldb = s.n + 5, ldc = s.n + 1;
      std::vector<float> a((ta ? s.k : s.m) * lda), b(s.k * ldb), c(s.m * ldc), r;
      for (auto& v : a) v = static_cast<float>(rng.normal());
      for (auto& v : b) v = static_cast<float>(rng.normal());
      for (auto& v : c) v = static_cast<float>(rng.normal());
      r = c;
      kernel_gemm_nn(ta, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
      gemm_reference(ta, false, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, r.data(), ldc);
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t j = 0; j < ldc; ++j)  // ldc: the column past n is untouched
          ASSERT_NEAR(c[i * ldc + j], r[i * ldc + j], 1e-5 * (1 + s.k))
              << s.m << "x" << s.n << "x" << s.k << " variant " << variant;
    }
  // nt: C[m, n] = A[m, k] B[n, k]^T.
  for (const Case& s : {Case{16, 150, 420}, Case{6, 25, 3136}, Case{3, 7, 1}, Case{5, 11, 67}, Case{1, 1, 2053}})
    for (int variant = 0; variant < 3; ++variant) {
      const float alpha = variant == 2 ? 0.5f : 1.0f, beta = variant ? 1.0f : 0.0f;
      const int64_t lda = s.k + 1, ldb = s.k + 2, ldc = s.n + 3;
      std::vector<float> a(s.m * lda), b(s.n * ldb), c(s.m * ldc), r;
      for (auto& v : a) v = static_cast<float>(rng.normal());
      for (auto& v : b) v = static_cast<float>(rng.normal());
      for (auto& v : c) v = static_cast<float>(rng.normal());
      r = c;
      kernel_gemm_nt(s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
      gemm_reference(false, true, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, r.data(), ldc);
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t j = 0; j < ldc; ++j)
          ASSERT_NEAR(c[i * ldc + j], r[i * ldc + j], 1e-5 * (1 + s.k))
              << s.m << "x" << s.n << "x" << s.k << " variant " << variant;
    }
  // The rule: a small side against a long one, never two transposes.
  EXPECT_TRUE(kernel_takes(false, false, 16, 28 * panel, 150));
  EXPECT_TRUE(kernel_takes(true, false, 150, 28 * panel, 16));
  EXPECT_TRUE(kernel_takes(false, true, 16, 150, 420));
  EXPECT_FALSE(kernel_takes(false, false, 64, 1024, 576));  // the CIFAR-sized layer: the BLAS
  EXPECT_FALSE(kernel_takes(true, true, 16, 150, 420));
  EXPECT_FALSE(kernel_takes(false, false, 16, panel, 150));  // too narrow to pay
}

// The convolution's products (conv_products.hpp) read the column matrix in place from the
// image (overlapping rows at tap offsets), in runs of columns, by output positions, and
// with dot products in segments (one per sample): the same numbers as the reference on
// the column matrix written out.
TEST_P(GemmKernels, ConvProductsReadTheImageInPlace) {
  const int64_t panel = kernel_panel();
  Rng rng(4);
  // A 3-channel 9x11 image, 3x3 taps: row (c, kh, kw) starts at c * 99 + kh * 11 + kw.
  const int64_t C = 3, H = 9, Wd = 11, taps = C * 9, n = 4 * panel, segs = 3, image = C * H * Wd + 2 * 11 + 2 + n;
  std::vector<int64_t> off;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t kh = 0; kh < 3; ++kh)
      for (int64_t kw = 0; kw < 3; ++kw) off.push_back(c * H * Wd + kh * Wd + kw);
  std::vector<float> img(segs * image);
  for (auto& v : img) v = static_cast<float>(rng.normal());
  std::vector<float> cols(segs * taps * n);  // [segment][tap][n]
  for (int64_t g = 0; g < segs; ++g)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t j = 0; j < n; ++j) cols[(g * taps + t) * n + j] = img[g * image + off[t] + j];
  // nn: Y[m, n] = W[m, taps] cols (segment 1's image).
  const int64_t m = 7;
  std::vector<float> w(m * taps), y(m * n), r(m * n);
  for (auto& v : w) v = static_cast<float>(rng.normal());
  weights_times_columns(m, n, taps, w.data(), taps, {img.data() + image, off.data()}, y.data(), n);
  gemm_reference(false, false, m, n, taps, 1.0f, w.data(), taps, cols.data() + taps * n, n, 0.0f, r.data(), n);
  for (int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(y[i], r[i], 1e-4) << i;
  // nn with columns in groups: each panel of columns from its own row of the image (an
  // output row of a convolution as wide as a panel), starts 11 floats apart.
  {
    const int64_t groups = 3, wide = groups * panel;
    std::vector<float> yg(m * wide), rg(m * wide), colsg(taps * wide);
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t j = 0; j < wide; ++j) colsg[t * wide + j] = img[image + off[t] + j / panel * 11 + j % panel];
    weights_times_columns(m, wide, taps, w.data(), taps, {img.data() + image, off.data(), panel, 11}, yg.data(), wide);
    gemm_reference(false, false, m, wide, taps, 1.0f, w.data(), taps, colsg.data(), wide, 0.0f, rg.data(), wide);
    for (int64_t i = 0; i < m * wide; ++i) ASSERT_NEAR(yg[i], rg[i], 1e-4) << i;
  }
  // nt: dW[m, taps] = sum over segments of dY_g[m, n] cols_g^T, dY's segments side by side.
  std::vector<float> dy(m * segs * n), dw(m * taps, 5.0f), ref(m * taps, 5.0f), dyg(m * n), part(m * taps);
  for (auto& v : dy) v = static_cast<float>(rng.normal());
  grad_times_columns_t(m, taps, n, dy.data(), segs * n, img.data(), off.data(), 1.0f, dw.data(), taps, segs, n, image);
  for (int64_t g = 0; g < segs; ++g) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) dyg[i * n + j] = dy[i * segs * n + g * n + j];
    gemm_reference(false, true, m, taps, n, 1.0f, dyg.data(), n, cols.data() + g * taps * n, n, 0.0f, part.data(),
                   taps);
    for (int64_t i = 0; i < m * taps; ++i) ref[i] += part[i];
  }
  for (int64_t i = 0; i < m * taps; ++i) ASSERT_NEAR(dw[i], ref[i], 1e-3) << i;
  // nn with A read in place: dW^T[taps, w] = cols_g dY_g^T, accumulated over segments; w
  // of one panel and of eight.
  for (const int64_t w : {panel, 8 * panel}) {
    std::vector<float> dyt(segs * n * w), dwt(taps * w, 0.0f), reft(taps * w, 0.0f), partt(taps * w);
    for (auto& v : dyt) v = static_cast<float>(rng.normal());
    for (int64_t g = 0; g < segs; ++g) {
      columns_times_grad_t(taps, w, n, img.data() + g * image, off.data(), nullptr, dyt.data() + g * n * w, w,
                           g ? 1.0f : 0.0f, dwt.data(), w);
      gemm_reference(false, false, taps, w, n, 1.0f, cols.data() + g * taps * n, n, dyt.data() + g * n * w, w, 0.0f,
                     partt.data(), w);
      for (int64_t i = 0; i < taps * w; ++i) reft[i] += partt[i];
    }
    for (int64_t i = 0; i < taps * w; ++i) ASSERT_NEAR(dwt[i], reft[i], 1e-3) << "w " << w << " at " << i;
  }
  // By output positions: Y^T[P, K] = cols^T W^T, position q at every second column of the
  // image (a map), K of one panel.
  {
    const int64_t P = n / 2, K = panel;
    std::vector<int64_t> at(P);
    for (int64_t q = 0; q < P; ++q) at[q] = 2 * q;
    std::vector<float> wt(taps * K), yt(P * K), colsp(taps * P), rt(K * P);
    for (auto& v : wt) v = static_cast<float>(rng.normal());
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t q = 0; q < P; ++q) colsp[t * P + q] = img[at[q] + off[t]];
    columns_t_times_weights_t(P, K, taps, img.data(), at.data(), off.data(), wt.data(), K, yt.data(), K);
    gemm_reference(true, false, K, P, taps, 1.0f, wt.data(), K, colsp.data(), P, 0.0f, rt.data(), P);  // Y = W cols
    for (int64_t q = 0; q < P; ++q)
      for (int64_t k = 0; k < K; ++k) ASSERT_NEAR(yt[q * K + k], rt[k * P + q], 1e-4) << q << " " << k;
  }
}

// gemm() through the kernels with a tail of columns left to the BLAS: the same numbers.
TEST_P(GemmKernels, WithABlasTail) {
  const int64_t panel = kernel_panel();
  Rng rng(3);
  const int64_t m = 16, n = 9 * panel + 5, k = 150;
  ASSERT_TRUE(kernel_takes(false, false, m, n, k));
  std::vector<float> a(m * k), b(k * n), c(m * n, 7.0f), r(m * n);
  for (auto& v : a) v = static_cast<float>(rng.normal());
  for (auto& v : b) v = static_cast<float>(rng.normal());
  gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
  gemm_reference(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, r.data(), n);
  for (int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(c[i], r[i], 1e-4) << i;
}

}  // namespace hubel::layers
