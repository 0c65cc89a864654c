// Pooling: the lecture's back-propagation example for max and average pooling, L2,
// trainable subsampling, global pooling and maxout; gradient checks; shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <set>

#include "layers/pool.hpp"
#include "tests/expect_error.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {

using test::layer_from_yaml;

namespace {

void expect_values(std::span<const float> got, std::initializer_list<float> want, float tol = 1e-5f) {
  ASSERT_EQ(got.size(), want.size());
  size_t i = 0;
  for (float w : want) {
    EXPECT_NEAR(got[i], w, tol) << "at " << i;
    ++i;
  }
}

// Runs forward and backward of a 1-sample layer on x with upstream gradient dy.
struct Run {
  Tensor y, dx;
};
Run run(Layer& layer, const Shape& x_shape, std::initializer_list<float> x, std::initializer_list<float> dy) {
  test::LayerHarness h(layer, {x_shape}, 1);
  std::copy(x.begin(), x.end(), h.x().data());
  h.forward({});
  Run r{test::LayerHarness::copy(h.y()), Tensor(x_shape.with_batch(1))};
  Tensor g(h.y_shape().with_batch(1));
  std::copy(dy.begin(), dy.end(), g.data());
  std::vector<ConstTensorView> xs{h.x().view()};
  std::vector<TensorView> dxs{r.dx.view()};
  layer.backward(xs, h.y().view(), g.view(), dxs, {});
  return r;
}

const std::initializer_list<float> kLectureX = {8, 4, 0, 1, 1, 4, 0, 2, 1, 2, 1, 0, 0, 1, 3, 2};

}  // namespace

TEST(Pool, MaxPoolingRoutesTheGradientToTheMaximum) {
  auto pool = layer_from_yaml("{type: maxpool2d, kernel: 2, stride: 2}");
  const auto r = run(*pool, {1, 4, 4}, kLectureX, {2, 8, 4, 6});
  expect_values(r.y.span(), {8, 2, 2, 3});
  expect_values(r.dx.span(), {2, 0, 0, 0, 0, 0, 0, 8, 0, 4, 0, 0, 0, 0, 6, 0});
}

TEST(Pool, AveragePoolingSpreadsTheGradientEvenly) {
  auto pool = layer_from_yaml("{type: avgpool2d, kernel: 2}");  // stride defaults to the window
  const auto r = run(*pool, {1, 4, 4}, kLectureX, {2, 8, 4, 6});
  expect_values(r.y.span(), {4.25f, 0.75f, 1, 1.5f});
  expect_values(r.dx.span(), {0.5f, 0.5f, 2, 2, 0.5f, 0.5f, 2, 2, 1, 1, 1.5f, 1.5f, 1, 1, 1.5f, 1.5f});
}

TEST(Pool, L2PoolingIsTheRootOfTheSumOfSquares) {
  auto pool = layer_from_yaml("{type: l2pool1d, kernel: 2}");
  const auto r = run(*pool, {1, 4}, {3, 4, 0, 0}, {1, 1});
  expect_values(r.y.span(), {5, 0});
  // d/dx sqrt(sum x^2) = x / y; zero at an all-zero window.
  expect_values(r.dx.span(), {0.6f, 0.8f, 0, 0});
}

TEST(Pool, OverlappingWindowsAddTheirGradients) {
  // 1-D max over 3 with stride 1: x = [1, 5, 2, 0]: windows [1,5,2] and [5,2,0] both pick 5.
  auto pool = layer_from_yaml("{type: maxpool1d, kernel: 3, stride: 1}");
  const auto r = run(*pool, {1, 4}, {1, 5, 2, 0}, {1, 2});
  expect_values(r.y.span(), {5, 5});
  expect_values(r.dx.span(), {0, 3, 0, 0});
}

