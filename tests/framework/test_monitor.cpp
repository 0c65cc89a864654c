// Monitored metrics: which epoch is best, when early stopping stops, and how both are read
// from an experiment, on hand-written histories with known answers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/monitor.hpp"
#include "framework/trainer.hpp"
#include "tests/expect_error.hpp"

namespace hubel {
namespace {

using test::error_of;

std::vector<EpochMetrics> history(const std::vector<double>& val_loss, const std::vector<double>& val_acc = {}) {
  std::vector<EpochMetrics> h;
  for (size_t i = 0; i < val_loss.size(); ++i) {
    EpochMetrics m;
    m.epoch = static_cast<int64_t>(i) + 1;
    m.has_test = true;
    m.test_loss = val_loss[i];
    m.test_accuracy = i < val_acc.size() ? val_acc[i] : 0;
    m.train_loss = 10.0 - static_cast<double>(i);
    h.push_back(m);
  }
  return h;
}

TEST(Monitor, BestEpochAndEpochsSinceIt) {
  Monitor loss;  // val_loss, min
  auto b = loss.best_of(history({0.9, 0.7, 0.8, 0.75, 0.71}));
  EXPECT_EQ(b.epoch, 2);
  EXPECT_DOUBLE_EQ(b.value, 0.7);
  EXPECT_EQ(b.since, 3);
  // min_delta 0.05: 0.66 improves on 0.7 by too little; 0.62 (< 0.7 - 0.05) is a new best.
  Monitor coarse{"val_loss", false, 0.05};
  b = coarse.best_of(history({0.9, 0.7, 0.66, 0.68}));
  EXPECT_EQ(b.epoch, 2);
  EXPECT_EQ(b.since, 2);
  EXPECT_EQ(coarse.best_of(history({0.9, 0.7, 0.66, 0.68, 0.62})).epoch, 5);
  // Accuracies are maximized; NaN (a diverged epoch) never improves.
  Monitor acc{"val_accuracy", true, 0};
  b = acc.best_of(history({1, 1, 1, 1}, {0.5, 0.8, std::nan(""), 0.79}));
  EXPECT_EQ(b.epoch, 2);
  EXPECT_EQ(b.since, 2);
  EXPECT_TRUE(std::isnan(Monitor{}.best_of({}).value));
  EXPECT_EQ(Monitor{}.best_of({}).epoch, 0);
}

TEST(EarlyStop, StopsAfterPatienceEpochsWithoutImprovement) {
  EarlyStop s{Monitor{}, 2};
  EXPECT_EQ(s.reason_to_stop(history({0.9, 0.7, 0.8})), "");
  EXPECT_EQ(s.reason_to_stop(history({0.9, 0.7, 0.8, 0.75})),
            "early stop: val_loss has not improved for 2 epochs (best 0.7 at epoch 2)");
  EXPECT_EQ(s.reason_to_stop(history({0.9, 0.7, 0.8, 0.6})), "");  // improved again
  EXPECT_EQ(s.reason_to_stop({}), "");
  EarlyStop train{Monitor{"train_loss", true, 0}, 1};  // max of a falling loss: epoch 1 stays best
  EXPECT_EQ(train.reason_to_stop(history({1, 1})),
            "early stop: train_loss has not improved for 1 epochs (best 10 at epoch 1)");
}

TEST(EarlyStop, ReadFromTheExperimentWithErrorsNamingTheKey) {
  const auto c =
      Config::parse("{epochs: 3, early_stop: {monitor: val_accuracy, patience: 4, min_delta: 0.001}}", "exp.yaml");
  const TrainOptions o = TrainOptions::parse(c);
  ASSERT_TRUE(o.early_stop);
  EXPECT_EQ(o.early_stop->monitor.metric, "val_accuracy");
  EXPECT_TRUE(o.early_stop->monitor.maximize);
  EXPECT_DOUBLE_EQ(o.early_stop->monitor.min_delta, 0.001);
  EXPECT_EQ(o.early_stop->patience, 4);
  EXPECT_EQ(o.early_stop->monitor.describe(), "val_accuracy (max, min_delta 0.001)");
  auto msg =
      error_of<ConfigError>([] { TrainOptions::parse(Config::parse("{early_stop: {monitor: val_acc}}", "exp.yaml")); });
  EXPECT_NE(msg.find("exp.yaml:1:24 (early_stop.monitor)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("val_accuracy"), std::string::npos) << msg;
  msg = error_of<ConfigError>([] { TrainOptions::parse(Config::parse("{early_stop: {patience: 0}}", "exp.yaml")); });
  EXPECT_NE(msg.find("patience must be at least 1"), std::string::npos) << msg;
  msg = error_of<ConfigError>([] { TrainOptions::parse(Config::parse("{early_stop: {patient: 3}}", "exp.yaml")); });
  EXPECT_NE(msg.find("patient"), std::string::npos) << msg;
}

}  // namespace
}  // namespace hubel
