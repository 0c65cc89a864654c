// LeNet-5's RBF output layer and MAP criterion: worked examples with known answers and
// gradient checks.
#include <gtest/gtest.h>

#include <cmath>

#include "layers/losses.hpp"
#include "layers/rbf.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {
namespace {

using test::layer_from_yaml;

// Given the code of class 3 as input, the output for class 3 is 0 and for class i it is
// -4 x (the number of places where the codes differ): (1 - (-1))^2 = 4 each.
TEST(Rbf, CodeOfAClassIsAtDistanceZeroFromIt) {
  auto layer = layer_from_yaml("{type: rbf}");
  auto* rbf = dynamic_cast<Rbf*>(layer.get());
  ASSERT_NE(rbf, nullptr);
  test::LayerHarness h(*layer, {Shape{84}}, 2);
  std::copy(rbf->code(3), rbf->code(3) + 84, h.x().data());
  std::fill(h.x().data() + 84, h.x().data() + 168, 0.0f);  // the origin: 84 from every code
  h.forward({});
  for (int64_t i = 0; i < 10; ++i) {
    int differ = 0;
    for (int j = 0; j < 84; ++j) differ += rbf->code(i)[j] != rbf->code(3)[j];
    EXPECT_EQ(h.y()[i], -4.0f * static_cast<float>(differ)) << i;
    EXPECT_EQ(h.y()[10 + i], -84.0f) << i;
  }
  EXPECT_TRUE(layer->params().empty());
}

// The codes are +-1 bitmaps, far apart: every two differ in at least 10 places.
TEST(Rbf, CodesAreDistinctBitmaps) {
  Rbf rbf(10);
  for (int64_t a = 0; a < 10; ++a) {
    for (int j = 0; j < 84; ++j) EXPECT_EQ(std::abs(rbf.code(a)[j]), 1.0f);
    for (int64_t b = a + 1; b < 10; ++b) {
      int differ = 0;
      for (int j = 0; j < 84; ++j) differ += rbf.code(a)[j] != rbf.code(b)[j];
      EXPECT_GE(differ, 10) << a << " " << b;
    }
  }
}

TEST(Rbf, GradientCheckAndErrors) {
  auto layer = layer_from_yaml("{type: rbf, classes: 4}");
  test::LayerHarness h(*layer, {Shape{84}}, 3, 7);
  // The outputs are quadratic in x, so a central difference is exact at any step: a
  // large one keeps float rounding of outputs in the hundreds out of the comparison.
  test::GradCheckOptions o;
  o.eps = 0.25;
  h.check(o);
  EXPECT_THROW(layer_from_yaml("{type: rbf, classes: 11}"), ConfigError);
  EXPECT_THROW(Rbf(10).output_shape(Shape{120}), ShapeError);
}

TEST(Losses, MapCriterionWorkedExample) {
  MapCriterion loss(1.0);
  // s = [1, 2, 3], label 2: log(e^-1 + e + e^2 + e^3) - 3 = 0.41972; the gradient is the
  // softmax over the classes and the rubbish class, minus the one-hot label.
  Tensor y(Shape{1, 3});
  y[0] = 1, y[1] = 2, y[2] = 3;
  Tensor dy(Shape{1, 3});
  const int32_t label[] = {2};
  const LossStats s = loss.evaluate(y.view(), Targets{label, {}}, dy.view(), 1.0f);
  EXPECT_NEAR(s.loss, 0.41971665, 1e-6);
  EXPECT_EQ(s.correct, 1);
  EXPECT_NEAR(dy[0], 0.08894682, 1e-6);
  EXPECT_NEAR(dy[1], 0.24178252, 1e-6);
  EXPECT_NEAR(dy[2], 0.65723302 - 1, 1e-6);
  Rng rng(3);
  Tensor r(Shape{4, 5});
  test::randomize(r.span(), rng);
  const int32_t labels[] = {0, 4, 2, 2};
  test::check_loss_gradient(MapCriterion(0.5), r, Targets{labels, {}});
}

}  // namespace
}  // namespace hubel::layers