TEST(Pool, PaddingIsIgnoredByMaxAndCountedByAverageUnlessAsked) {
  auto mx = layer_from_yaml("{type: maxpool1d, kernel: 2, padding: 1}");
  expect_values(run(*mx, {1, 2}, {-1, -2}, {1, 1}).y.span(), {-1, -2});
  auto avg = layer_from_yaml("{type: avgpool1d, kernel: 2, padding: 1}");
  expect_values(run(*avg, {1, 2}, {4, 2}, {1, 1}).y.span(), {2, 1});
  auto avg_in = layer_from_yaml("{type: avgpool1d, kernel: 2, padding: 1, count_padding: false}");
  const auto r = run(*avg_in, {1, 2}, {4, 2}, {1, 1});
  expect_values(r.y.span(), {4, 2});
  expect_values(r.dx.span(), {1, 1});
}

TEST(Pool, TrainableSubsampling) {
  // (a1 + a2 + a3 + a4) w + b per map.
  auto s = layer_from_yaml("{type: subsample2d, kernel: 2}");
  test::LayerHarness h(*s, {Shape{2, 2, 4}}, 1);
  for (int i = 0; i < 16; ++i) h.x()[i] = static_cast<float>(i);
  h.w(0)[0] = 0.5f, h.w(0)[1] = -1.0f;  // w per map
  h.w(1)[0] = 1.0f, h.w(1)[1] = 0.25f;  // b per map
  h.backward({});
  // Map 0: windows {0,1,4,5} = 10 and {2,3,6,7} = 18; map 1: {8,9,12,13} = 42, {10,11,14,15} = 50.
  expect_values(h.y().span(), {6, 10, -41.75f, -49.75f});
  const float* r = h.dy().data();
  expect_values(h.dw(0).span(), {10 * r[0] + 18 * r[1], 42 * r[2] + 50 * r[3]});
  expect_values(h.dw(1).span(), {r[0] + r[1], r[2] + r[3]});
  EXPECT_NEAR(h.dx()[0], 0.5f * r[0], 1e-6);
  EXPECT_NEAR(h.dx()[15], -1.0f * r[3], 1e-6);
  const Shape six[] = {Shape{6, 28, 28}};
  EXPECT_EQ(s->output_shape(six), (Shape{6, 14, 14}));
  EXPECT_EQ(s->param_specs(six).size(), 2u);
}

TEST(Pool, GlobalPoolingAndMaxout) {
  auto gavg = layer_from_yaml("{type: global_avgpool}");
  const auto a = run(*gavg, {2, 2, 2}, {1, 2, 3, 4, 0, 0, 0, 8}, {4, 8});
  expect_values(a.y.span(), {2.5f, 2});
  expect_values(a.dx.span(), {1, 1, 1, 1, 2, 2, 2, 2});
  auto gmax = layer_from_yaml("{type: global_maxpool}");
  const auto m = run(*gmax, {2, 2, 2}, {1, 2, 3, 4, 0, 0, 0, 8}, {4, 8});
  expect_values(m.y.span(), {4, 8});
  expect_values(m.dx.span(), {0, 0, 0, 4, 0, 0, 0, 8});
  auto maxout = layer_from_yaml("{type: maxout, pieces: 2}");
  const auto o = run(*maxout, {4, 2}, {1, 5, 3, 2, 0, -1, -2, 0}, {1, 2, 3, 4});
  expect_values(o.y.span(), {3, 5, 0, 0});
  expect_values(o.dx.span(), {0, 2, 1, 0, 3, 0, 0, 4});
}

