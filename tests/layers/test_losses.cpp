// Losses: hand-computed examples, gradient checks, bad labels.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/error.hpp"
#include "layers/losses.hpp"
#include "tests/gradcheck.hpp"

namespace hubel::layers {

namespace {
Tensor tensor(Shape s, std::vector<float> v) {
  Tensor t(s);
  std::copy(v.begin(), v.end(), t.data());
  return t;
}
}  // namespace

TEST(Losses, SoftmaxCrossEntropyWorkedExample) {
  SoftmaxCrossEntropy loss;
  // Logits [1, 2, 3], label 2: loss = log(e + e^2 + e^3) - 3 = 0.40760596;
  // dy = softmax - onehot = [0.09003057, 0.24472847, 0.66524096 - 1].
  Tensor y = tensor({2, 3}, {1, 2, 3, 1000, 0, -1000});
  Tensor dy(Shape{2, 3});
  const int32_t labels[] = {2, 0};
  LossStats s = loss.evaluate(y.view(), Targets{labels, {}}, dy.view(), 1.0f);
  // The second row is huge but stable: loss 0, correct.
  EXPECT_NEAR(s.loss, 0.40760596, 1e-6);
  EXPECT_EQ(s.correct, 2);
  EXPECT_EQ(s.count, 2);
  EXPECT_NEAR(dy[0], 0.09003057, 1e-6);
  EXPECT_NEAR(dy[1], 0.24472847, 1e-6);
  EXPECT_NEAR(dy[2], 0.66524096 - 1, 1e-6);
  EXPECT_NEAR(dy[3], 0.0, 1e-7);
  // scale multiplies the gradient only.
  LossStats half = loss.evaluate(y.view(), Targets{labels, {}}, dy.view(), 0.5f);
  EXPECT_NEAR(half.loss, 0.40760596, 1e-6);
  EXPECT_NEAR(dy[0], 0.5 * 0.09003057, 1e-6);
}

TEST(Losses, MeanSquaredErrorWorkedExample) {
  MeanSquaredError loss;
  // y = [1, 2], t = [0, 4]: ((1)^2 + (-2)^2) / 2 = 2.5; dy = 2 (y - t) / 2 = [1, -2].
  Tensor y = tensor({1, 2}, {1, 2});
  Tensor t = tensor({1, 2}, {0, 4});
  Tensor dy(Shape{1, 2});
  LossStats s = loss.evaluate(y.view(), Targets{nullptr, t.view()}, dy.view(), 1.0f);
  EXPECT_DOUBLE_EQ(s.loss, 2.5);
  EXPECT_FLOAT_EQ(dy[0], 1.0f);
  EXPECT_FLOAT_EQ(dy[1], -2.0f);
  // With labels: one-hot targets with on/off values (LeNet-5 style +-1).
  MeanSquaredError pm(1.0f, -1.0f);
  Tensor y3 = tensor({1, 3}, {0.5f, -1, 1});
  const int32_t label[] = {0};
  // errors: -0.5, 0, 2 -> (0.25 + 0 + 4) / 3
  EXPECT_NEAR(pm.evaluate(y3.view(), Targets{label, {}}, TensorView(), 1.0f).loss, 4.25 / 3, 1e-7);
}

TEST(Losses, SigmoidCrossEntropyWorkedExample) {
  SigmoidCrossEntropy loss;
  // z = 0, t = 1: log 2; z = 2, t = 0: 2 + log(1 + e^-2) = 2.126928.
  Tensor y = tensor({2, 1}, {0, 2});
  Tensor dy(Shape{2, 1});
  const int32_t labels[] = {1, 0};
  LossStats s = loss.evaluate(y.view(), Targets{labels, {}}, dy.view(), 1.0f);
  EXPECT_NEAR(s.loss, std::log(2.0) + 2.126928, 1e-6);
  EXPECT_FLOAT_EQ(dy[0], 0.5f - 1.0f);
  EXPECT_NEAR(dy[1], 1.0 / (1.0 + std::exp(-2.0)), 1e-6);
  EXPECT_EQ(s.correct, 0);  // z = 0 is not > 0; z = 2 predicts 1
  // Extreme logits stay finite.
  Tensor big = tensor({1, 1}, {-500});
  const int32_t one[] = {1};
  EXPECT_NEAR(loss.evaluate(big.view(), Targets{one, {}}, TensorView(), 1.0f).loss, 500.0, 1e-3);
}

TEST(Losses, GradientChecks) {
  Rng rng(5);
  Tensor y(Shape{4, 5});
  test::randomize(y.span(), rng);
  const int32_t labels[] = {0, 4, 2, 2};
  Tensor t(Shape{4, 5});
  test::randomize(t.span(), rng);
  Tensor probs(Shape{4, 5});
  for (int64_t i = 0; i < 20; ++i) probs[i] = static_cast<float>(rng.uniform());
  test::check_loss_gradient(SoftmaxCrossEntropy(), y, Targets{labels, {}});
  test::check_loss_gradient(MeanSquaredError(), y, Targets{nullptr, t.view()});
  test::check_loss_gradient(MeanSquaredError(), y, Targets{labels, {}});
  test::check_loss_gradient(SigmoidCrossEntropy(), y, Targets{nullptr, probs.view()});
  test::check_loss_gradient(SigmoidCrossEntropy(), y, Targets{labels, {}});
}

TEST(Losses, LabelsOutOfRangeAndShapeChecks) {
  SoftmaxCrossEntropy loss;
  Tensor y(Shape{2, 3});
  const int32_t labels[] = {1, 3};
  try {
    loss.evaluate(y.view(), Targets{labels, {}}, TensorView(), 1.0f);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("label 3 in row 1 of the minibatch is outside [0, 3)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(loss.check(Shape{3}, 4), ShapeError);
  EXPECT_THROW(loss.check(Shape{3}, 0), ShapeError);
  EXPECT_NO_THROW(loss.check(Shape{3}, 3));
  EXPECT_NO_THROW(SigmoidCrossEntropy().check(Shape{1}, 2));
  EXPECT_THROW(SigmoidCrossEntropy().check(Shape{1}, 3), ShapeError);
  EXPECT_THROW(MeanSquaredError().check(Shape{2}, 3), ShapeError);
}

}  // namespace hubel::layers
