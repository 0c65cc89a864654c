// Convolution: the worked examples of the lectures, output sizes and their errors,
// finite-difference checks of every variant, the fast path against the reference path on
// random shapes, and bitwise equality between thread counts.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "framework/net.hpp"
#include "framework/random.hpp"
#include "layers/builtin.hpp"
#include "layers/conv.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/gemm_kernels.hpp"
#include "tests/expect_error.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {

using test::layer_from_yaml;

namespace {

Tensor tensor(const Shape& s, std::initializer_list<float> v) {
  Tensor t(s);
  EXPECT_EQ(static_cast<int64_t>(v.size()), s.numel());
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

void expect_values(std::span<const float> got, std::initializer_list<float> want, float tol = 1e-5f) {
  ASSERT_EQ(got.size(), want.size());
  size_t i = 0;
  for (float w : want) {
    EXPECT_NEAR(got[i], w, tol) << "at " << i;
    ++i;
  }
}

}  // namespace

// --- The true convolution (numpy.convolve, scipy.signal.convolve2d) --------------------

TEST(Convolve, OneDimensionalModes) {
  const Tensor f = tensor({5}, {0, 1, 2, -1, 3}), g = tensor({3}, {1, 1, 0});
  expect_values(convolve(f, g, ConvolveMode::valid).span(), {3, 1, 2});
  expect_values(convolve(f, g, ConvolveMode::full).span(), {0, 1, 3, 1, 2, 3, 0});
  expect_values(convolve(f, g, ConvolveMode::same).span(), {1, 3, 1, 2, 3});
  // Commutes in valid mode when the second input is the longer, as numpy does.
  expect_values(convolve(g, f, ConvolveMode::valid).span(), {3, 1, 2});
  // The kernel is flipped: an asymmetric kernel shows it. [1,2,3] * [0,1,0.5] same = [1, 2.5, 4].
  expect_values(convolve(tensor({3}, {1, 2, 3}), tensor({3}, {0, 1, 0.5f}), ConvolveMode::same).span(), {1, 2.5f, 4});
}

TEST(Convolve, TwoDimensionalModes) {
  const Tensor f = tensor({2, 2}, {1, 2, 3, 4}), g = tensor({2, 2}, {1, 1, 1, 1});
  const Tensor full = convolve(f, g, ConvolveMode::full);
  EXPECT_EQ(full.shape(), (Shape{3, 3}));
  expect_values(full.span(), {1, 3, 2, 4, 10, 6, 3, 7, 4});
  expect_values(convolve(f, g, ConvolveMode::same).span(), {1, 3, 4, 10});
  expect_values(convolve(f, g, ConvolveMode::valid).span(), {10});
  // Flipping: convolving with a kernel that has a single 1 at (0, 0) shifts, at (1, 1) too.
  const Tensor e = tensor({2, 2}, {0, 0, 0, 1});
  expect_values(convolve(f, e, ConvolveMode::full).span(), {0, 0, 0, 0, 1, 2, 0, 3, 4});
  EXPECT_THROW(convolve(tensor({2, 3}, {1, 2, 3, 4, 5, 6}), tensor({3, 2}, {1, 2, 3, 4, 5, 6}), ConvolveMode::valid),
               ShapeError);
  EXPECT_THROW(convolve(f, tensor({2}, {1, 1}), ConvolveMode::full), ShapeError);
}

// --- Worked examples of the layer (cross-correlation) ----------------------------------

TEST(Conv, CrossCorrelationOfTheLectureExample) {
  for (const char* impl : {"fast", "reference"}) {
    auto conv = layer_from_yaml(cat("{type: conv2d, filters: 1, kernel: 3, bias: false, impl: ", impl, "}"));
    test::LayerHarness h(*conv, {Shape{1, 4, 4}}, 1);
    const float x[] = {4, 5, 8, 7, 1, 8, 8, 8, 3, 6, 6, 4, 6, 5, 7, 8};
    const float w[] = {1, 4, 1, 1, 4, 3, 3, 3, 1};
    std::copy(x, x + 16, h.x().data());
    std::copy(w, w + 9, h.w(0).data());
    h.forward({});
    EXPECT_EQ(h.y_shape(), (Shape{1, 2, 2}));
    expect_values(h.y().span(), {122, 148, 126, 134});
  }
}

TEST(Conv, PreActivationWithBias) {
  for (const char* impl : {"fast", "reference"}) {
    auto conv = layer_from_yaml(cat("{type: conv2d, filters: 1, kernel: 3, padding: valid, impl: ", impl, "}"));
    test::LayerHarness h(*conv, {Shape{1, 5, 5}}, 1);
    const float x[] = {0.5f, -0.1f, 0.2f, 0.3f, 0.5f, 0.8f,  0.1f, -0.5f, 0.5f, 0.1f, -1.0f, 0.2f, 0.0f,
                       0.3f, -0.2f, 0.7f, 0.1f, 0.2f, -0.6f, 0.3f, -0.4f, 0.0f, 0.2f, 0.3f,  -0.3f};
    const float w[] = {0, 1, 1, 1, 0, 1, 1, 1, 0};
    std::copy(x, x + 25, h.x().data());
    std::copy(w, w + 9, h.w(0).data());
    h.w(1)[0] = 0.05f;
    h.forward({});
    expect_values(h.y().span(), {-0.35f, 1.35f, 0.75f, -0.55f, 0.85f, 0.05f, 0.75f, 0.05f, 1.15f});
  }
}

TEST(Conv, BackwardOfAOneByOneExample) {
  // x = [1, 2, 3], kernel [a, b] = [2, -1], valid: y = [2*1 - 2, 2*2 - 3] = [0, 1].
  // With dy = r: dx = [2 r0, -r0 + 2 r1, -r1], dw = [r0*1 + r1*2, r0*2 + r1*3], db = r0 + r1.
  auto conv = layer_from_yaml("{type: conv1d, filters: 1, kernel: 2}");
  test::LayerHarness h(*conv, {Shape{1, 3}}, 1);
  const float x[] = {1, 2, 3};
  std::copy(x, x + 3, h.x().data());
  h.w(0)[0] = 2;
  h.w(0)[1] = -1;
  h.w(1)[0] = 0;
  h.backward({});
  expect_values(h.y().span(), {0, 1});
  const float r0 = h.dy()[0], r1 = h.dy()[1];
  expect_values(h.dx().span(), {2 * r0, -r0 + 2 * r1, -r1});
  expect_values(h.dw(0).span(), {r0 + 2 * r1, 2 * r0 + 3 * r1});
  expect_values(h.dw(1).span(), {r0 + r1});
}

TEST(Conv, PaddingValues) {
  // x = [1, 2, 3], kernel [1, 0, 0] picks the left neighbour: padding 1 shows the pad value.
  const std::pair<const char*, float> cases[] = {{"zero", 0}, {"reflect", 2}, {"replicate", 1}};
  for (auto [value, left] : cases) {
    auto conv = layer_from_yaml(
        cat("{type: conv1d, filters: 1, kernel: 3, padding: 1, bias: false, padding_value: ", value, "}"));
    test::LayerHarness h(*conv, {Shape{1, 3}}, 1);
    for (int i = 0; i < 3; ++i) h.x()[i] = static_cast<float>(i + 1);
    h.w(0)[0] = 1, h.w(0)[1] = 0, h.w(0)[2] = 0;
    h.forward({});
    expect_values(h.y().span(), {left, 1, 2});
  }
}

// --- Output sizes and the errors around them ------------------------------------------

TEST(Conv, OutputSizesAndParameterCounts) {
  auto conv = layer_from_yaml("{type: conv2d, filters: 10, kernel: 5, stride: 1, padding: 2}");
  const Shape in[] = {Shape{3, 32, 32}};
  EXPECT_EQ(conv->output_shape(in), (Shape{10, 32, 32}));
  int64_t params = 0;
  for (const auto& p : conv->param_specs(in)) params += p.shape.numel();
  EXPECT_EQ(params, 760);

  const Shape seven[] = {Shape{1, 7, 7}};
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 1, kernel: 3, stride: 2}")->output_shape(seven), (Shape{1, 3, 3}));
  const auto msg = test::error_of<ShapeError>(
      [&] { layer_from_yaml("{type: conv2d, filters: 1, kernel: 3, stride: 3}", "c2")->output_shape(seven); });
  EXPECT_NE(msg.find("layer 'c2' (conv2d)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("do not tile"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rounding: floor"), std::string::npos) << msg;
  // The user chooses: floor drops the leftover, ceil adds a window over padding.
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 1, kernel: 3, stride: 3, rounding: floor}")->output_shape(seven),
            (Shape{1, 2, 2}));
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 1, kernel: 3, stride: 3, rounding: ceil}")->output_shape(seven),
            (Shape{1, 3, 3}));
  // valid, same (ceil(m/s)), full, dilation, per-dimension values.
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding: same}")->output_shape(seven),
            (Shape{2, 7, 7}));
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding: same, stride: 2}")->output_shape(seven),
            (Shape{2, 4, 4}));
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding: full}")->output_shape(seven),
            (Shape{2, 9, 9}));
  EXPECT_EQ(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, dilation: 2}")->output_shape(seven),
            (Shape{2, 3, 3}));
  EXPECT_EQ(
      layer_from_yaml("{type: conv2d, filters: 2, kernel: [1, 3], padding: [[0, 0], [2, 0]]}")->output_shape(seven),
      (Shape{2, 7, 7}));
  const Shape three_d[] = {Shape{2, 4, 6, 8}};
  EXPECT_EQ(layer_from_yaml(
                "{type: conv3d, filters: 5, kernel: [3, 3, 3], stride: [1, 1, 2], padding: [1, 1, 0], rounding: floor}")
                ->output_shape(three_d),
            (Shape{5, 4, 6, 3}));
  // A non-positive output size is always an error, whatever the rounding.
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 1, kernel: 9, rounding: floor}")->output_shape(seven),
               ShapeError);
  // Rank mismatch, group and table errors.
  EXPECT_THROW(layer_from_yaml("{type: conv1d, filters: 1, kernel: 3}")->output_shape(seven), ShapeError);
  const Shape six[] = {Shape{6, 8, 8}};
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 4, kernel: 3, groups: 4}")->output_shape(six), ShapeError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, kernel: 3, connections: [[0, 6]]}")->output_shape(six), ShapeError);
  EXPECT_THROW(
      layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding: 8, padding_value: reflect}")->output_shape(six),
      ShapeError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, tiles: 9}")->output_shape(six), ShapeError);
}