TEST(Pool, ShapesAndErrors) {
  const Shape x[] = {Shape{3, 7, 7}};
  EXPECT_EQ(layer_from_yaml("{type: maxpool2d, kernel: 3, stride: 2}")->output_shape(x), (Shape{3, 3, 3}));
  EXPECT_THROW(layer_from_yaml("{type: maxpool2d, kernel: 2}")->output_shape(x), ShapeError);  // 7 is odd
  EXPECT_EQ(layer_from_yaml("{type: maxpool2d, kernel: 2, rounding: ceil}")->output_shape(x), (Shape{3, 4, 4}));
  EXPECT_EQ(layer_from_yaml("{type: maxpool2d, kernel: 2, rounding: floor}")->output_shape(x), (Shape{3, 3, 3}));
  EXPECT_EQ(layer_from_yaml("{type: maxpool, kernel: 2, rounding: floor}")->output_shape(x), (Shape{3, 3, 3}));
  const Shape eight[] = {Shape{3, 8, 8}};
  const auto msg = test::error_of<ShapeError>(
      [&] { layer_from_yaml("{type: maxpool2d, kernel: 2, padding: 2}", "p1")->output_shape(eight); });
  EXPECT_NE(msg.find("layer 'p1' (maxpool2d): padding 2 must be smaller than the window"), std::string::npos) << msg;
  EXPECT_THROW(layer_from_yaml("{type: maxpool3d, kernel: 2}")->output_shape(x), ShapeError);
  EXPECT_THROW(layer_from_yaml("{type: maxpool2d, kernel: 9}")->output_shape(x), ShapeError);
  EXPECT_THROW(layer_from_yaml("{type: maxout, pieces: 2}")->output_shape(x), ShapeError);
  EXPECT_THROW(layer_from_yaml("{type: maxout, pieces: 0}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: maxpool2d}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: maxpool2d, kernel: 2, count_padding: true}"), ConfigError);  // avg only
  const Shape flat[] = {Shape{5}};
  EXPECT_THROW(layer_from_yaml("{type: global_avgpool}")->output_shape(flat), ShapeError);
}

struct PoolVariant {
  const char* yaml;
  Shape x;
};
std::ostream& operator<<(std::ostream& os, const PoolVariant& v) { return os << v.yaml << " on " << v.x.str(); }

class PoolVariants : public ::testing::TestWithParam<PoolVariant> {};

TEST_P(PoolVariants, GradientCheck) {
  auto layer = layer_from_yaml(GetParam().yaml);
  // Max-like layers have kinks where two inputs tie; random normal inputs almost never tie
  // closely, and the check skips nothing else.
  test::LayerHarness h(*layer, {GetParam().x}, 3, 21);
  test::GradCheckOptions o;
  o.eps = 1e-3;
  o.max_checks = 200;
  h.check(o);
}

INSTANTIATE_TEST_SUITE_P(
    Layers, PoolVariants,
    ::testing::Values(
        PoolVariant{"{type: maxpool1d, kernel: 3, stride: 2, padding: 1}", {2, 7}},
        PoolVariant{"{type: maxpool2d, kernel: 2}", {2, 4, 6}},
        PoolVariant{"{type: maxpool2d, kernel: 3, stride: 1, padding: 1}", {2, 5, 5}},
        PoolVariant{"{type: maxpool3d, kernel: 2, rounding: ceil}", {2, 3, 4, 5}},
        PoolVariant{"{type: avgpool1d, kernel: 2, stride: 1}", {2, 6}},
        PoolVariant{"{type: avgpool2d, kernel: 3, stride: 2, padding: 1}", {2, 5, 5}},
        PoolVariant{"{type: avgpool2d, kernel: 3, stride: 2, padding: 1, count_padding: false}", {2, 5, 5}},
        PoolVariant{"{type: avgpool3d, kernel: [1, 2, 2]}", {2, 3, 4, 4}},
        PoolVariant{"{type: l2pool1d, kernel: 3, stride: 3}", {2, 9}},
        PoolVariant{"{type: l2pool2d, kernel: 2, stride: 1}", {2, 4, 4}},
        PoolVariant{"{type: l2pool3d, kernel: 2, padding: same}", {1, 3, 3, 3}},
        PoolVariant{"{type: subsample1d, kernel: 2}", {3, 8}}, PoolVariant{"{type: subsample2d, kernel: 2}", {3, 4, 4}},
        PoolVariant{"{type: subsample3d, kernel: 2, stride: 1}", {2, 3, 3, 3}},
        PoolVariant{"{type: global_avgpool}", {3, 4, 4}}, PoolVariant{"{type: global_maxpool}", {3, 2, 2, 2}},
        PoolVariant{"{type: maxout, pieces: 3}", {6, 2, 2}}, PoolVariant{"{type: maxout, pieces: 2}", {8}}));

