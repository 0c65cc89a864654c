// Dense: a hand-computed product, gradient checks, shape errors.
#include <gtest/gtest.h>

#include "framework/config.hpp"
#include "layers/dense.hpp"
#include "tests/gradcheck.hpp"

namespace hubel::layers {

TEST(Dense, ForwardMatchesAHandProduct) {
  Dense d({2, true});
  d.set_name("fc");
  test::LayerHarness h(d, {Shape{3}}, 2);
  // W = [[1, 0, -1], [2, 1, 0]], b = [0.5, -1]
  const float w[] = {1, 0, -1, 2, 1, 0};
  std::copy(w, w + 6, h.w(0).data());
  h.w(1)[0] = 0.5f;
  h.w(1)[1] = -1.0f;
  const float x[] = {1, 2, 3, -1, 0, 4};
  std::copy(x, x + 6, h.x().data());
  h.forward({});
  // Row 0: [1 - 3 + 0.5, 2 + 2 - 1] = [-1.5, 3]; row 1: [-1 - 4 + 0.5, -2 + 0 - 1] = [-4.5, -3]
  EXPECT_FLOAT_EQ(h.y()[0], -1.5f);
  EXPECT_FLOAT_EQ(h.y()[1], 3.0f);
  EXPECT_FLOAT_EQ(h.y()[2], -4.5f);
  EXPECT_FLOAT_EQ(h.y()[3], -3.0f);
}

TEST(Dense, BackwardMatchesHandValues) {
  Dense d({2, true});
  test::LayerHarness h(d, {Shape{3}}, 1);
  const float w[] = {1, 0, -1, 2, 1, 0};
  std::copy(w, w + 6, h.w(0).data());
  const float x[] = {1, 2, 3};
  std::copy(x, x + 3, h.x().data());
  h.backward({});
  // dW = dy^T x, db = dy, dx = dy W, with the harness's dy = [d0, d1].
  const float d0 = h.dy()[0], d1 = h.dy()[1];
  ASSERT_NE(d0, 0.0f);
  ASSERT_NE(d1, 0.0f);
  EXPECT_FLOAT_EQ(h.dw(1)[0], d0);
  EXPECT_FLOAT_EQ(h.dw(1)[1], d1);
  EXPECT_FLOAT_EQ(h.dw(0)[0], d0 * 1);
  EXPECT_FLOAT_EQ(h.dw(0)[2], d0 * 3);
  EXPECT_FLOAT_EQ(h.dw(0)[4], d1 * 2);
  EXPECT_FLOAT_EQ(h.dx()[0], d0 * 1 + d1 * 2);
  EXPECT_FLOAT_EQ(h.dx()[1], d1 * 1);
  EXPECT_FLOAT_EQ(h.dx()[2], -d0);
}

TEST(Dense, GradientCheck) {
  Dense d({4, true});
  test::LayerHarness h(d, {Shape{7}}, 5);
  h.check();
}

TEST(Dense, GradientCheckFlattensImageInputsAndLargeBatches) {
  // A batch big enough for several parallel chunks.
  Dense d({3, false});
  test::LayerHarness h(d, {Shape{2, 3, 3}}, 300);
  test::GradCheckOptions o;
  o.max_checks = 60;
  h.check(o);
  EXPECT_EQ(h.y_shape(), (Shape{3}));
}

TEST(Dense, ConfigErrors) {
  Config c = Config::parse(
      "a: {units: 0}\nb: {units: -3}\nc: {units: 3, init: nope}\nd: {units: 4, bias: false, init: he_normal}\n",
      "d.yaml");
  EXPECT_THROW(Dense::from_config(c.at("a")), ConfigError);
  EXPECT_THROW(Dense::from_config(c.at("b")), ConfigError);
  EXPECT_THROW(Dense::from_config(c.at("c")), ConfigError);
  auto layer = Dense::from_config(c.at("d"));
  const Shape in[] = {Shape{5}};
  EXPECT_EQ(layer->param_specs(in).size(), 1u);
}

}  // namespace hubel::layers
