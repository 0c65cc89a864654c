// Batch and layer normalization: worked examples, running statistics, evaluation mode,
// gradient checks on flat and convolutional inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "layers/norm.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {

namespace {
const StepContext kTrain{true, 1, 0, 0};
const StepContext kEval{false, 1, 0, 0};
}  // namespace

TEST(BatchNorm, NormalizesEachChannelOverBatchAndPositions) {
  auto bn = test::layer_from_yaml("{type: batchnorm, momentum: 0.5, eps: 1.0e-12}", "bn");
  // 2 samples, 2 channels, 2 positions. Channel 0 holds 1,2 | 3,4; channel 1 holds 10 everywhere
  // but one 14.
  test::LayerHarness h(*bn, {Shape{2, 2}}, 2);
  const float x[] = {1, 2, 10, 10, 3, 4, 10, 14};
  std::copy(x, x + 8, h.x().data());
  std::fill(h.w(0).span().begin(), h.w(0).span().end(), 1.0f);  // gamma
  h.w(0)[1] = 2;
  std::fill(h.w(1).span().begin(), h.w(1).span().end(), 0.0f);  // beta
  h.w(1)[1] = 1;
  h.forward(kTrain);
  // Channel 0: mean 2.5, variance 1.25.
  const double s0 = 1 / std::sqrt(1.25);
  EXPECT_NEAR(h.y()[0], -1.5 * s0, 1e-6);
  EXPECT_NEAR(h.y()[5], 1.5 * s0, 1e-6);
  // Channel 1: mean 11, variance 3; gamma 2, beta 1.
  EXPECT_NEAR(h.y()[2], 1 + 2 * (-1 / std::sqrt(3.0)), 1e-6);
  EXPECT_NEAR(h.y()[7], 1 + 2 * (3 / std::sqrt(3.0)), 1e-6);
  // Running statistics with momentum 0.5 from (0, 1): mean 1.25 and 5.5; unbiased variances
  // 5/3 and 4 give (1 + 5/3)/2 and (1 + 4)/2.
  EXPECT_NEAR(h.w(2)[0], 1.25, 1e-6);
  EXPECT_NEAR(h.w(2)[1], 5.5, 1e-6);
  EXPECT_NEAR(h.w(3)[0], (1 + 5.0 / 3) / 2, 1e-6);
  EXPECT_NEAR(h.w(3)[1], 2.5, 1e-6);
}

TEST(BatchNorm, EvaluationUsesTheRunningStatisticsAndDoesNotChangeThem) {
  auto bn = test::layer_from_yaml("{type: batchnorm, eps: 1.0e-12}", "bn");
  test::LayerHarness h(*bn, {Shape{3}}, 4);
  h.w(0)[0] = 2, h.w(0)[1] = 1, h.w(0)[2] = 1;    // gamma
  h.w(1)[0] = 0.5, h.w(1)[1] = 0, h.w(1)[2] = 0;  // beta
  h.w(2)[0] = 1, h.w(2)[1] = 0, h.w(2)[2] = 0;    // running mean
  h.w(3)[0] = 4, h.w(3)[1] = 1, h.w(3)[2] = 1;    // running variance
  h.forward(kEval);
  for (int r = 0; r < 4; ++r) {
    EXPECT_NEAR(h.y()[r * 3], 2 * (h.x()[r * 3] - 1) / 2 + 0.5, 1e-6);
    EXPECT_NEAR(h.y()[r * 3 + 1], h.x()[r * 3 + 1], 1e-6);
  }
  EXPECT_EQ(h.w(2)[0], 1.0f);
  EXPECT_EQ(h.w(3)[0], 4.0f);
  // Training mode gives zero-mean outputs per feature instead.
  h.forward(kTrain);
  for (int c = 0; c < 3; ++c) {
    double mean = 0;
    for (int r = 0; r < 4; ++r) mean += h.y()[r * 3 + c];
    EXPECT_NEAR(mean / 4, h.w(1)[c], 1e-5);
  }
}

TEST(BatchNorm, GradientCheckTrainingModeFlatAndConvolutional) {
  auto flat = test::layer_from_yaml("{type: batchnorm}", "bn");
  test::LayerHarness h(*flat, {Shape{5}}, 6);
  h.check();
  auto conv = test::layer_from_yaml("{type: batchnorm, sync: false}", "bn");
  test::LayerHarness hc(*conv, {Shape{3, 4, 5}}, 4);
  hc.check();
}

TEST(BatchNorm, GradientCheckEvaluationMode) {
  auto bn = test::layer_from_yaml("{type: batchnorm}", "bn");
  test::LayerHarness h(*bn, {Shape{2, 3}}, 3);
  test::GradCheckOptions o;
  o.ctx = kEval;
  h.check(o);
}

TEST(BatchNorm, RunningStatisticsAreBuffersAveragedOnlyWhenPerRank) {
  auto synced = test::layer_from_yaml("{type: batchnorm}", "bn");
  const auto s = synced->param_specs(std::vector<Shape>{Shape{8, 3, 3}});
  ASSERT_EQ(s.size(), 4u);
  EXPECT_FALSE(s[0].buffer);
  EXPECT_EQ(s[0].shape, Shape{8});
  EXPECT_TRUE(s[2].buffer);
  EXPECT_FALSE(s[2].average_over_ranks);
  auto local = test::layer_from_yaml("{type: batchnorm, sync: false}", "bn");
  EXPECT_TRUE(local->param_specs(std::vector<Shape>{Shape{8}})[3].average_over_ranks);
  EXPECT_TRUE(synced->reduces_across_ranks());
  EXPECT_FALSE(local->reduces_across_ranks());
  EXPECT_THROW(test::layer_from_yaml("{type: batchnorm, momentum: 0}"), ConfigError);
  EXPECT_THROW(test::layer_from_yaml("{type: batchnorm, eps: -1}"), ConfigError);
}

TEST(LayerNorm, NormalizesEachSampleOverAllItsValues) {
  auto ln = test::layer_from_yaml("{type: layernorm, eps: 1.0e-12}", "ln");
  test::LayerHarness h(*ln, {Shape{2, 2}}, 2);
  const float x[] = {1, 2, 3, 4, 5, 5, 5, 9};
  std::copy(x, x + 8, h.x().data());
  std::fill(h.w(0).span().begin(), h.w(0).span().end(), 1.0f);
  h.w(0)[1] = 3;
  std::fill(h.w(1).span().begin(), h.w(1).span().end(), 0.0f);
  h.forward(kTrain);
  // Sample 0: mean 2.5, variance 1.25; channel 1 (values 3, 4) has gamma 3.
  const double s = 1 / std::sqrt(1.25);
  EXPECT_NEAR(h.y()[0], -1.5 * s, 1e-6);
  EXPECT_NEAR(h.y()[3], 3 * 1.5 * s, 1e-6);
  // Sample 1: mean 6, variance 3.
  EXPECT_NEAR(h.y()[4], -1 / std::sqrt(3.0), 1e-6);
  EXPECT_NEAR(h.y()[7], 3 * 3 / std::sqrt(3.0), 1e-6);
  EXPECT_EQ(ln->param_specs(std::vector<Shape>{Shape{2, 2}}).size(), 2u);
}

TEST(LayerNorm, GradientCheck) {
  auto flat = test::layer_from_yaml("{type: layernorm}", "ln");
  test::LayerHarness h(*flat, {Shape{7}}, 3);
  h.check();
  auto conv = test::layer_from_yaml("{type: layernorm}", "ln");
  test::LayerHarness hc(*conv, {Shape{3, 2, 4}}, 3);
  hc.check();
}

}  // namespace hubel::layers