TEST(Conv, ConfigErrors) {
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 0, kernel: 3}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, kernel: 3}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: [3, 3, 3]}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, stride: 0}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding: half}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding: [[1, 2, 3], [0, 0]]}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, padding_value: mirror}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, rounding: round}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, connections: [[0, 0]]}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 3, kernel: 3, connections: [[0], [1]]}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, kernel: 3, connections: [[0], [1]], groups: 2}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, bias: maybe}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, impl: gpu}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv2d, filters: 2, kernel: 3, strides: 2}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: conv_transpose2d, filters: 2, kernel: 3, padding_value: reflect}")
                   ->output_shape(std::vector<Shape>{Shape{1, 4, 4}}),
               ShapeError);
}

TEST(ConvTranspose, OutputSizes) {
  const Shape in[] = {Shape{4, 5, 5}};
  // (m - 1) s - 2p + k + output_padding
  EXPECT_EQ(layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 3}")->output_shape(in), (Shape{3, 7, 7}));
  EXPECT_EQ(layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 4, stride: 2, padding: 1}")->output_shape(in),
            (Shape{3, 10, 10}));
  EXPECT_EQ(layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 3, stride: 2, padding: 1, output_padding: 1}")
                ->output_shape(in),
            (Shape{3, 10, 10}));
  EXPECT_EQ(
      layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 3, stride: 2, padding: same}")->output_shape(in),
      (Shape{3, 10, 10}));
  EXPECT_EQ(layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 3, padding: full}")->output_shape(in),
            (Shape{3, 3, 3}));
  EXPECT_THROW(layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 3, stride: 2, output_padding: 2}")
                   ->output_shape(in),
               ShapeError);
  EXPECT_THROW(layer_from_yaml("{type: conv_transpose2d, filters: 3, kernel: 3, padding: 4}")->output_shape(in),
               ShapeError);
}

