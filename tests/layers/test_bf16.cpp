// The bf16 products (bf16_products.hpp) and the convolution's bf16 plan, against
// references: on values that bf16 holds exactly the only difference left is the order of
// the fp32 sums, so they must agree to 1e-5; on arbitrary values, to bf16's precision.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "framework/random.hpp"
#include "framework/trainer.hpp"
#include "layers/bf16_products.hpp"
#include "layers/conv.hpp"
#include "layers/gemm_kernels.hpp"
#include "tests/expect_error.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {
namespace {

using test::layer_from_yaml;

// Round to nearest even, as the CPU converts (normal values).
uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float round_bf16(float f) { return from_bf16(bf16_bits(f)); }
void round_all(std::span<float> v) {
  for (float& x : v) x = round_bf16(x);
}

std::vector<float> random_bf16(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  test::randomize(v, rng);
  round_all(v);
  return v;
}

// max |a - b| <= tol * max(1e-3, max |b|).
void expect_close(const char* what, std::span<const float> a, std::span<const float> b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  double err = 0, scale = 1e-3;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  EXPECT_LE(err, tol * scale) << what << ": max difference " << err << " against max magnitude " << scale;
}

// Runs f at every kernel width this CPU runs, then restores the process's width.
template <class F>
void at_every_width(F f) {
  const int before = kernel_width();
  for (const int bits : kernel_widths()) {
    SCOPED_TRACE(cat(bits, "-bit kernels"));
    use_kernel_width(bits);
    f();
  }
  if (before) use_kernel_width(before);
}

#define NEEDS_BF16() \
  if (!bf16_kernels()) GTEST_SKIP() << "this CPU or this build has no AVX512_BF16"

TEST(Bf16, ConversionRoundsToNearestEvenAndPairsLowFirst) {
  NEEDS_BF16();
  // 1 + 2^-8 is halfway between 1 (0x3f80, even) and 1 + 2^-7 (0x3f81): to 1.
  // 1 + 3 * 2^-8 is halfway between 0x3f81 (odd) and 0x3f82: to 0x3f82. 1 + 2^-8 + 2^-20
  // is past halfway: up to 0x3f81. -2.5 is exact (0xc020).
  const std::vector<float> x{1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -2.5f, 0.0f};
  const std::vector<uint16_t> want{0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xc020, 0x0000};
  // Every length through the vector part and the masked tail.
  for (size_t n = 1; n <= 40; ++n) {
    std::vector<float> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = x[i % x.size()];
    std::vector<uint16_t> out(n + 1, 0xdead);
    to_bf16(in.data(), static_cast<int64_t>(n), out.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], want[i % x.size()]) << "n " << n << " i " << i;
    EXPECT_EQ(out[n], 0xdead) << "wrote past the end, n " << n;
  }
  std::vector<uint32_t> pairs(3, 0);
  const float lo[] = {1.0f, -2.5f, 1.0f + 3 * 0x1p-8f}, hi[] = {-2.5f, 0.0f, 1.0f};
  to_bf16_pairs(lo, hi, 3, pairs.data());
  EXPECT_EQ(pairs[0], 0xc0203f80u);
  EXPECT_EQ(pairs[1], 0x0000c020u);
  EXPECT_EQ(pairs[2], 0x3f803f82u);
  to_bf16_pairs(lo, nullptr, 2, pairs.data());  // no second row: zeros
  EXPECT_EQ(pairs[0], 0x00003f80u);
  EXPECT_EQ(pairs[1], 0x0000c020u);
  EXPECT_EQ(from_bf16(0xc020), -2.5f);
}

