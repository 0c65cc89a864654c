// Weighted average pooling: worked examples with known answers, gradient checks.
#include <gtest/gtest.h>

#include <cmath>

#include "layers/weighted_pool.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {
namespace {

using test::layer_from_yaml;

// 4x4 input 1..16, 2x2 windows at stride 2, learned weights set to 1, 2, 3, 4.
TEST(WeightedPool, LearnedWeightsWorkedExample) {
  auto pool = layer_from_yaml("{type: weighted_avgpool2d, kernel: 2, weights: learned}");
  test::LayerHarness h(*pool, {Shape{1, 4, 4}}, 1);
  for (int i = 0; i < 16; ++i) h.x()[i] = static_cast<float>(i + 1);
  for (int t = 0; t < 4; ++t) h.w(0)[t] = static_cast<float>(t + 1);
  std::fill(h.dy().span().begin(), h.dy().span().end(), 1.0f);
  h.backward({true, 1, 0, 0});
  const float y[4] = {44, 64, 124, 144};  // 1*1 + 2*2 + 3*5 + 4*6, ...
  for (int p = 0; p < 4; ++p) EXPECT_EQ(h.y()[p], y[p]) << p;
  const float dw[4] = {24, 28, 40, 44};  // each tap's inputs summed: 1+3+9+11, ...
  for (int t = 0; t < 4; ++t) EXPECT_EQ(h.dw(0)[t], dw[t]) << t;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(h.dx()[r * 4 + c], static_cast<float>(1 + (r % 2) * 2 + c % 2)) << r << c;
}

// A 3x3 Gaussian with sigma 1: centre 1/Z, edges e^-1/2 / Z, corners e^-1 / Z, with
// Z = 1 + 4 e^-1/2 + 4 e^-1; a constant input stays constant.
TEST(WeightedPool, GaussianWeightsWorkedExample) {
  auto pool = layer_from_yaml("{type: weighted_avgpool2d, kernel: 3, stride: 1, sigma: 1.0}");
  test::LayerHarness h(*pool, {Shape{2, 5, 5}}, 1);
  const double z = 1 + 4 * std::exp(-0.5) + 4 * std::exp(-1.0);
  const Window w = resolve_window(WindowOptions::parse(Config::parse("{kernel: 3, stride: 1}"), 2, true),
                                  std::vector<int64_t>{5, 5}, [](const std::string& m) { FAIL() << m; });
  const auto g = WeightedPool::gaussian(w, 1.0);
  ASSERT_EQ(g.size(), 9u);
  EXPECT_NEAR(g[4], 1 / z, 1e-7);
  EXPECT_NEAR(g[1], std::exp(-0.5) / z, 1e-7);
  EXPECT_NEAR(g[0], std::exp(-1.0) / z, 1e-7);
  std::fill(h.x().span().begin(), h.x().span().end(), 2.0f);
  h.forward({});
  for (float v : h.y().span()) EXPECT_NEAR(v, 2.0f, 1e-6);
  EXPECT_EQ(h.y().numel(), 2 * 3 * 3);
  EXPECT_TRUE(pool->params().empty());
}

TEST(WeightedPool, GradientChecks) {
  for (const char* yaml : {"{type: weighted_avgpool2d, kernel: 3, stride: 2, padding: 1, weights: learned}",
                           "{type: weighted_avgpool2d, kernel: 3, stride: 2, padding: 1, sigma: 0.7}",
                           "{type: weighted_avgpool1d, kernel: 4, stride: 1, weights: learned}",
                           "{type: weighted_avgpool3d, kernel: 2, weights: learned}"}) {
    SCOPED_TRACE(yaml);
    auto pool = layer_from_yaml(yaml);
    const Shape x = std::string(yaml).find("1d") != std::string::npos   ? Shape{2, 9}
                    : std::string(yaml).find("3d") != std::string::npos ? Shape{2, 4, 4, 4}
                                                                        : Shape{3, 7, 7};
    test::LayerHarness h(*pool, {x}, 3, 5);
    h.check();
  }
}

TEST(WeightedPool, Errors) {
  EXPECT_THROW(layer_from_yaml("{type: weighted_avgpool2d, kernel: 2, weights: learned, sigma: 1}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: weighted_avgpool2d, kernel: 2, sigma: 0}"), ConfigError);
  EXPECT_THROW(layer_from_yaml("{type: weighted_avgpool2d, kernel: 2, weights: median}"), ConfigError);
}

}  // namespace
}  // namespace hubel::layers