TEST(ConvTranspose, IsTheAdjointOfConvolution) {
  // <conv(x), y> = <x, conv_transpose(y)> with the same weights: the defining property.
  for (const char* geometry : {"kernel: 3, stride: 2, padding: 1", "kernel: 3, stride: [2, 1], dilation: [1, 2]",
                               "kernel: 3, padding: full", "kernel: 1"}) {
    auto conv = layer_from_yaml(cat("{type: conv2d, filters: 3, bias: false, ", geometry, "}"));
    const Shape x_shape{2, 7, 7};
    const Shape y_shape = conv->output_shape(std::vector<Shape>{x_shape});
    auto tr = layer_from_yaml(cat("{type: conv_transpose2d, filters: 2, bias: false, ", geometry, "}"));
    ASSERT_EQ(tr->output_shape(std::vector<Shape>{y_shape}), x_shape) << geometry;
    test::LayerHarness hc(*conv, {x_shape}, 2, 3);
    test::LayerHarness ht(*tr, {y_shape}, 2, 4);
    // Conv weights [K=3, C=2, k...] and transposed weights [C_in=3, K_out/g=2, k...]: the same array.
    std::copy(hc.w(0).span().begin(), hc.w(0).span().end(), ht.w(0).data());
    hc.forward({});
    ht.forward({});
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < hc.y().numel(); ++i) lhs += static_cast<double>(hc.y()[i]) * ht.x()[i];
    for (int64_t i = 0; i < hc.x().numel(); ++i) rhs += static_cast<double>(hc.x()[i]) * ht.y()[i];
    EXPECT_NEAR(lhs, rhs, 1e-4 * std::max(1.0, std::abs(lhs))) << geometry;
  }
}

// --- Every variant: finite differences, and fast against reference ---------------------

struct Variant {
  const char* yaml;  // without impl
  Shape x;
  int64_t batch;
};

std::ostream& operator<<(std::ostream& os, const Variant& v) { return os << v.yaml << " on " << v.x.str(); }

class ConvVariants : public ::testing::TestWithParam<Variant> {};

// Compares two tensors: max |a - b| <= tol * max(1e-3, max |b|).
void expect_close(const char* what, std::span<const float> a, std::span<const float> b, double tol = 1e-5) {
  ASSERT_EQ(a.size(), b.size());
  double err = 0, scale = 1e-3;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  EXPECT_LE(err, tol * scale) << what << ": max difference " << err << " against max magnitude " << scale;
}

void compare_at_this_width(const std::string& yaml, const Shape& x, int64_t batch, uint64_t seed,
                           const std::string& impl = "fast") {
  auto fast = layer_from_yaml(cat(yaml.substr(0, yaml.size() - 1), ", impl: ", impl, "}"));
  auto ref = layer_from_yaml(cat(yaml.substr(0, yaml.size() - 1), ", impl: reference}"));
  test::LayerHarness hf(*fast, {x}, batch, seed), hr(*ref, {x}, batch, seed);
  // The harness's dw and dx start as zeros; fill them with garbage to check that backward overwrites.
  for (auto* h : {&hf, &hr}) {
    std::fill(h->dx().span().begin(), h->dx().span().end(), 7.0f);
    for (size_t p = 0; p < fast->params().size(); ++p) std::fill(h->dw(p).span().begin(), h->dw(p).span().end(), 7.0f);
  }
  hf.backward({});
  hr.backward({});
  expect_close("y", hf.y().span(), hr.y().span());
  expect_close("dx", hf.dx().span(), hr.dx().span());
  for (size_t p = 0; p < fast->params().size(); ++p)
    expect_close(fast->params()[p].name.c_str(), hf.dw(p).span(), hr.dw(p).span());
}

// The fast layer against the reference with the product kernels of every width this
// build runs here (a layer lays out its columns for the width's panel), then the
// process's own width again.
void compare_fast_and_reference(const std::string& yaml, const Shape& x, int64_t batch, uint64_t seed) {
  const int before = kernel_width();
  for (const int bits : kernel_widths()) {
    SCOPED_TRACE(cat(bits, "-bit kernels"));
    use_kernel_width(bits);
    compare_at_this_width(yaml, x, batch, seed);
  }
  if (before)
    use_kernel_width(before);
  else
    compare_at_this_width(yaml, x, batch, seed);  // no vector kernels: the BLAS paths
}

TEST_P(ConvVariants, GradientCheckFast) {
  const auto& v = GetParam();
  auto layer = layer_from_yaml(v.yaml);
  test::LayerHarness h(*layer, {v.x}, v.batch, 11);
  test::GradCheckOptions o;
  o.max_checks = 150;
  h.check(o);
}

TEST_P(ConvVariants, GradientCheckReference) {
  const auto& v = GetParam();
  auto layer =
      layer_from_yaml(cat(std::string(v.yaml).substr(0, std::string(v.yaml).size() - 1), ", impl: reference}"));
  test::LayerHarness h(*layer, {v.x}, v.batch, 12);
  test::GradCheckOptions o;
  o.max_checks = 150;
  h.check(o);
}

TEST_P(ConvVariants, FastEqualsReference) {
  const auto& v = GetParam();
  compare_fast_and_reference(v.yaml, v.x, v.batch, 13);
}

