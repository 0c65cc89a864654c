// Dropout: the identity in evaluation; in training a kept fraction near 1 - p scaled by
// 1/(1-p); a mask that depends on (seed, step, sample position), not on how the batch is
// split across ranks; gradients through the same mask.
#include <gtest/gtest.h>

#include "layers/dropout.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {

TEST(Dropout, EvaluationIsTheIdentityAndTrainingScalesTheKept) {
  auto d = test::layer_from_yaml("{type: dropout, rate: 0.25}", "drop");
  test::LayerHarness h(*d, {Shape{1000}}, 4);
  h.forward({false, 1, 0, 0});
  for (int64_t i = 0; i < h.y().numel(); ++i) ASSERT_EQ(h.y()[i], h.x()[i]);
  h.forward({true, 1, 5, 0});
  int64_t kept = 0;
  for (int64_t i = 0; i < h.y().numel(); ++i) {
    if (h.y()[i] != 0) {
      ++kept;
      ASSERT_FLOAT_EQ(h.y()[i], h.x()[i] / 0.75f);
    }
  }
  EXPECT_NEAR(static_cast<double>(kept) / 4000, 0.75, 0.03);
}

TEST(Dropout, TheMaskDependsOnSeedStepAndSampleNotOnTheSplit) {
  auto d = test::layer_from_yaml("{type: dropout, rate: 0.5}", "drop");
  test::LayerHarness whole(*d, {Shape{64}}, 4);
  for (auto& v : whole.x().span()) v = 1;
  whole.forward({true, 9, 3, 100});  // rows are samples 100..103 of the global batch
  const std::vector<float> all(whole.y().span().begin(), whole.y().span().end());
  // A rank that holds samples 102 and 103 only.
  auto d2 = test::layer_from_yaml("{type: dropout, rate: 0.5}", "drop");
  test::LayerHarness half(*d2, {Shape{64}}, 2);
  for (auto& v : half.x().span()) v = 1;
  half.forward({true, 9, 3, 102});
  for (int64_t i = 0; i < 128; ++i) ASSERT_EQ(half.y()[i], all[static_cast<size_t>(128 + i)]);
  // Another step or seed: another mask.
  whole.forward({true, 9, 4, 100});
  EXPECT_NE(all, std::vector<float>(whole.y().span().begin(), whole.y().span().end()));
}

TEST(Dropout, GradientCheckWithAFixedMask) {
  auto d = test::layer_from_yaml("{type: dropout, rate: 0.3}", "drop");
  test::LayerHarness h(*d, {Shape{3, 4}}, 5);
  h.check();  // the check's context is fixed, so is the mask
  EXPECT_THROW(test::layer_from_yaml("{type: dropout, rate: 1}"), ConfigError);
}

}  // namespace hubel::layers