TEST(Bf16, ProductsEqualTheReferenceOnBf16Values) {
  NEEDS_BF16();
  at_every_width([] {
    Rng rng(3);
    const int64_t panel = kernel_panel();
    // nn: C[m, n] = A B over k2 pairs, B's rows in place or through offsets; m past a row
    // tile, k2 past a pass.
    for (const auto& [m, n, k2, by_offset] :
         {std::tuple{1, 1, 1, false}, {7, 3, 5, true}, {13, 2, 300, false}, {9, 5, 600, true}, {64, 4, 72, true}}) {
      SCOPED_TRACE(cat("nn ", m, " x ", n, " panels, ", k2, " pairs"));
      const int64_t cols = n * panel, ldb = cols + 3;
      const auto a = random_bf16(m * k2 * 2, rng), b = random_bf16(k2 * ldb * 2, rng);
      std::vector<uint32_t> a2(static_cast<size_t>(m * k2)), b2(static_cast<size_t>(k2 * ldb));
      for (int64_t i = 0; i < m * k2; ++i) to_bf16_pairs(&a[2 * i], &a[2 * i + 1], 1, &a2[i]);
      // B's row p: pairs (b[2p][j], b[2p + 1][j]); stored in reverse row order when by offset.
      std::vector<int64_t> off(static_cast<size_t>(k2));
      for (int64_t p = 0; p < k2; ++p) {
        const int64_t at = by_offset ? (k2 - 1 - p) * ldb : p * ldb;
        off[static_cast<size_t>(p)] = at;
        to_bf16_pairs(&b[2 * p * ldb], &b[(2 * p + 1) * ldb], ldb, &b2[at]);
      }
      std::vector<float> c(static_cast<size_t>(m * cols), 7.0f), want(c.size());
      bf16_nn(m, cols, k2, a2.data(), k2, b2.data(), by_offset ? off.data() : nullptr, ldb, c.data(), cols);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          double s = 0;
          for (int64_t p = 0; p < 2 * k2; ++p) s += double{a[i * 2 * k2 + p]} * b[p * ldb + j];
          want[i * cols + j] = static_cast<float>(s);
        }
      expect_close("C", c, want, 1e-5);
    }
    // nt: dot products over k elements per segment, B's rows anywhere; k through the
    // vector part and the masked tail, or whole vectors only (64, 160: the tiles without a
    // tail, at both widths); beta 0 and 1.
    for (const auto& [m, n, k, segments] : {std::tuple{1, 1, 1, 1},
                                            {5, 7, 33, 1},
                                            {3, 11, 100, 3},
                                            {16, 9, 1100, 2},
                                            {4, 4, 31, 4},
                                            {6, 10, 64, 3},
                                            {9, 12, 160, 5}}) {
      SCOPED_TRACE(cat("nt ", m, " x ", n, ", ", k, " per segment, ", segments, " segments"));
      const int64_t lda = k * segments + 5, a_step = k + 1, b_step = k + 2, span = b_step * segments;
      const auto a = random_bf16(m * lda, rng), b = random_bf16(n * span + 7 * n, rng);
      std::vector<uint16_t> a16(a.size()), b16(b.size());
      to_bf16(a.data(), static_cast<int64_t>(a.size()), a16.data());
      to_bf16(b.data(), static_cast<int64_t>(b.size()), b16.data());
      std::vector<int64_t> off(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) off[static_cast<size_t>(j)] = (n - 1 - j) * (span + 7) + j % 3;
      for (const float beta : {0.0f, 1.0f}) {
        std::vector<float> c(static_cast<size_t>(m * n), 0.5f), want(c.size());
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s = beta * 0.5;
            for (int64_t g = 0; g < segments; ++g)
              for (int64_t p = 0; p < k; ++p)
                s += double{a[i * lda + g * a_step + p]} * b[off[static_cast<size_t>(j)] + g * b_step + p];
            want[i * n + j] = static_cast<float>(s);
          }
        bf16_nt(m, n, k, a16.data(), lda, b16.data(), off.data(), beta, c.data(), n, segments, a_step, b_step);
        expect_close(beta == 0 ? "C, beta 0" : "C, beta 1", c, want, 1e-5);
      }
    }
  });
}

struct Case {
  const char* yaml;  // without impl
  Shape x;
  int64_t batch;
  const char* impl = "bf16";
};

