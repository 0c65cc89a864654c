// SGD steps against hand-computed values.
#include <gtest/gtest.h>

#include <vector>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/schedule.hpp"
#include "framework/sgd.hpp"

namespace hubel {

namespace {
// Two parameters: w (3 values, decayed) at offset 0 and b (1 value, not decayed) at 16.
std::vector<ParamInfo> layout() { return {{"l", "w", {3}, 0, 3, true}, {"l", "b", {1}, 16, 1, false}}; }
}  // namespace

TEST(Sgd, PlainStepsWithWeightDecay) {
  Sgd sgd({0.0f, 0.1f}, layout(), 32);
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  w[0] = 1, w[1] = -2, w[2] = 0.5, w[16] = 3;
  g[0] = 0.5, g[1] = 0.5, g[2] = -1, g[16] = 1;
  // w <- w - lr (g + wd w), lr 0.1, wd 0.1 on w only.
  sgd.step(w, g, 0.1f, 1.0f);
  EXPECT_FLOAT_EQ(w[0], 1 - 0.1f * (0.5f + 0.1f * 1));    // 0.94
  EXPECT_FLOAT_EQ(w[1], -2 - 0.1f * (0.5f - 0.1f * 2));   // -2.03
  EXPECT_FLOAT_EQ(w[2], 0.5f - 0.1f * (-1 + 0.1f * 0.5f));  // 0.595
  EXPECT_FLOAT_EQ(w[16], 3 - 0.1f * 1);                   // 2.9: no decay on b
  sgd.step(w, g, 0.1f, 2.0f);                             // grad_scale doubles g
  EXPECT_FLOAT_EQ(w[16], 2.9f - 0.1f * 2);
  EXPECT_FLOAT_EQ(w[0], 0.94f - 0.1f * (1.0f + 0.1f * 0.94f));
  EXPECT_EQ(sgd.steps(), 2);
}

TEST(Sgd, MomentumThreeSteps) {
  Sgd sgd({0.9f, 0.0f}, layout(), 32);
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  w[0] = 1;
  g[0] = 1;
  // v1 = -0.1, w = 0.9; v2 = -0.09 - 0.1 = -0.19, w = 0.71; v3 = -0.171 - 0.1 = -0.271, w = 0.439
  sgd.step(w, g, 0.1f, 1.0f);
  EXPECT_FLOAT_EQ(w[0], 0.9f);
  sgd.step(w, g, 0.1f, 1.0f);
  EXPECT_FLOAT_EQ(w[0], 0.71f);
  sgd.step(w, g, 0.1f, 1.0f);
  EXPECT_NEAR(w[0], 0.439f, 1e-6);
  ASSERT_EQ(sgd.state().size(), 1u);
  EXPECT_NEAR(sgd.state()[0].second[0], -0.271f, 1e-6);
  // Alignment padding stays zero.
  for (int i = 3; i < 16; ++i) EXPECT_EQ(w[i], 0.0f);
}

TEST(Schedule, StepHalvesTheRate) {
  Config c = Config::parse("s: {type: step, every_epochs: 2, gamma: 0.5}\nbad: {type: step, every_epochs: 0}\n", "s.yaml");
  auto s = Schedule::create(c.at("s"), 0.1);
  EXPECT_DOUBLE_EQ(s->lr(0, 0), 0.1);
  EXPECT_DOUBLE_EQ(s->lr(1, 50), 0.1);
  EXPECT_DOUBLE_EQ(s->lr(2, 100), 0.05);
  EXPECT_DOUBLE_EQ(s->lr(5, 100), 0.025);
  EXPECT_DOUBLE_EQ(Schedule::create(std::nullopt, 0.3)->lr(9, 9), 0.3);
  EXPECT_THROW(Schedule::create(c.at("bad"), 0.1), ConfigError);
}

}  // namespace hubel
