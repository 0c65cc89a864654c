// Activations: known values and gradient checks.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/config.hpp"
#include "layers/activations.hpp"
#include "layers/softmax.hpp"
#include "tests/gradcheck.hpp"

namespace hubel::layers {

namespace {
// y for a few inputs through a layer.
std::vector<float> apply(Layer& l, const std::vector<float>& xs) {
  test::LayerHarness h(l, {Shape{static_cast<int64_t>(xs.size())}}, 1);
  std::copy(xs.begin(), xs.end(), h.x().data());
  h.forward({});
  return {h.y().data(), h.y().data() + xs.size()};
}
}  // namespace

TEST(Activations, KnownValues) {
  Relu relu;
  EXPECT_EQ(apply(relu, {-1, 0, 2.5f}), (std::vector<float>{0, 0, 2.5f}));
  Sigmoid sig;
  auto s = apply(sig, {0, 2});
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  EXPECT_NEAR(s[1], 0.8807971f, 1e-6);
  Tanh tanh_layer;
  EXPECT_NEAR(apply(tanh_layer, {0.5f})[0], 0.46211716f, 1e-6);
  ScaledTanh st;
  auto v = apply(st, {1, -1, 0});
  EXPECT_NEAR(v[0], 1.7159 * std::tanh(2.0 / 3.0), 1e-6);  // 0.99999 : f(1) is about 1
  EXPECT_NEAR(v[0], 1.0, 2e-4);
  EXPECT_NEAR(v[1], -1.0, 2e-4);
  LeakyRelu leaky(LeakyReluOp{0.1f});
  EXPECT_EQ(apply(leaky, {-2, 3}), (std::vector<float>{-0.2f, 3}));
  Elu elu;
  EXPECT_NEAR(apply(elu, {-1})[0], -0.63212056f, 1e-6);
  Softmax sm;
  auto p = apply(sm, {1, 2, 3});
  EXPECT_NEAR(p[0], 0.09003057f, 1e-6);
  EXPECT_NEAR(p[1], 0.24472847f, 1e-6);
  EXPECT_NEAR(p[2], 0.66524096f, 1e-6);
}

TEST(Activations, GradientChecks) {
  const test::GradCheckOptions o{.kink = 0.01};
  Sigmoid a;
  test::LayerHarness(a, {Shape{3, 4}}, 3).check(o);
  Tanh b;
  test::LayerHarness(b, {Shape{5}}, 4).check(o);
  ScaledTanh c;
  test::LayerHarness(c, {Shape{5}}, 4).check(o);
  Relu d;
  test::LayerHarness(d, {Shape{2, 2, 3}}, 3, 1, o.kink).check(o);
  LeakyRelu e(LeakyReluOp{0.2f});
  test::LayerHarness(e, {Shape{6}}, 3, 1, o.kink).check(o);
  Elu f;
  test::LayerHarness(f, {Shape{6}}, 3, 1, o.kink).check(o);
  Softmax g;
  test::LayerHarness(g, {Shape{7}}, 3).check(o);
}

TEST(Activations, LargeTensorsUseManyChunks) {
  Relu r;
  test::LayerHarness h(r, {Shape{100, 100}}, 5, 2, 0.01);
  test::GradCheckOptions o{.kink = 0.01, .max_checks = 100};
  h.check(o);
}

TEST(Activations, ConfigErrors) {
  Config c = Config::parse("a: {slope: 1.5}\nb: {alpha: -1}\nc: {amplitude: 0}\nd: {slope: 0.3}\n", "a.yaml");
  EXPECT_THROW(make_leaky_relu(c.at("a")), ConfigError);
  EXPECT_THROW(make_elu(c.at("b")), ConfigError);
  EXPECT_THROW(make_scaled_tanh(c.at("c")), ConfigError);
  EXPECT_NO_THROW(make_leaky_relu(c.at("d")));
}

}  // namespace hubel::layers