// The bf16 plan against the reference plan on the same layer, x, weights and dy: with
// `exact`, all of them rounded to bf16 first (then only the order of the sums differs).
void compare_with_reference(const Case& v, bool exact, double tol) {
  const std::string yaml(v.yaml);
  auto fast = layer_from_yaml(cat(yaml.substr(0, yaml.size() - 1), ", impl: ", v.impl, "}"));
  auto ref = layer_from_yaml(cat(yaml.substr(0, yaml.size() - 1), ", impl: reference}"));
  test::LayerHarness hf(*fast, {v.x}, v.batch, 9), hr(*ref, {v.x}, v.batch, 9);
  EXPECT_EQ(fast->plan(), std::string(v.impl) == "bf16" ? "bf16 implicit im2col, bf16 products, fp32 sums"
                                                        : "bf16 im2col, bf16 products, fp32 sums");
  for (auto* h : {&hf, &hr}) {
    if (exact) {
      round_all(h->x().span());
      round_all(h->dy().span());
      for (size_t p = 0; p < fast->params().size(); ++p) round_all(h->w(p).span());
    }
    std::fill(h->dx().span().begin(), h->dx().span().end(), 7.0f);  // backward writes, never adds
    for (size_t p = 0; p < fast->params().size(); ++p) std::fill(h->dw(p).span().begin(), h->dw(p).span().end(), 7.0f);
    h->backward({});
  }
  expect_close("y", hf.y().span(), hr.y().span(), tol);
  expect_close("dx", hf.dx().span(), hr.dx().span(), tol);
  for (size_t p = 0; p < fast->params().size(); ++p)
    expect_close(fast->params()[p].name.c_str(), hf.dw(p).span(), hr.dw(p).span(), tol);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c{
      {"{type: conv2d, filters: 16, kernel: 3, padding: 1, bias: false}", {16, 8, 8}, 5},  // ResNet's
      {"{type: conv2d, filters: 5, kernel: 3, padding: same}", {3, 11, 9}, 3},             // odd C and K
      {"{type: conv2d, filters: 6, kernel: 5, padding: 2}", {1, 28, 28}, 2},               // LeNet's c1
      // odd C: the last channel's taps in pairs along the row (an even width; 1-D; dilated rows)
      {"{type: conv2d, filters: 3, kernel: [3, 4], dilation: [2, 1], padding: [[2, 2], [1, 2]]}", {5, 9, 12}, 2},
      {"{type: conv1d, filters: 7, kernel: 5, padding: 2}", {1, 37}, 3},
      {"{type: conv2d, kernel: 3, connections: [[0, 1], [1, 2], [0, 2], [0, 1, 2]]}", {3, 6, 6}, 2},
      {"{type: conv2d, filters: 3, kernel: 3, dilation: 2, padding: 2, bias: location}", {2, 9, 8}, 3},
      {"{type: conv1d, filters: 33, kernel: 3, padding: same}", {2, 40}, 2},
      {"{type: conv2d, filters: 4, kernel: 3, padding: 3}", {2, 5, 6}, 2},                   // outputs no input reaches
      {"{type: conv2d, filters: 8, kernel: 3, padding: same, bias: false}", {5, 6, 32}, 2},  // rows of whole panels
      {"{type: conv2d, filters: 6, kernel: 3, padding: 1, bias: location}", {4, 5, 16}, 3},
      {"{type: conv2d, filters: 4, kernel: [3, 2], padding: [[0, 2], [1, 0]]}", {3, 7, 6}, 2},
      {"{type: conv2d, filters: 64, kernel: 3, padding: 1}", {64, 8, 8}, 40},  // several blocks and chunks
      // strided, through the phases: ResNet's first of a stage; odd C (no pairs along a row),
      // a bias per location; unequal strides, kernels and padding; a stride above the
      // kernel; 1-D; padding past the kernel; several blocks and chunks
      {"{type: conv2d, filters: 32, kernel: 3, stride: 2, padding: same}", {16, 16, 16}, 5},
      {"{type: conv2d, filters: 5, kernel: 3, stride: 2, rounding: floor, bias: location}", {3, 9, 8}, 3},
      {"{type: conv2d, filters: 6, kernel: [3, 5], stride: [2, 3], padding: [[1, 0], [2, 1]], rounding: floor}",
       {4, 9, 13},
       2},
      {"{type: conv2d, filters: 3, kernel: 2, stride: 3, rounding: floor}", {2, 10, 11}, 2},
      {"{type: conv1d, filters: 7, kernel: 3, stride: 2, padding: 1, rounding: floor}", {3, 34}, 2},
      {"{type: conv2d, filters: 4, kernel: 3, stride: 2, padding: 3, rounding: floor}", {2, 5, 6}, 2},
      {"{type: conv2d, filters: 32, kernel: 3, stride: 2, padding: same}", {32, 8, 8}, 40},
      // The im2col plan: strides (ResNet's first of a stage, its 1x1 projection), 3-D, odd
      // taps and filters, a bias per location, several blocks.
      {"{type: conv2d, filters: 32, kernel: 3, stride: 2, padding: same}", {16, 16, 16}, 5, "bf16_im2col"},
      {"{type: conv2d, filters: 32, kernel: 1, stride: 2, rounding: floor, bias: false}",
       {16, 16, 16},
       3,
       "bf16_im2col"},
      {"{type: conv2d, filters: 5, kernel: 3, stride: 2, rounding: floor, bias: location}",
       {3, 9, 8},
       3,
       "bf16_im2col"},
      {"{type: conv3d, filters: 4, kernel: 2, stride: 2}", {3, 4, 6, 6}, 2, "bf16_im2col"},
      {"{type: conv2d, filters: 16, kernel: 5, padding: 2}", {6, 14, 14}, 33, "bf16_im2col"},
  };
  return c;
}

TEST(Bf16, ConvPlanEqualsTheReferenceOnBf16Values) {
  NEEDS_BF16();
  at_every_width([] {
    for (const auto& v : cases()) {
      SCOPED_TRACE(v.yaml);
      compare_with_reference(v, true, 1e-5);
    }
  });
}

