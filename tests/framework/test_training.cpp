// One-rank training end to end: an MLP learns the spirals, deterministically, and the
// thread count does not change a single bit of the weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "comm/communicator.hpp"
#include "datasets/loader.hpp"
#include "datasets/spirals.hpp"
#include "framework/config.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/runtime.hpp"
#include "framework/schedule.hpp"
#include "framework/trainer.hpp"
#include "layers/builtin.hpp"

namespace hubel {

namespace {

const char* kMlp =
    "model:\n"
    "  input: [2]\n"
    "  layers:\n"
    "    - {type: dense, units: 64, init: he_uniform}\n"
    "    - {type: relu}\n"
    "    - {type: dense, units: 64, init: he_uniform}\n"
    "    - {type: relu}\n"
    "    - {type: dense, units: 2}\n"
    "  loss: softmax_cross_entropy\n"
    "data: {}\n"
    "optimizer: {type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}\n"
    "train: {epochs: 30, batch: 32, seed: 42}\n";

struct TrainRun {
  std::vector<float> weights;
  std::vector<float> initial_state, state;  // parameters, frozen ones and buffers
  std::vector<ParamInfo> info;
  std::vector<EpochMetrics> history;
  double train_accuracy;
};

TrainRun train(int threads, const std::vector<std::string>& sets = {}) {
  Runtime runtime(threads);
  Config c = Config::parse(kMlp, "mlp.yaml");
  for (const auto& s : sets) c.apply_override(s);
  Experiment exp = Experiment::from_config(c);
  BuiltModel m = build_model(exp.model, layers::builtin_registry());
  exp.data.finish();
  datasets::Spirals train_set({1000, 2, 1.25, 0.03, 7}, "train");
  datasets::Spirals test_set({500, 2, 1.25, 0.03, 8}, "test");
  m.net.build(exp.train.batch, exp.train.seed);
  TrainRun r;
  r.initial_state.assign(m.net.state().begin(), m.net.state().end());
  auto opt = Optimizer::create(exp.optimizer, m.net);
  auto sched = Schedule::create(exp.schedule, opt->base_lr(), exp.train.epochs);
  comm::LocalCommunicator comm;
  Trainer trainer(m.net, *m.loss, *opt, *sched, comm, exp.train);
  datasets::LoaderOptions lo{exp.train.batch, 0, 1, exp.train.shuffle, false, true, exp.train.seed, 2};
  datasets::Loader train_loader(train_set, nullptr, lo);
  lo.shuffle = false;
  datasets::Loader test_loader(test_set, nullptr, lo), train_eval(train_set, nullptr, lo);
  runtime.run([&] {
    r.history = trainer.fit(train_loader, &test_loader);
    const LossStats s = trainer.evaluate(train_eval);
    r.train_accuracy = static_cast<double>(s.correct) / s.count;
  });
  r.weights.assign(m.net.params().begin(), m.net.params().end());
  r.state.assign(m.net.state().begin(), m.net.state().end());
  r.info = m.net.param_info();
  return r;
}

}  // namespace

TEST(Training, MlpLearnsSpirals) {
  const TrainRun r = train(2);
  ASSERT_EQ(r.history.size(), 30u);
  EXPECT_GE(r.train_accuracy, 0.95);
  EXPECT_GE(r.history.back().test_accuracy, 0.95);
  // A linear classifier gets about 50% on spirals; the first epoch is far from the last.
  EXPECT_LT(r.history.front().train_accuracy, 0.9);
  EXPECT_LT(r.history.back().train_loss, 0.2 * r.history.front().train_loss);
  EXPECT_EQ(r.history.back().steps, 30 * 32);  // ceil(1000 / 32) steps per epoch
}

TEST(Training, BitwiseIdenticalWhateverTheThreadCount) {
  const TrainRun one = train(1, {"train.epochs=3"});
  const TrainRun two = train(2, {"train.epochs=3"});
  const TrainRun again = train(2, {"train.epochs=3"});
  ASSERT_EQ(one.weights.size(), two.weights.size());
  EXPECT_EQ(0, std::memcmp(one.weights.data(), two.weights.data(), one.weights.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(two.weights.data(), again.weights.data(), two.weights.size() * sizeof(float)));
  EXPECT_EQ(one.history.back().train_loss, two.history.back().train_loss);
  const TrainRun other = train(2, {"train.epochs=3", "train.seed=43"});
  EXPECT_NE(0, std::memcmp(one.weights.data(), other.weights.data(), one.weights.size() * sizeof(float)));
}

TEST(Training, MaxStepsStopsEarly) {
  const TrainRun r = train(1, {"train.max_steps=10"});
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_EQ(r.history.back().steps, 10);
}

TEST(Training, SchedulesDriveRateAndMomentum) {
  // A plateau rule demanding 50% improvement per epoch must fire; momentum follows its table.
  const TrainRun r =
      train(1, {"train.epochs=4", "schedule={type: plateau, gamma: 0.5, threshold: 0.5, momentum: {0: 0.5, 2: 0.9}}"});
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_FLOAT_EQ(r.history[0].momentum, 0.5f);
  EXPECT_FLOAT_EQ(r.history[1].momentum, 0.5f);
  EXPECT_FLOAT_EQ(r.history[2].momentum, 0.9f);
  int reductions = 0;
  double lr = 0.1;
  for (const auto& m : r.history) {
    EXPECT_NEAR(m.lr, lr, 1e-8);  // the rate of epoch e follows the reductions before it
    if (m.lr_reduced) ++reductions, lr *= 0.5;
  }
  EXPECT_GE(reductions, 1);
  // Cosine with warm-up: the last epoch ends near zero.
  const TrainRun c = train(1, {"train.epochs=2", "schedule={type: cosine, warmup_steps: 10}"});
  EXPECT_LT(c.history.back().lr, 1e-3);
  EXPECT_THROW(train(1, {"optimizer={type: adam, lr: 0.01}", "schedule={type: constant, momentum: {0: 0.5}}"}),
               ConfigError);
}

TEST(Training, DataThatDoesNotFitIsRejected) {
  Config c = Config::parse(kMlp, "mlp.yaml");
  Experiment exp = Experiment::from_config(c);
  BuiltModel m = build_model(exp.model, layers::builtin_registry());
  m.net.build(32, 1);
  auto opt = Optimizer::create(exp.optimizer, m.net);
  auto sched = Schedule::create(exp.schedule, opt->base_lr(), exp.train.epochs);
  comm::LocalCommunicator comm;
  Trainer trainer(m.net, *m.loss, *opt, *sched, comm, exp.train);
  datasets::Spirals three({100, 3, 1, 0.1, 1}, "three");
  datasets::Loader loader(three, nullptr, {32, 0, 1, true, false, false, 1, 0});
  try {
    trainer.check_data(loader);
    FAIL() << "three classes accepted by a two-output network";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("make the last layer output 3"), std::string::npos) << e.what();
  }
}

namespace {
// Are the values of a layer's entries bitwise equal in two states?
bool layer_unchanged(const TrainRun& r, const std::string& layer) {
  bool any = false;
  for (const auto& p : r.info)
    if (p.layer == layer) {
      any = true;
      if (std::memcmp(r.initial_state.data() + p.offset, r.state.data() + p.offset, p.size * sizeof(float)) != 0)
        return false;
    }
  EXPECT_TRUE(any) << "no layer " << layer;
  return true;
}
}  // namespace

TEST(Training, FrozenLayersAreBitwiseUnchanged) {
  // The first layer frozen: nothing before it trains, so it gets no gradient at all.
  const TrainRun first = train(2, {"train.epochs=2", "model.freeze=[dense1]"});
  EXPECT_TRUE(layer_unchanged(first, "dense1"));
  EXPECT_FALSE(layer_unchanged(first, "dense2"));
  EXPECT_EQ(first.weights.size(), first.state.size() - 64 * 2 - 64);
  // A middle layer frozen: the gradient passes through it to dense1, which trains.
  const TrainRun middle = train(2, {"train.epochs=2", "model.freeze=[dense2]"});
  EXPECT_TRUE(layer_unchanged(middle, "dense2"));
  EXPECT_FALSE(layer_unchanged(middle, "dense1"));
  EXPECT_FALSE(layer_unchanged(middle, "dense3"));
  EXPECT_GE(middle.history.back().train_accuracy, 0.7);
}

// Batch norm, layer norm and dropout (its masks too) give the same bits on 1 and 2 threads.
TEST(Training, BatchNormTrainsAndIsBitwiseIdenticalWhateverTheThreadCount) {
  const std::vector<std::string> sets{
      "train.epochs=5",
      "model.layers=[{type: dense, units: 64}, {type: batchnorm}, {type: relu}, {type: dropout, rate: 0.2}, "
      "{type: dense, units: 64}, {type: layernorm}, {type: relu}, {type: dense, units: 2}]"};
  const TrainRun one = train(1, sets);
  const TrainRun two = train(2, sets);
  ASSERT_EQ(one.state.size(), two.state.size());
  EXPECT_EQ(0, std::memcmp(one.state.data(), two.state.data(), one.state.size() * sizeof(float)));
  // The running statistics moved from (0, 1) and are saved with the state.
  EXPECT_FALSE(layer_unchanged(one, "batchnorm1"));
  int buffers = 0;
  for (const auto& p : one.info) buffers += p.buffer;
  EXPECT_EQ(buffers, 2);
  EXPECT_GE(one.history.back().test_accuracy, 0.8);
}

TEST(Training, DivergenceStopsAtTheFirstNonFiniteLossNamingStepAndLayer) {
  try {
    train(1, {"optimizer.lr=1.0e+30", "optimizer.momentum=0"});
    ADD_FAILURE() << "a diverging run finished";
  } catch (const NumericError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("at epoch 1, step 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the first non-finite value is in the output of layer 'dense"), std::string::npos) << msg;
  }
}

TEST(Training, NonFiniteGradientsAreFoundByLayer) {
  Config c = Config::parse(kMlp, "mlp.yaml");
  Experiment exp = Experiment::from_config(c);
  BuiltModel m = build_model(exp.model, layers::builtin_registry());
  exp.data.finish();
  m.net.build(4, 1);
  EXPECT_FALSE(m.net.first_nonfinite_gradient());
  for (const auto& p : m.net.param_info())
    if (p.full_name() == "dense2/b") m.net.grads()[p.offset + 3] = std::numeric_limits<float>::infinity();
  const auto bad = m.net.first_nonfinite_gradient();
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->what, "the gradient of dense2/b");
  for (auto& v : m.net.input(4).span()) v = 0;
  m.net.input(4).span()[5] = std::nanf("");
  m.net.forward(4, {});
  EXPECT_EQ(m.net.first_nonfinite_output(4)->what, "the input minibatch (the data)");
}

}  // namespace hubel