INSTANTIATE_TEST_SUITE_P(
    Layers, ConvVariants,
    ::testing::Values(
        Variant{"{type: conv1d, filters: 3, kernel: 3}", {2, 9}, 3},
        Variant{"{type: conv1d, filters: 2, kernel: 4, stride: 2, padding: same}", {3, 9}, 2},
        Variant{"{type: conv1d, filters: 2, kernel: 3, padding: full, dilation: 2}", {2, 6}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: 3}", {2, 6, 5}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, padding: same}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, padding: full}", {2, 4, 4}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: [3, 2], padding: [[2, 0], [1, 1]]}", {2, 5, 4}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, padding: 2, padding_value: reflect}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, padding: 2, padding_value: replicate}", {2, 4, 5}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: 3, stride: 2, padding: 1}", {2, 7, 7}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: 3, stride: [2, 3], rounding: ceil}", {2, 8, 8}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: 3, stride: 2, rounding: floor}", {2, 8, 8}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, dilation: [2, 1]}", {2, 7, 6}, 2},
        Variant{"{type: conv2d, filters: 4, kernel: 3, groups: 2, padding: 1}", {4, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 6, kernel: 3, groups: 3, padding: same}", {3, 5, 5}, 2},  // depthwise x2
        Variant{"{type: conv2d, filters: 5, kernel: 1}", {3, 4, 4}, 2},                            // pointwise
        Variant{"{type: conv2d, kernel: 3, connections: [[0, 1], [1, 2], [0, 2], [0, 1, 2]]}", {3, 6, 6}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, tiles: 2}", {2, 6, 6}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: [2, 3], tiles: [1, 3], padding: 1}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, tiles: all, bias: location}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, kernel: 3, tiles: 2, connections: [[0], [1], [0, 1]]}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: 3, bias: location, stride: 2, padding: same}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: 2, bias: false}", {2, 4, 4}, 2},
        Variant{"{type: conv3d, filters: 2, kernel: 3, padding: 1}", {2, 4, 4, 4}, 2},
        Variant{"{type: conv3d, filters: 2, kernel: [2, 3, 3], stride: [1, 2, 2], padding: same}", {2, 3, 5, 5}, 2},
        Variant{"{type: conv3d, filters: 4, kernel: 2, groups: 2, dilation: [1, 2, 1]}", {2, 3, 5, 4}, 2},
        Variant{"{type: conv, filters: 2, kernel: 3, padding: same}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, filters: 3, kernel: [2, 3], padding: 1, flip: true}", {2, 5, 5}, 2},
        Variant{"{type: conv2d, kernel: 3, connections: [[0], [0, 1]], flip: true, tiles: 2}", {2, 6, 6}, 2},
        // The fused activation: wide and plain layouts, one sample, tiled, location bias.
        Variant{"{type: conv2d, filters: 3, kernel: 3, padding: same, activation: relu}", {2, 5, 5}, 3},
        Variant{"{type: conv2d, filters: 3, kernel: 1, activation: relu}", {3, 4, 4}, 1},
        Variant{"{type: conv1d, filters: 3, kernel: 3, stride: 2, bias: location, activation: relu}", {2, 9}, 2},
        Variant{"{type: conv2d, filters: 2, kernel: 3, tiles: 2, activation: relu}", {2, 6, 6}, 2},
        Variant{"{type: conv_transpose1d, filters: 2, kernel: 3, stride: 2}", {3, 5}, 2},
        Variant{"{type: conv_transpose2d, filters: 2, kernel: 3}", {3, 4, 4}, 2},
        Variant{"{type: conv_transpose2d, filters: 3, kernel: 4, stride: 2, padding: 1}", {2, 3, 3}, 2},
        Variant{
            "{type: conv_transpose2d, filters: 2, kernel: 3, stride: 2, padding: 1, output_padding: 1}", {2, 3, 4}, 2},
        Variant{
            "{type: conv_transpose2d, filters: 4, kernel: 3, groups: 2, dilation: 2, bias: location}", {2, 3, 3}, 2},
        Variant{"{type: conv_transpose2d, filters: 3, kernel: 1}", {2, 3, 3}, 2},
        Variant{"{type: conv_transpose3d, filters: 2, kernel: 2, stride: 2, padding: same}", {2, 2, 3, 2}, 2}));

// --- Random shapes: fast against reference --------------------------------------------

TEST(Conv, FastEqualsReferenceOnRandomShapes) {
  Rng rng(2024);
  int compared = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const int rank = 1 + static_cast<int>(rng.below(3));
    const int64_t groups = 1 + static_cast<int64_t>(rng.below(2));
    const int64_t C = groups * (1 + static_cast<int64_t>(rng.below(3)));
    const int64_t K = groups * (1 + static_cast<int64_t>(rng.below(3)));
    std::vector<int64_t> dims{C};
    std::string kernel = "[", stride = "[", dilation = "[";
    for (int d = 0; d < rank; ++d) {
      dims.push_back(4 + static_cast<int64_t>(rng.below(rank == 3 ? 3 : 6)));
      kernel += cat(d ? "," : "", 1 + rng.below(3));
      stride += cat(d ? "," : "", 1 + rng.below(2));
      dilation += cat(d ? "," : "", 1 + rng.below(2));
    }
    kernel += "]", stride += "]", dilation += "]";
    const char* paddings[] = {"valid", "same", "full", "1"};
    const char* values[] = {"zero", "reflect", "replicate"};
    const bool transposed = rng.below(4) == 0;
    std::string yaml = cat("{type: ", transposed ? "conv_transpose" : "conv", ", filters: ", K, ", kernel: ", kernel,
                           ", stride: ", stride, ", dilation: ", dilation, ", groups: ", groups,
                           ", padding: ", paddings[rng.below(transposed ? 2 : 4)]);
    if (!transposed) yaml += cat(", rounding: floor, padding_value: ", values[rng.below(3)]);
    yaml += "}";
    const Shape x(dims);
    try {
      layer_from_yaml(yaml)->output_shape(std::vector<Shape>{x});
    } catch (const ShapeError&) {
      continue;  // e.g. reflect padding wider than the input: the error is tested elsewhere
    }
    SCOPED_TRACE(yaml + " on " + x.str());
    compare_fast_and_reference(yaml, x, 1 + static_cast<int64_t>(rng.below(4)), 100 + trial);
    ++compared;
  }
  EXPECT_GE(compared, 25);
}

// compare_fast_and_reference for each (layer, input shape) of a list.
void compare_cases(const std::vector<std::pair<const char*, Shape>>& cases, int64_t batch, uint64_t seed) {
  for (const auto& [yaml, x] : cases) {
    SCOPED_TRACE(yaml);
    compare_fast_and_reference(yaml, x, batch, seed);
  }
}

// --- Blocks of samples share one product: LeNet-sized layers with batches of many blocks
// and many backward chunks, plain, grouped, with a connection table and pointwise.
TEST(Conv, BlockedProductsEqualReferenceOnLargeBatches) {
  const std::vector<std::pair<const char*, Shape>> cases = {
      {"{type: conv2d, filters: 6, kernel: 5, padding: 2}", {1, 28, 28}},
      {"{type: conv2d, filters: 16, kernel: 5}", {6, 14, 14}},
      {"{type: conv2d, filters: 8, kernel: 3, groups: 2, stride: 2, padding: same}", {4, 17, 15}},
      {"{type: conv2d, kernel: 5, connections: [[0, 1, 2], [1, 2, 3], [2, 3, 4], [0, 3, 4, 5]]}", {6, 14, 14}},
      {"{type: conv2d, filters: 5, kernel: 1}", {12, 24, 24}},
      {"{type: conv2d, filters: 6, kernel: 5, padding: 2, activation: relu}", {1, 28, 28}},
      {"{type: conv2d, filters: 8, kernel: 3, stride: 2, activation: relu}", {4, 17, 15}}};
  compare_cases(cases, 45, 7);
}