// Every plan (fast: the one chosen; offsets: windows inside the input, taps by
// precomputed offsets; max_2x2) against the reference (every tap resolved through the
// padding rules): the same bits, ties included. A plan that cannot compute a layer is
// refused with the reason.
TEST(Pool, EveryPlanEqualsTheReferenceBitwise) {
  std::set<std::string> ran;
  for (const char* yaml :
       {"{type: maxpool2d, kernel: 2}", "{type: maxpool2d, kernel: 3, stride: 2, rounding: floor}",
        "{type: maxpool2d, kernel: 3, stride: 2, rounding: ceil}",
        "{type: maxpool3d, kernel: 2, dilation: [1, 2, 1], stride: 1}", "{type: avgpool2d, kernel: 2}",
        "{type: l2pool1d, kernel: 3, stride: 2}", "{type: maxpool2d, kernel: 2, padding: 0}",
        "{type: maxpool2d, kernel: 2, rounding: floor}"}) {
    const std::string y(yaml);
    std::vector<Shape> shapes{y.find("3d") != std::string::npos   ? Shape{3, 4, 6, 5}
                              : y.find("1d") != std::string::npos ? Shape{3, 11}
                                                                  : Shape{3, 8, 10}};
    // 2x2 windows at stride 2 also as LeNet's (8 windows in vector lanes, then 6 one by
    // one), 18 wide (two vectors and a tail of 2), and odd sides (a last row and column in
    // no window, their gradient 0).
    if (y == "{type: maxpool2d, kernel: 2}") shapes.insert(shapes.end(), {Shape{2, 6, 28}, Shape{2, 4, 36}});
    if (y == "{type: maxpool2d, kernel: 2, rounding: floor}") shapes.push_back(Shape{2, 7, 33});
    for (const char* impl : {"fast", "offsets", "max_2x2"})
      for (const Shape& x : shapes) {
        SCOPED_TRACE(cat(yaml, ", impl: ", impl, " on ", x.str()));
        auto fast = layer_from_yaml(cat(y.substr(0, y.size() - 1), ", impl: ", impl, "}"));
        auto ref = layer_from_yaml(y.substr(0, y.size() - 1) + ", impl: reference}");
        std::optional<test::LayerHarness> hf;
        try {
          hf.emplace(*fast, std::vector<Shape>{x}, 5, 31);
        } catch (const ShapeError& e) {
          EXPECT_NE(std::string(e.what()).find(cat("impl: ", impl, " cannot compute this layer")), std::string::npos)
              << e.what();
          continue;
        }
        ran.insert(fast->plan());
        test::LayerHarness hr(*ref, {x}, 5, 31);
        // Ties: a quarter of the inputs are exactly 0.5, and some windows all 0.5.
        for (auto* h : {&*hf, &hr}) {
          for (int64_t i = 0; i < h->x().numel(); i += 4) h->x().data()[i] = 0.5f;
          for (int64_t i = 0; i < h->x().numel(); i += 7) h->x().data()[i] = 0.5f;
          for (int64_t i = 0; i < h->x().numel(); i += 11) h->x().data()[i] = 0.5f;
          // NaN as the first tap of a window, and as a later one.
          if (y.find("maxpool2d") != std::string::npos)
            for (int64_t i = 5; i < h->x().numel(); i += 13) h->x().data()[i] = std::nanf("");
        }
        hf->backward({});
        hr.backward({});
        EXPECT_EQ(0, std::memcmp(hf->y().data(), hr.y().data(), static_cast<size_t>(hf->y().numel()) * sizeof(float)));
        EXPECT_EQ(0,
                  std::memcmp(hf->dx().data(), hr.dx().data(), static_cast<size_t>(hf->dx().numel()) * sizeof(float)));
      }
  }
  EXPECT_EQ(ran, (std::set<std::string>{"offsets", "max 2x2", "reference"}));
}

}  // namespace hubel::layers