// On values bf16 does not hold: each product's operands carry a relative error up to
// 2^-9, so sums of many products of random sign agree to about 1%.
TEST(Bf16, ConvPlanIsWithinBf16PrecisionOnAnyValues) {
  NEEDS_BF16();
  for (const auto& v : cases()) {
    SCOPED_TRACE(v.yaml);
    compare_with_reference(v, false, 2e-2);
  }
  // With the fused activation (the masks follow y, which both compute alike but for the
  // last bits), a looser bound.
  compare_with_reference({"{type: conv2d, filters: 8, kernel: 3, padding: 1, activation: relu}", {4, 10, 10}, 3}, false,
                         5e-2);
  for (const char* impl : {"bf16", "bf16_im2col"})
    compare_with_reference(
        {"{type: conv2d, filters: 8, kernel: 3, stride: 2, padding: same, activation: relu}", {4, 10, 10}, 3, impl},
        false, 5e-2);
}

TEST(Bf16, ConvPlanGivesTheSameBitsOnOneAndTwoThreads) {
  NEEDS_BF16();
  auto run = [](int threads) {
    auto conv = layer_from_yaml("{type: conv2d, filters: 16, kernel: 3, padding: same, impl: bf16}");
    test::LayerHarness h(*conv, {Shape{16, 16, 16}}, 77, 5);
    tbb::task_arena arena(threads);
    arena.execute([&] { h.backward({}); });
    std::vector<float> out(h.y().span().begin(), h.y().span().end());
    out.insert(out.end(), h.dx().span().begin(), h.dx().span().end());
    out.insert(out.end(), h.dw(0).span().begin(), h.dw(0).span().end());
    out.insert(out.end(), h.dw(1).span().begin(), h.dw(1).span().end());
    return out;
  };
  const auto one = run(1), two = run(2);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
}

// With the net's precision bf16 the convolutions of a kernel larger than 1 take the bf16
// plan (strided ones through their phases); 1x1 ones keep theirs, and impl: bf16 where it
// cannot run says why.
TEST(Bf16, ThePrecisionChoosesThePlan) {
  NEEDS_BF16();
  auto plan_of = [](const std::string& yaml, const Shape& x, Precision p) {
    auto conv = layer_from_yaml(yaml);
    test::LayerHarness h(*conv, {x}, 2, 1, 0, p);
    return conv->plan();
  };
  const std::string same = "{type: conv2d, filters: 16, kernel: 3, padding: 1}";
  EXPECT_EQ(plan_of(same, Shape{16, 32, 32}, Precision::bf16), "bf16 implicit im2col, bf16 products, fp32 sums");
  EXPECT_NE(plan_of(same, Shape{16, 32, 32}, Precision::fp32).find("compact rows"), std::string::npos);
  const std::string strided = "{type: conv2d, filters: 16, kernel: 3, stride: 2, padding: 1, rounding: floor}";
  EXPECT_EQ(plan_of(strided, Shape{16, 32, 32}, Precision::bf16), "bf16 implicit im2col, bf16 products, fp32 sums");
  EXPECT_NE(plan_of(strided, Shape{16, 32, 32}, Precision::fp32).find("compact rows"), std::string::npos);
  const std::string projection = "{type: conv2d, filters: 32, kernel: 1, stride: 2, rounding: floor}";
  EXPECT_EQ(plan_of(projection, Shape{16, 32, 32}, Precision::bf16), "bf16 im2col, bf16 products, fp32 sums");
  EXPECT_EQ(plan_of(projection, Shape{16, 32, 32}, Precision::fp32), "im2col");
  try {
    auto conv = layer_from_yaml("{type: conv2d, filters: 4, kernel: 3, groups: 2, impl: bf16}");
    test::LayerHarness h(*conv, {Shape{4, 6, 6}}, 2);
    ADD_FAILURE() << "impl: bf16 with groups was accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("impl: bf16 cannot compute this layer: it has one group"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace hubel::layers

namespace hubel {
namespace {

TEST(Bf16, TrainPrecisionIsParsedAndAWrongValueNamed) {
  EXPECT_EQ(TrainOptions::parse(Config::parse("{}", "exp.yaml")).precision, Precision::fp32);
  EXPECT_EQ(TrainOptions::parse(Config::parse("{precision: bf16}", "exp.yaml")).precision, Precision::bf16);
  const std::string e =
      test::error_of<ConfigError>([] { TrainOptions::parse(Config::parse("{precision: half}", "exp.yaml")); });
  EXPECT_NE(e.find("precision"), std::string::npos) << e;
  EXPECT_NE(e.find("bf16"), std::string::npos) << e;
}

}  // namespace
}  // namespace hubel