// --- The implicit column matrix with a transposed weight gradient (dW^T = cols dY^T):
// whole panels of many filters and many taps, as the CIFAR-sized net's second layer;
// plain, grouped, with the fused activation and dilated.
TEST(Conv, TransposedWeightGradientEqualsReference) {
  const std::vector<std::pair<const char*, Shape>> cases = {
      {"{type: conv2d, filters: 64, kernel: 3, padding: 1}", {32, 8, 8}},
      {"{type: conv2d, filters: 64, kernel: 3, padding: 1, groups: 2, activation: relu}", {16, 7, 9}},
      {"{type: conv2d, filters: 32, kernel: 3, padding: 2, dilation: 2}", {8, 6, 6}}};
  compare_cases(cases, 11, 9);
}

// --- Output rows of whole kernel panels (16 or 32 wide, as the CIFAR-sized net's layers):
// the forward product reads each output row's columns from its own image row and writes y
// directly, and backward skips the padding between output rows (dot products in pieces,
// or the transposed weight gradient through a column map); bias per channel or per
// location, the fused activation, groups.
TEST(Conv, OutputRowsOfWholePanelsEqualReference) {
  const std::vector<std::pair<const char*, Shape>> cases = {
      {"{type: conv2d, filters: 32, kernel: 3, padding: 1, activation: relu}", {3, 6, 32}},
      {"{type: conv2d, filters: 12, kernel: 3, padding: 1, groups: 3, bias: location}", {6, 5, 16}},
      {"{type: conv2d, filters: 8, kernel: [3, 5], padding: [0, 2]}", {4, 7, 64}},
      {"{type: conv2d, filters: 32, kernel: 3, padding: 1, activation: relu}", {8, 4, 16}}};  // dW^T
  compare_cases(cases, 5, 21);
}

// --- Output positions as the rows of the product (compact with rows of any width, where
// a group's filters are whole kernel panels: 16 at 256 bits, 32 at 512): the forward y^T =
// cols^T W^T, the transposed weight gradient through the position map, col2im from compact
// columns; LeNet's c2, groups, bias per location, dilation, 1-D, and batches whose blocks
// end inside a tile of 8 positions.
TEST(Conv, OutputPositionsAsRowsEqualReference) {
  const std::vector<std::pair<const char*, Shape>> cases = {
      {"{type: conv2d, filters: 16, kernel: 5, activation: relu}", {6, 14, 14}},
      {"{type: conv2d, filters: 32, kernel: 3, padding: 1, groups: 2, bias: location}", {4, 7, 9}},
      {"{type: conv2d, filters: 32, kernel: 3, padding: 2, dilation: 2, activation: relu}", {3, 6, 11}},
      {"{type: conv1d, filters: 16, kernel: 3}", {4, 21}}};
  compare_cases(cases, 5, 23);
  compare_cases(cases, 45, 24);
}

// --- Threads do not change results ------------------------------------------------------

