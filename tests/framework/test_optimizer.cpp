// Optimizers: three steps each against values computed by hand; multipliers, clipping and
// weight decay; the Rosenbrock race; schedules against their closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "framework/adagrad.hpp"
#include "framework/adam.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/lars.hpp"
#include "framework/rmsprop.hpp"
#include "framework/run.hpp"
#include "framework/schedule.hpp"
#include "framework/sgd.hpp"
#include "layers/builtin.hpp"
#include "tests/expect_error.hpp"

namespace hubel {

namespace {
// Two parameters: w (3 values, decayed) at offset 0 and b (1 value, not decayed) at 16.
std::vector<ParamInfo> layout() { return {{"l", "w", {3}, 0, 3, true}, {"l", "b", {1}, 16, 1, false}}; }

Optimizer::Common common(float lr, float wd = 0) {
  Optimizer::Common c;
  c.lr = lr;
  c.weight_decay = wd;
  return c;
}

// Runs the gradients gs (one value for w[0]) through an optimizer; returns w[0] after each step.
std::vector<double> run(Optimizer& opt, float lr, std::initializer_list<float> gs) {
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  w[0] = 1;
  std::vector<double> out;
  for (float gi : gs) {
    g[0] = gi;
    opt.step(w, g, lr);
    out.push_back(w[0]);
  }
  return out;
}
}  // namespace

TEST(Sgd, PlainStepsWithWeightDecay) {
  Sgd sgd(common(0.1f, 0.1f), {}, layout(), 32);
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  w[0] = 1, w[1] = -2, w[2] = 0.5, w[16] = 3;
  g[0] = 0.5, g[1] = 0.5, g[2] = -1, g[16] = 1;
  // w <- w - lr (g + wd w), lr 0.1, wd 0.1 on w only.
  sgd.step(w, g, 0.1f, 1.0f);
  EXPECT_FLOAT_EQ(w[0], 0.94f);
  EXPECT_FLOAT_EQ(w[1], -2.03f);
  EXPECT_FLOAT_EQ(w[2], 0.595f);
  EXPECT_FLOAT_EQ(w[16], 2.9f);  // no decay on b
  sgd.step(w, g, 0.1f, 2.0f);    // grad_scale doubles g
  EXPECT_FLOAT_EQ(w[16], 2.7f);
  EXPECT_FLOAT_EQ(w[0], 0.94f - 0.1f * (1.0f + 0.1f * 0.94f));
  sgd.step(w, g, 0.1f, 1.0f);
  EXPECT_NEAR(w[16], 2.6f, 1e-6);
  EXPECT_EQ(sgd.steps(), 3);
}

TEST(Sgd, MomentumThreeSteps) {
  Sgd sgd(common(0.1f), {0.9f, false}, layout(), 32);
  // v1 = -0.1, w = 0.9; v2 = -0.09 - 0.1 = -0.19, w = 0.71; v3 = -0.171 - 0.1 = -0.271, w = 0.439
  const auto w = run(sgd, 0.1f, {1, 1, 1});
  EXPECT_NEAR(w[0], 0.9, 1e-6);
  EXPECT_NEAR(w[1], 0.71, 1e-6);
  EXPECT_NEAR(w[2], 0.439, 1e-6);
  ASSERT_EQ(sgd.state().size(), 1u);
  EXPECT_NEAR(sgd.state()[0].second[0], -0.271f, 1e-6);
}

TEST(Sgd, NesterovThreeSteps) {
  Sgd sgd(common(0.1f), {0.9f, true}, layout(), 32);
  // v <- 0.9 v - 0.1 g; w <- w + 0.9 v - 0.1 g with g = 1:
  // v1 = -0.1, w = 1 - 0.09 - 0.1 = 0.81; v2 = -0.19, w = 0.81 - 0.171 - 0.1 = 0.539;
  // v3 = -0.271, w = 0.539 - 0.2439 - 0.1 = 0.1951.
  const auto w = run(sgd, 0.1f, {1, 1, 1});
  EXPECT_NEAR(w[0], 0.81, 1e-6);
  EXPECT_NEAR(w[1], 0.539, 1e-6);
  EXPECT_NEAR(w[2], 0.1951, 1e-6);
}

TEST(Adagrad, ThreeSteps) {
  Adagrad opt(common(0.1f), {}, layout(), 32);
  // r = 1, 5, 6; w -= 0.1 g / (1e-7 + sqrt(r)) with g = 1, 2, -1.
  const auto w = run(opt, 0.1f, {1, 2, -1});
  EXPECT_NEAR(w[0], 0.90000001, 1e-6);
  EXPECT_NEAR(w[1], 0.81055729, 1e-6);  // 0.9 - 0.2/sqrt(5)
  EXPECT_NEAR(w[2], 0.85138212, 1e-6);  // + 0.1/sqrt(6)
}

TEST(Rmsprop, ThreeSteps) {
  Rmsprop opt(common(0.01f), {}, layout(), 32);
  // r = 0.1, 0.49, 0.541; w -= 0.01 g / sqrt(1e-6 + r) with g = 1, 2, -1.
  const auto w = run(opt, 0.01f, {1, 2, -1});
  EXPECT_NEAR(w[0], 0.96837738, 1e-6);
  EXPECT_NEAR(w[1], 0.93980598, 1e-6);
  EXPECT_NEAR(w[2], 0.95340166, 1e-6);
}

TEST(Adam, ThreeStepsWithBiasCorrection) {
  Adam opt(common(0.001f), {}, layout(), 32);
  // Step 1: s = 0.1, r = 0.001; corrected s = 1, r = 1: w = 1 - 0.001. Then g = 2, -1.
  const auto w = run(opt, 0.001f, {1, 2, -1});
  EXPECT_NEAR(w[0], 0.99900000, 1e-6);
  EXPECT_NEAR(w[1], 0.99803482, 1e-6);
  EXPECT_NEAR(w[2], 0.99761473, 1e-6);
  EXPECT_EQ(opt.steps(), 3);
  EXPECT_EQ(opt.state().size(), 2u);
}

TEST(Adam, AdamWDecouplesWeightDecay) {
  Adam::Options o;
  o.decoupled = true;
  Adam opt(common(0.001f, 0.1f), o, layout(), 32);
  // w <- w - lr wd w first (1 - 1e-4 per step), then the Adam step of the raw gradient.
  const auto w = run(opt, 0.001f, {1, 2, -1});
  EXPECT_NEAR(w[0], 0.99890000, 1e-6);
  EXPECT_NEAR(w[1], 0.99783493, 1e-6);
  EXPECT_NEAR(w[2], 0.99731506, 1e-6);
}

// Three steps of the layer-wise optimizers on w (3 values, decayed: its trust ratio) and b
// (1 value, not decayed: ratio 1), against the formulas in lars.hpp evaluated by hand
// (double precision; the gradients of w change each step, b's are 1, 0.5, -1).
namespace {
void run_layerwise(Optimizer& opt, std::vector<float>& w) {
  const float gw[3][3] = {{0.5f, 0.5f, -1}, {1, -0.5f, 0.25f}, {-0.2f, 0.4f, 0.3f}};
  const float gb[3] = {1, 0.5f, -1};
  w.assign(32, 0.0f);
  w[0] = 1, w[1] = -2, w[2] = 0.5f, w[16] = 3;
  std::vector<float> g(32, 0.0f);
  for (int k = 0; k < 3; ++k) {
    std::copy(gw[k], gw[k] + 3, g.begin());
    g[16] = gb[k];
    opt.step(w, g, 0.1f);
  }
}
}  // namespace

TEST(Lars, ThreeStepsWithTrustRatios) {
  Lars::Options o;
  o.eta = 0.5f;
  o.trust_all = false;
  Lars opt(common(0.1f, 0.1f), o, layout(), 32);
  std::vector<float> w;
  run_layerwise(opt, w);
  // Step ratios 0.78799, 0.83881, 1.46636 (eta ||w|| / (||g|| + wd ||w||)).
  EXPECT_NEAR(opt.ratios()[0], 1.46635649, 1e-5);
  EXPECT_NEAR(w[0], 0.71464218, 1e-5);
  EXPECT_NEAR(w[1], -1.98165773, 1e-5);
  EXPECT_NEAR(w[2], 0.60083389, 1e-5);
  EXPECT_NEAR(w[16], 2.734, 1e-5);  // plain momentum SGD: 3 - 0.1 - 0.14 - 0.026
  EXPECT_EQ(opt.state().size(), 1u);
  // trust_all (LARS's default): b takes its own ratio too (eta |b| / |g| = 1.5 at the first step).
  o.trust_all = true;
  Lars all(common(0.1f, 0.1f), o, layout(), 32);
  std::vector<float> w2(32, 0.0f), g(32, 0.0f);
  w2[16] = 3, g[16] = 1;
  all.step(w2, g, 0.1f);
  EXPECT_NEAR(w2[16], 3 - 0.1 * 1.5, 1e-6);
}

TEST(Lamb, ThreeStepsWithTrustRatios) {
  Lamb opt(common(0.1f, 0.1f), {}, layout(), 32);
  std::vector<float> w;
  run_layerwise(opt, w);
  // Ratios ||w|| / ||u||: 1.38107, 2.04133, 3.25713.
  EXPECT_NEAR(opt.ratios()[0], 3.25713439, 1e-4);
  EXPECT_NEAR(w[0], 0.41055463, 1e-5);
  EXPECT_NEAR(w[1], -2.08064462, 1e-5);
  EXPECT_NEAR(w[2], 0.74617666, 1e-5);
  EXPECT_NEAR(w[16], 2.79570396, 1e-5);  // Adam's step with ratio 1
  EXPECT_EQ(opt.state().size(), 2u);
}

TEST(Lars, ZeroWeightsOrGradientsTakeRatioOne) {
  Lars::Options o;
  o.eta = 0.5f;
  o.momentum = 0;
  Lars opt(common(0.1f), o, layout(), 32);
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  g[0] = 1;  // ||w|| = 0: the first step of a zero-initialized layer is plain SGD
  opt.step(w, g, 0.1f);
  EXPECT_FLOAT_EQ(w[0], -0.1f);
  EXPECT_FLOAT_EQ(opt.ratios()[0], 1.0f);
}

// The linear scaling rule as one switch: lr x batch x accumulate / reference_batch, after
// a warm-up of 5 epochs (at most half the run) unless the schedule has its own.
TEST(Optimizer, ScaleLrWithBatch) {
  auto c = common(0.1f);
  c.scale_lr_with_batch = true;
  c.reference_batch = 128;
  Sgd sgd(c, {}, layout(), 32);
  TrainOptions t;
  t.batch = 64, t.accumulate = 4, t.epochs = 20;
  auto s = create_run_schedule(std::nullopt, sgd, t);  // 0.1 x 256/128 = 0.2
  EXPECT_NEAR(s->lr({0, 0, 10}), 0.2 / 50, 1e-8);      // step 1 of a 50-step warm-up
  EXPECT_NEAR(s->lr({2, 24, 10}), 0.2 * 25 / 50, 1e-8);
  EXPECT_NEAR(s->lr({5, 50, 10}), 0.2, 1e-8);
  EXPECT_NE(s->describe().find("warm-up 5 epochs (optimizer.lr 0.1 x 256/128: scale_lr_with_batch)"), std::string::npos)
      << s->describe();
  t.epochs = 4;  // a short run: half of it
  EXPECT_NEAR(create_run_schedule(std::nullopt, sgd, t)->lr({0, 0, 10}), 0.2 / 20, 1e-8);
  // The schedule's own warm-up wins.
  s = create_run_schedule(Config::parse("{type: constant, warmup_steps: 2}"), sgd, t);
  EXPECT_NEAR(s->lr({0, 0, 10}), 0.1, 1e-8);
  EXPECT_NEAR(s->lr({0, 5, 10}), 0.2, 1e-8);
  // Off: optimizer.lr as it is.
  Sgd plain(common(0.1f), {}, layout(), 32);
  EXPECT_NEAR(create_run_schedule(std::nullopt, plain, t)->lr({0, 0, 10}), 0.1, 1e-7);
  // reference_batch alone is a mistake.
  const auto msg = test::error_of<ConfigError>(
      [] { read_common_options(Config::parse("{type: sgd, lr: 0.1, reference_batch: 256}", "o.yaml")); });
  EXPECT_NE(msg.find("reference_batch is for scale_lr_with_batch: true"), std::string::npos) << msg;
}

TEST(Optimizer, LearningRateAndDecayMultipliersByPattern) {
  auto c = common(0.1f, 0.5f);
  c.rules.push_back({"l/b", 2.0f, 1.0f, true});  // biases: twice the rate, and decayed
  Sgd sgd(c, {}, layout(), 32);
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  w[16] = 1;
  g[16] = 1;
  sgd.step(w, g, 0.1f);
  EXPECT_FLOAT_EQ(w[16], 1 - 0.2f * (1 + 0.5f));
  // A layer name alone matches all its parameters; lr_mult 0 freezes.
  auto frozen = common(0.1f);
  frozen.rules.push_back({"l", 0.0f, -1, true});
  Sgd sgd2(frozen, {}, layout(), 32);
  std::fill(g.begin(), g.end(), 1.0f);
  std::fill(w.begin(), w.end(), 1.0f);
  sgd2.step(w, g, 0.1f);
  EXPECT_EQ(w[0], 1.0f);
  EXPECT_EQ(w[16], 1.0f);
  // A pattern that matches nothing is a typo: an error that lists the names.
  auto typo = common(0.1f);
  typo.rules.push_back({"conv1/*", 2.0f, -1, true});
  const auto msg = test::error_of<ConfigError>([&] { Sgd s(typo, {}, layout(), 32); });
  EXPECT_NE(msg.find("'conv1/*' matches no parameter (parameters are named layer/param: l/w, l/b)"), std::string::npos)
      << msg;
}

TEST(Optimizer, ClippingByGlobalNormAndByValue) {
  auto c = common(1.0f);
  c.clip_norm = 1.0f;
  Sgd sgd(c, {}, layout(), 32);
  std::vector<float> w(32, 0.0f), g(32, 0.0f);
  g[0] = 3, g[16] = 4;  // norm 5
  sgd.step(w, g, 1.0f);
  EXPECT_NEAR(sgd.last_grad_norm(), 5.0, 1e-9);
  EXPECT_FLOAT_EQ(w[0], -0.6f);
  EXPECT_FLOAT_EQ(w[16], -0.8f);
  // The norm is of the scaled gradient: grad_scale 0.1 makes it 0.5, below the limit.
  sgd.step(w, g, 1.0f, 0.1f);
  EXPECT_NEAR(sgd.last_grad_norm(), 0.5, 1e-6);
  EXPECT_FLOAT_EQ(w[0], -0.9f);
  auto v = common(1.0f);
  v.clip_value = 0.5f;
  Sgd clip(v, {}, layout(), 32);
  std::vector<float> w2(32, 0.0f);
  g[1] = -0.25f;
  clip.step(w2, g, 1.0f);
  EXPECT_FLOAT_EQ(w2[0], -0.5f);
  EXPECT_FLOAT_EQ(w2[1], 0.25f);
  EXPECT_FLOAT_EQ(w2[16], -0.5f);
}

TEST(Optimizer, WeightDecaySparesBiasesByDefault) {
  Config c = Config::parse(
      "model:\n  input: [3]\n  layers:\n    - {type: dense, name: fc, units: 2}\n"
      "optimizer: {type: adamw, lr: 0.1, weight_decay: 0.5}\n"
      "optimizer2: {type: sgd, lr: 0.1, weight_decay: 0.5}\n",
      "o.yaml");
  Net net = Net::from_config(c.at("model"), layers::builtin_registry());
  net.build(1, 1);
  std::fill(net.params().begin(), net.params().end(), 1.0f);
  std::fill(net.grads().begin(), net.grads().end(), 0.0f);
  for (const char* section : {"optimizer", "optimizer2"}) {
    auto opt = Optimizer::create(c.at(section), net);
    opt->step(net.params(), net.grads(), 0.1f);
    for (const auto& p : net.param_info()) {
      const float v = net.params()[static_cast<size_t>(p.offset)];
      if (p.name == "b")
        EXPECT_EQ(v, 1.0f) << section;
      else
        EXPECT_LT(v, 1.0f) << section;
    }
    std::fill(net.params().begin(), net.params().end(), 1.0f);
  }
}

TEST(Optimizer, ConfigErrors) {
  Config c = Config::parse(
      "a: {type: adam, lr: -1}\nb: {type: sgd, lr: 0.1, nesterov: true}\nc: {type: rmsprop, lr: 0.1, rho: 1.5}\n"
      "d: {type: adam, lr: 0.1, beta2: 1}\ne: {type: nadam, lr: 0.1}\nf: {type: sgd, lr: 0.1, clip_norm: -1}\n"
      "g: {type: sgd, lr: 0.1, params: [{match: fc, lr_mul: 2}]}\nh: {type: adagrad, lr: 0.1, momentum: 0.9}\n",
      "o.yaml");
  Config m = Config::parse("input: [3]\nlayers:\n  - {type: dense, name: fc, units: 2}\n");
  Net net = Net::from_config(m, layers::builtin_registry());
  net.build(1, 1);
  for (const char* k : {"a", "b", "c", "d", "e", "f", "g", "h"})
    EXPECT_THROW(Optimizer::create(c.at(k), net), ConfigError) << k;
}

// --- Rosenbrock ---------------------------------------------------------------------------

namespace {
double rosenbrock(double x, double y) { return (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x); }

// f after `steps` steps of opt from (-1.5, 2).
double race(Optimizer& opt, float lr, int steps) {
  std::vector<float> w(16, 0.0f), g(16, 0.0f);
  w[0] = -1.5f, w[1] = 2.0f;
  for (int i = 0; i < steps; ++i) {
    const double x = w[0], y = w[1];
    g[0] = static_cast<float>(-2 * (1 - x) - 400 * x * (y - x * x));
    g[1] = static_cast<float>(200 * (y - x * x));
    opt.step(w, g, lr);
  }
  return rosenbrock(w[0], w[1]);
}
}  // namespace

TEST(Optimizer, RosenbrockRace) {
  // From (-1.5, 2), f = 12.5. The rate is what plain gradient descent tolerates here (its
  // stability limit is about 2 / 1900 at the start): the others beat it at the same rate.
  const std::vector<ParamInfo> xy{{"r", "xy", {2}, 0, 2, true}};
  const float lr = 7e-4f;
  const int steps = 11000;
  Sgd gd(common(lr), {}, xy, 16);
  Sgd momentum(common(lr), {0.9f, false}, xy, 16);
  Sgd nesterov(common(lr), {0.9f, true}, xy, 16);
  Rmsprop rms(common(lr), {}, xy, 16);
  Adam adam(common(lr), {}, xy, 16);
  const double f_gd = race(gd, lr, steps), f_mom = race(momentum, lr, steps), f_nes = race(nesterov, lr, steps);
  const double f_rms = race(rms, lr, steps), f_adam = race(adam, lr, steps);
  // Observed (x86-64, GCC 12): gd 6.4e-4, momentum 2.8e-12, Nesterov 4.4e-12, RMSprop 1.1e-4, Adam 2.2e-4.
  EXPECT_GT(f_gd, 4e-4);
  EXPECT_LT(f_gd, 9e-4);
  EXPECT_LT(f_mom, 1e-10);
  EXPECT_LT(f_nes, 1e-10);
  EXPECT_LT(f_rms, 2e-4);
  EXPECT_LT(f_adam, 3.5e-4);
  for (double f : {f_mom, f_nes, f_rms, f_adam}) EXPECT_LT(f, f_gd / 1.8);
}

// --- Schedules ------------------------------------------------------------------------------

namespace {
std::unique_ptr<Schedule> schedule(const std::string& yaml, double lr = 0.1, int64_t epochs = 10) {
  return Schedule::create(Config::parse(yaml, "s.yaml"), lr, epochs);
}
}  // namespace

TEST(Schedule, ClosedForms) {
  auto step = schedule("{type: step, every_epochs: 2, gamma: 0.5}");
  EXPECT_DOUBLE_EQ(step->lr({0, 0, 100}), 0.1);
  EXPECT_DOUBLE_EQ(step->lr({1, 150, 100}), 0.1);
  EXPECT_DOUBLE_EQ(step->lr({2, 200, 100}), 0.05);
  EXPECT_DOUBLE_EQ(step->lr({5, 500, 100}), 0.025);
  EXPECT_DOUBLE_EQ(Schedule::create(std::nullopt, 0.3)->lr({9, 9, 1}), 0.3);
  // a / (b + t) per iteration.
  auto inv = schedule("{type: inverse, a: 2, b: 10}");
  EXPECT_DOUBLE_EQ(inv->lr({0, 0, 100}), 0.2);
  EXPECT_DOUBLE_EQ(inv->lr({0, 90, 100}), 0.02);
  EXPECT_DOUBLE_EQ(schedule("{type: inverse, b: 100}")->lr({3, 300, 100}), 0.1 * 100 / 400);
  auto ex = schedule("{type: exponential, gamma: 0.9}");
  EXPECT_DOUBLE_EQ(ex->lr({3, 0, 1}), 0.1 * 0.9 * 0.9 * 0.9);
  // Cosine over 10 epochs of 100 steps, from 0.1 to 0.01.
  auto cos = schedule("{type: cosine, min_lr: 0.01}");
  EXPECT_DOUBLE_EQ(cos->lr({0, 0, 100}), 0.1);
  EXPECT_NEAR(cos->lr({5, 500, 100}), 0.055, 1e-12);
  EXPECT_NEAR(cos->lr({2, 250, 100}), 0.01 + 0.09 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(cos->lr({10, 1000, 100}), 0.01, 1e-12);
  EXPECT_NEAR(cos->lr({12, 1200, 100}), 0.01, 1e-12);
  // Linear warm-up in front: (t + 1) / W times the schedule.
  auto warm = schedule("{type: step, every_epochs: 1, gamma: 0.5, warmup_steps: 4}");
  EXPECT_DOUBLE_EQ(warm->lr({0, 0, 100}), 0.025);
  EXPECT_DOUBLE_EQ(warm->lr({0, 2, 100}), 0.075);
  EXPECT_DOUBLE_EQ(warm->lr({0, 4, 100}), 0.1);
  EXPECT_DOUBLE_EQ(schedule("{type: constant, warmup_epochs: 0.5}")->lr({0, 24, 100}), 0.1 * 25 / 50);
  // Momentum by epoch.
  auto mom = schedule("{type: constant, momentum: {0: 0.5, 5: 0.9}}");
  EXPECT_FLOAT_EQ(*mom->momentum(0), 0.5f);
  EXPECT_FLOAT_EQ(*mom->momentum(4), 0.5f);
  EXPECT_FLOAT_EQ(*mom->momentum(5), 0.9f);
  EXPECT_FLOAT_EQ(*mom->momentum(50), 0.9f);
  EXPECT_FALSE(step->momentum(0).has_value());
}

TEST(Schedule, PlateauFiresWhenAndOnlyWhenTheRuleSays) {
  // Reduce by 0.1 when the loss improves by less than 1% (patience 0).
  auto p = schedule("{type: plateau, gamma: 0.1, threshold: 0.01}");
  EXPECT_FALSE(p->end_epoch(1.0));    // first: best = 1
  EXPECT_FALSE(p->end_epoch(0.9));    // 10% better
  EXPECT_TRUE(p->end_epoch(0.8999));  // 0.01% better: reduce
  EXPECT_NEAR(p->lr({3, 0, 1}), 0.01, 1e-12);
  EXPECT_TRUE(p->end_epoch(0.95));  // worse: reduce again
  EXPECT_NEAR(p->lr({4, 0, 1}), 0.001, 1e-12);
  EXPECT_FALSE(p->end_epoch(0.5));  // much better
  EXPECT_EQ(p->state().reductions, 2);
  // Patience 1: only a second poor epoch in a row reduces; cooldown 1 skips the next epoch.
  auto q = schedule("{type: plateau, gamma: 0.5, threshold: 0.01, patience: 1, cooldown: 1, min_lr: 0.03}");
  EXPECT_FALSE(q->end_epoch(1.0));
  EXPECT_FALSE(q->end_epoch(1.0));
  EXPECT_FALSE(q->end_epoch(0.5));  // improvement resets the count
  EXPECT_FALSE(q->end_epoch(0.5));
  EXPECT_TRUE(q->end_epoch(0.5));
  EXPECT_DOUBLE_EQ(q->lr({0, 0, 1}), 0.05);
  EXPECT_FALSE(q->end_epoch(0.5));  // cooldown
  EXPECT_FALSE(q->end_epoch(0.5));
  EXPECT_TRUE(q->end_epoch(0.5));
  EXPECT_DOUBLE_EQ(q->lr({0, 0, 1}), 0.03);  // 0.025, floored at min_lr
}

TEST(Schedule, ConfigErrors) {
  for (const char* bad :
       {"{type: step, every_epochs: 0}", "{type: step}", "{type: cosine, epochs: 0}", "{type: exponential, gamma: 1.5}",
        "{type: plateau, patience: -1}", "{type: linear}", "{type: constant, momentum: {1: 0.9}}",
        "{type: constant, momentum: {0: 1.5}}", "{type: constant, warmup_steps: 5, warmup_epochs: 1}",
        "{type: step, every_epochs: 1, gama: 0.5}"})
    EXPECT_THROW(schedule(bad), ConfigError) << bad;
}

}  // namespace hubel