TEST(Conv, SameBitsWithOneAndTwoThreads) {
  auto run = [](int threads) {
    auto conv = layer_from_yaml("{type: conv2d, filters: 8, kernel: 3, padding: same}");
    test::LayerHarness h(*conv, {Shape{4, 30, 30}}, 77, 5);  // several blocks and chunks
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

// --- LeNet-5 ----------------------------------------------------------------------------

TEST(Conv, LeNet5ParameterCounts) {
  const Config exp = Config::load_file(HUBEL_SOURCE_DIR "/launch/experiments/lenet5.yaml");
  Net net = Net::from_config(exp.at("model"), builtin_registry());
  net.build(1, 1);
  std::map<std::string, int64_t> count;
  for (const auto& p : net.param_info()) count[p.layer] += p.size;
  EXPECT_EQ(count["c1"], 156);
  EXPECT_EQ(count["s2"], 12);
  EXPECT_EQ(count["c3"], 1516);
  EXPECT_EQ(count["s4"], 32);
  EXPECT_EQ(count["c5"], 48120);
  EXPECT_EQ(count["f6"], 10164);
  EXPECT_EQ(count["output"], 0);  // the RBF layer: fixed codes, no parameters
}

}  // namespace hubel::layers

namespace hubel::layers {

// A whole convolutional net, the modern LeNet in miniature: every parameter gradient
// through conv, pooling, the table, subsampling, transposed conv and dense layers.
TEST(Conv, SmallConvNetGradients) {
  Config c = Config::parse(
      "input: [2, 8, 8]\n"
      "layers:\n"
      "  - {type: conv2d, name: c1, filters: 3, kernel: 3, padding: same}\n"
      "  - {type: tanh}\n"
      "  - {type: maxpool2d, kernel: 2}\n"
      "  - {type: conv2d, name: c2, kernel: 3, connections: [[0], [1, 2], [0, 1, 2]]}\n"
      "  - {type: subsample2d, name: s2, kernel: 2}\n"
      "  - {type: conv_transpose2d, name: up, filters: 2, kernel: 2, stride: 2}\n"
      "  - {type: avgpool2d, kernel: 2}\n"
      "  - {type: flatten}\n"
      "  - {type: dense, name: out, units: 3}\n",
      "net.yaml");
  Net net = Net::from_config(c, builtin_registry());
  net.build(3, 9);
  Rng rng(4);
  test::randomize(net.input(3).span(), rng);
  std::vector<int32_t> labels{0, 2, 1};
  const auto loss = builtin_registry().make_loss("softmax_cross_entropy", Config::parse("{}"));
  test::GradCheckOptions o;
  test::check_net_gradients(net, *loss, 3, Targets{labels.data(), {}}, o);
}

}  // namespace hubel::layers

namespace hubel::layers {

// A LeNet's forward and backward on 2 threads, repeated: every run gives the bits of a
// 1-thread run. (This caught a BLAS that was not safe to call from two threads at once.)
TEST(Conv, LeNetStepsAreBitwiseRepeatableOnTwoThreads) {
  Config c = Config::parse(
      "input: [1, 28, 28]\n"
      "layers:\n"
      "  - {type: conv2d, filters: 6, kernel: 5, padding: 2}\n"
      "  - {type: relu}\n"
      "  - {type: maxpool2d, kernel: 2}\n"
      "  - {type: conv2d, filters: 16, kernel: 5}\n"
      "  - {type: relu}\n"
      "  - {type: maxpool2d, kernel: 2}\n"
      "  - {type: dense, units: 120}\n"
      "  - {type: relu}\n"
      "  - {type: dense, units: 84}\n"
      "  - {type: relu}\n"
      "  - {type: dense, units: 10}\n",
      "lenet.yaml");
  Net net = Net::from_config(c, builtin_registry());
  net.build(128, 3);
  Rng rng(5);
  test::randomize(net.input(128).span(), rng);
  std::vector<int32_t> labels(128);
  for (int i = 0; i < 128; ++i) labels[i] = i % 10;
  const auto loss = builtin_registry().make_loss("softmax_cross_entropy", Config::parse("{}"));
  auto step = [&](int threads) {
    tbb::task_arena(threads).execute([&] {
      const StepContext ctx{true, 1, 0, 0};
      auto y = net.forward(128, ctx);
      loss->evaluate(y, Targets{labels.data(), {}}, net.output_grad(128), 1.0f);
      net.backward(128, ctx);
    });
    return std::vector<float>(net.grads().begin(), net.grads().end());
  };
  const auto one = step(1);
  for (int run = 0; run < 12; ++run) ASSERT_EQ(step(2), one) << "run " << run;
}

}  // namespace hubel::layers

namespace hubel::layers {

// The plan a convolution chooses for its shapes, at every kernel width this CPU runs.
TEST(Conv, ThePlanFollowsTheShapes) {
  auto plan_of = [](const std::string& yaml, const Shape& x) {
    auto conv = layer_from_yaml(yaml);
    test::LayerHarness h(*conv, {x}, 2);
    return conv->plan();
  };
  const int original = kernel_width();
  std::vector<int> widths = kernel_widths();
  if (widths.empty()) widths.push_back(0);
  for (const int bits : widths) {
    if (bits) use_kernel_width(bits);
    const int64_t panel = kernel_panel();
    // LeNet's first layer: 28-wide output rows, 6 filters.
    const std::string c1 = plan_of("{type: conv2d, filters: 6, kernel: 5, padding: 2}", Shape{1, 28, 28});
    // LeNet's second: 10-wide rows, 16 filters (whole panels at 256 bits).
    const std::string c3 = plan_of("{type: conv2d, filters: 16, kernel: 5}", Shape{6, 14, 14});
    // Output rows of whole panels: 32 wide.
    const std::string rows = plan_of("{type: conv2d, filters: 4, kernel: 3, padding: same}", Shape{2, 32, 32});
    if (panel == 0) {
      EXPECT_EQ(c1, "wide im2col");
      EXPECT_EQ(c3, "wide im2col");
    } else {
      EXPECT_EQ(c1, "implicit im2col, dW by dot products") << bits;
      EXPECT_EQ(c3, panel == 16 ? "output positions, dW^T" : "implicit im2col, dW by dot products") << bits;
      EXPECT_EQ(rows, "compact rows, dW by dot products") << bits;
    }
    // Strided: the phases of the padded image read in place (no column matrix), except a 1x1
    // kernel, whose columns are one phase of the input itself, and a dilated kernel.
    EXPECT_EQ(plan_of("{type: conv2d, filters: 4, kernel: 3, stride: 2, rounding: floor}", Shape{2, 9, 9}),
              panel == 0 ? "im2col" : "implicit im2col, dW by dot products")
        << bits;
    EXPECT_EQ(plan_of("{type: conv2d, filters: 4, kernel: 1, stride: 2}", Shape{2, 9, 9}), "im2col");
    EXPECT_EQ(plan_of("{type: conv2d, filters: 4, kernel: 3, stride: 2, dilation: 2}", Shape{2, 9, 9}), "im2col");
    EXPECT_EQ(plan_of("{type: conv2d, filters: 4, kernel: 3, tiles: 2}", Shape{2, 6, 6}), "tiled");
    EXPECT_EQ(plan_of("{type: conv2d, filters: 4, kernel: 3, impl: reference}", Shape{2, 6, 6}), "reference");
  }
  if (original) use_kernel_width(original);
}

// Every plan, named with impl:, against the reference wherever it applies, at every
// kernel width this CPU runs; and each plan runs on at least one of the shapes.
TEST(Conv, EveryPlanEqualsTheReference) {
  const std::vector<Variant> shapes{
      {"{type: conv2d, filters: 6, kernel: 5, padding: 2}", {1, 28, 28}, 3},            // LeNet's c1
      {"{type: conv2d, filters: 16, kernel: 5}", {6, 14, 14}, 3},                       // LeNet's c3
      {"{type: conv2d, filters: 32, kernel: 3, padding: same}", {3, 32, 32}, 2},        // rows of whole panels
      {"{type: conv2d, filters: 64, kernel: 3, groups: 2, padding: 1}", {4, 7, 7}, 3},  // groups of whole panels
      {"{type: conv2d, filters: 32, kernel: 3, bias: location, activation: relu}", {2, 6, 34}, 2},
      {"{type: conv2d, kernel: 3, connections: [[0, 1], [1, 2], [0, 2], [0, 1, 2]]}", {3, 6, 6}, 2},
      {"{type: conv2d, filters: 3, kernel: 3, dilation: 2, padding: 2, activation: relu}", {2, 9, 8}, 3},
      {"{type: conv1d, filters: 32, kernel: 3, padding: same, bias: false}", {2, 40}, 2},
      {"{type: conv2d, filters: 3, kernel: 3, stride: 2, padding: 1}", {2, 7, 7}, 2},
      {"{type: conv2d, filters: 2, kernel: 3, tiles: 2, activation: relu}", {2, 6, 6}, 2},
      // padding past (k - 1) d: outputs that no input reaches (the input gradient's clipping)
      {"{type: conv2d, filters: 4, kernel: 3, padding: [[3, 0], [1, 4]]}", {2, 6, 7}, 2},
      // strided, through the phases of the padded image: ResNet's first of a stage; unequal
      // strides and kernels, asymmetric padding; a stride above the kernel (phases no tap
      // reads); 1-D; padding past the kernel; groups
      {"{type: conv2d, filters: 16, kernel: 3, stride: 2, padding: same, bias: false}", {16, 16, 16}, 3},
      {"{type: conv2d, filters: 6, kernel: [3, 5], stride: [2, 3], padding: [[1, 0], [2, 1]], rounding: floor, "
       "activation: relu}",
       {4, 9, 13},
       2},
      {"{type: conv2d, filters: 3, kernel: 2, stride: 3, rounding: floor}", {2, 10, 11}, 2},
      {"{type: conv1d, filters: 16, kernel: 3, stride: 2, padding: 1, rounding: floor}", {3, 34}, 2},
      {"{type: conv2d, filters: 4, kernel: 3, stride: 2, padding: 3, rounding: floor}", {2, 5, 6}, 2},
      {"{type: conv2d, filters: 8, kernel: 3, groups: 2, stride: 2, padding: 1, rounding: floor}", {4, 8, 8}, 2},
  };
  const int before = kernel_width();
  std::vector<int> widths = kernel_widths();
  if (widths.empty()) widths.push_back(0);
  for (const int bits : widths) {
    if (bits) use_kernel_width(bits);
    std::set<std::string> ran;
    for (const auto& v : shapes) {
      for (const char* impl : {"tiled", "im2col", "wide_im2col", "implicit", "compact_rows", "positions"}) {
        auto forced =
            layer_from_yaml(cat(std::string(v.yaml).substr(0, std::strlen(v.yaml) - 1), ", impl: ", impl, "}"));
        SCOPED_TRACE(cat(bits, "-bit kernels, impl: ", impl, ", ", v.yaml));
        std::string why;
        try {
          test::LayerHarness h(*forced, {v.x}, v.batch);
        } catch (const ShapeError& e) {
          why = e.what();
        }
        if (!why.empty()) {  // refused, saying which plan and why
          EXPECT_NE(why.find(cat("impl: ", impl, " cannot compute this layer")), std::string::npos) << why;
          continue;
        }
        compare_at_this_width(v.yaml, v.x, v.batch, 21, impl);
        ran.insert(impl);
      }
    }
    std::set<std::string> expected{"tiled", "im2col", "wide_im2col"};
    if (kernel_panel() > 0) expected.insert({"implicit", "compact_rows", "positions"});
    EXPECT_EQ(ran, expected) << bits << "-bit kernels";
  }
  if (before) use_kernel_width(before);
}

// flip: true is the true convolution: one channel and one filter against layers::convolve
// (numpy's convolve, scipy's convolve2d) in its three modes, 1-D to 3-D.
TEST(Conv, FlipIsTheTrueConvolution) {
  struct Mode {
    const char* yaml;
    Shape x, k;
    ConvolveMode mode;
  };
  const std::vector<Mode> modes{
      {"{type: conv2d, filters: 1, kernel: [2, 3], bias: false, flip: true}", {1, 5, 6}, {2, 3}, ConvolveMode::valid},
      {"{type: conv2d, filters: 1, kernel: [2, 3], bias: false, flip: true, padding: full}",
       {1, 5, 6},
       {2, 3},
       ConvolveMode::full},
      {"{type: conv2d, filters: 1, kernel: 3, bias: false, flip: true, padding: same}",
       {1, 5, 6},
       {3, 3},
       ConvolveMode::same},
      {"{type: conv1d, filters: 1, kernel: 4, bias: false, flip: true, padding: full}",
       {1, 9},
       {4},
       ConvolveMode::full},
      {"{type: conv3d, filters: 1, kernel: [2, 3, 2], bias: false, flip: true}",
       {1, 4, 5, 4},
       {2, 3, 2},
       ConvolveMode::valid},
  };
  for (const auto& m : modes) {
    SCOPED_TRACE(m.yaml);
    auto conv = layer_from_yaml(m.yaml);
    test::LayerHarness h(*conv, {m.x}, 1, 17);
    h.forward({});
    const Shape spatial(std::span<const int64_t>(m.x.begin() + 1, m.x.end()));
    Tensor f(spatial), g(m.k);
    std::copy(h.x().data(), h.x().data() + f.numel(), f.data());
    std::copy(h.w(0).data(), h.w(0).data() + g.numel(), g.data());
    const Tensor want = convolve(f.view(), g.view(), m.mode);
    ASSERT_EQ(want.numel(), h.y().numel());
    for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(h.y()[i], want[i], 1e-5) << i;
    // Without flip the same layer is the cross-correlation: it differs.
    auto plain =
        layer_from_yaml(cat(std::string(m.yaml).replace(std::string(m.yaml).find("flip: true"), 10, "flip: false")));
    test::LayerHarness hp(*plain, {m.x}, 1, 17);
    hp.forward({});
    double diff = 0;
    for (int64_t i = 0; i < want.numel(); ++i)
      diff = std::max(diff, static_cast<double>(std::abs(hp.y()[i] - want[i])));
    EXPECT_GT(diff, 1e-3);
  }
}

}  // namespace hubel::layers

namespace hubel::layers {
namespace {

// The bias gradient's sum over a block's rows (conv_detail::bias_gradient_rows, vector
// lanes with masked tails) against its order written out: 16 lanes, lane l adding values
// q = l (mod 16) of each row in row order, each row's last OW % 16 values into the first
// lanes; then the lanes in order, written for the first sample and added after.
TEST(ConvPieces, BiasGradientRowsSumsInItsStatedOrder) {
  Rng rng(5);
  for (const int64_t OW : {1, 5, 8, 10, 16, 17, 24, 27, 32, 33}) {
    const int64_t rows = 3, stride = OW + 2, K = 3, ldk = rows * stride + 7;
    std::vector<float> d(static_cast<size_t>(K * ldk));
    test::randomize(d, rng);
    for (size_t i = 0; i < d.size(); i += 13) d[i] = -0.0f;
    std::vector<float> sums(static_cast<size_t>(K)), want(static_cast<size_t>(K)), got(static_cast<size_t>(K), 0.5f);
    for (int64_t k = 0; k < K; ++k) {
      float lane[16] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = d.data() + k * ldk + r * stride;
        for (int64_t q = 0; q < OW; ++q) lane[q < OW - OW % 16 ? q % 16 : q - (OW - OW % 16)] += row[q];
      }
      float s = 0;
      for (float v : lane) s += v;
      sums[static_cast<size_t>(k)] = s;
      want[static_cast<size_t>(k)] = 0.5f + s;
    }
    conv_detail::bias_gradient_rows(BiasKind::channel, d.data(), ldk, rows, stride, OW, K, false, got.data());
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << "OW " << OW;
    conv_detail::bias_gradient_rows(BiasKind::channel, d.data(), ldk, rows, stride, OW, K, true, got.data());
    EXPECT_EQ(std::memcmp(sums.data(), got.data(), sums.size() * sizeof(float)), 0) << "OW " << OW << ", first";
  }
}

// im2col and col2im against their definitions (for_each_output / for_each_tap), bit for
// bit, on strides 1 to 3 and widths that take stride 2's eight-wide vector path and its
// scalar ends: 1x1 and 3x3 kernels, no, same and reflect padding, a block's row stride.
TEST(ConvPieces, Im2colAndCol2imEqualTheirDefinition) {
  Rng rng(11);
  int checked = 0;
  for (const char* geometry : {"kernel: 3, stride: 2, padding: same", "kernel: 1, stride: 2, rounding: floor",
                               "kernel: 3, stride: 2, rounding: floor", "kernel: 3, stride: 2, padding: 1",
                               "kernel: 3, stride: 2, padding: same, padding_value: reflect",
                               "kernel: [1, 3], stride: [1, 2], padding: [[0, 0], [2, 1]], rounding: floor",
                               "kernel: 3, stride: 1, padding: same", "kernel: 3, stride: 3, rounding: floor"})
    for (const int64_t W : {1, 7, 15, 16, 17, 18, 19, 31, 32, 33, 34, 40}) {
      const Config c = Config::parse(cat("{", geometry, "}"));
      const std::vector<int64_t> in{3, W};
      std::string error;
      const Window w = resolve_window(WindowOptions::parse(c, 2, false), in, [&](const std::string& m) { error = m; });
      if (!error.empty()) continue;  // a kernel wider than a narrow image
      const int64_t C = 2, P = w.out_vol(), ld = P + 5, K = w.k_vol();
      std::vector<float> x(static_cast<size_t>(C * w.in_vol()));
      test::randomize(x, rng);
      for (size_t i = 0; i < x.size(); i += 7) x[i] = -0.0f;
      // im2col
      std::vector<float> want(static_cast<size_t>(C * K * ld), 0.0f), got(want.size(), 0.0f);
      for (int64_t ch = 0; ch < C; ++ch)
        for_each_output(w, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
          for_each_tap(w, od, oh, ow, [&](int64_t kk, int64_t q) {
            want[static_cast<size_t>((ch * K + kk) * ld + p)] = x[static_cast<size_t>(ch * w.in_vol() + q)];
          });
        });
      im2col(w, C, x.data(), got.data(), ld);
      for (int64_t r = 0; r < C * K; ++r)  // columns past P are the caller's
        EXPECT_EQ(std::memcmp(want.data() + r * ld, got.data() + r * ld, static_cast<size_t>(P) * sizeof(float)), 0)
            << geometry << ", width " << W << ", row " << r;
      // col2im: each element the sum of the columns that read it, taps then positions in order
      std::vector<float> cols(static_cast<size_t>(C * K * ld));
      test::randomize(cols, rng);
      std::vector<float> back(x.size(), 0.0f), dx(x.size(), 9.0f);
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t kk = 0; kk < K; ++kk)
          for_each_output(w, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            for_each_tap(w, od, oh, ow, [&](int64_t k2, int64_t q) {
              if (k2 == kk)
                back[static_cast<size_t>(ch * w.in_vol() + q)] += cols[static_cast<size_t>((ch * K + kk) * ld + p)];
            });
          });
      col2im(w, C, cols.data(), dx.data(), ld);
      EXPECT_EQ(std::memcmp(back.data(), dx.data(), back.size() * sizeof(float)), 0) << geometry << ", width " << W;
      ++checked;
    }
  EXPECT_GE(checked, 80);
}

// The stride-2 row pieces of im2col and of the strided phases, bit for bit against their
// definitions, at lengths around the vector width (the vector loops and their scalar ends),
// from offsets that are not vector-aligned.
TEST(ConvPieces, StrideTwoRowsEqualTheirDefinition) {
  Rng rng(5);
  std::vector<float> src(200), a(100), b(100), out(200);
  for (float& v : src) v = rng.normal();
  for (const int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 40}) {
    for (const int64_t off : {0, 1, 3}) {
      SCOPED_TRACE(cat("n ", n, ", offset ", off));
      const float* s = src.data() + off;
      std::fill(a.begin(), a.end(), -1.0f);
      std::fill(b.begin(), b.end(), -1.0f);
      deinterleave(s, n, a.data() + off, b.data());
      for (int64_t m = 0; m < n; ++m) {
        EXPECT_EQ(a[static_cast<size_t>(off + m)], s[2 * m]) << m;
        EXPECT_EQ(b[static_cast<size_t>(m)], s[2 * m + 1]) << m;
      }
      EXPECT_EQ(a[static_cast<size_t>(off + n)], -1.0f);  // nothing past the end
      EXPECT_EQ(b[static_cast<size_t>(n)], -1.0f);
      std::fill(out.begin(), out.end(), -1.0f);
      interleave(a.data() + off, b.data(), n, out.data() + off);
      EXPECT_EQ(0, std::memcmp(out.data() + off, s, static_cast<size_t>(2 * n) * sizeof(float)));
      EXPECT_EQ(out[static_cast<size_t>(off + 2 * n)], -1.0f);
      std::fill(out.begin(), out.end(), -1.0f);
      copy_even(s, 0, n, 2 * n - 1, out.data());  // the last odd float may not be read
      for (int64_t m = 0; m < n; ++m) EXPECT_EQ(out[static_cast<size_t>(m)], s[2 * m]) << m;
      EXPECT_EQ(out[static_cast<size_t>(n)], -1.0f);
    }
  }
}
}  // namespace
}  // namespace hubel::layers
