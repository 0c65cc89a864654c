// Fine-tuning: weights loaded by name with a replaced head, errors that say what to do;
// buffers (batch norm running statistics) travel with checkpoints.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "framework/checkpoint.hpp"
#include "framework/config.hpp"
#include "framework/hdf5.hpp"
#include "framework/net.hpp"
#include "framework/optimizer.hpp"
#include "framework/schedule.hpp"
#include "layers/builtin.hpp"
#include "tests/temp_dir.hpp"

namespace hubel {

namespace fs = std::filesystem;

namespace {
Net make(int head_units, const std::string& head_name = "head") {
  const std::string yaml =
      cat("input: [2, 4, 4]\nlayers:\n"
          "  - {name: conv, type: conv2d, filters: 3, kernel: 3}\n"
          "  - {name: bn, type: batchnorm}\n"
          "  - {type: relu}\n  - {type: flatten}\n"
          "  - {name: ",
          head_name, ", type: dense, units: ", head_units, "}\n");
  Net net = Net::from_config(Config::parse(yaml, "m.yaml"), layers::builtin_registry());
  net.build(4, 3);
  return net;
}

using test::TempDir;

std::vector<float> values(const Net& net, const std::string& full_name) {
  for (const auto& p : net.param_info())
    if (p.full_name() == full_name) return {net.state().begin() + p.offset, net.state().begin() + p.offset + p.size};
  ADD_FAILURE() << "no " << full_name;
  return {};
}
}  // namespace

TEST(FineTune, WeightsLoadByNameAndANewHeadStartsFresh) {
  TempDir dir;
  Net trained = make(10);
  // Stand-ins for training: distinct values everywhere, running statistics included.
  for (size_t i = 0; i < trained.state().size(); ++i) trained.state()[i] = 0.001f * static_cast<float>(i % 997);
  const std::string file = (dir.path / "weights.h5").string();
  export_weights(file, trained);

  Net five = make(5);
  const std::vector<float> fresh_head = values(five, "head/w");
  const WeightsReport r = load_weights_by_name(file, five, {"head"});
  EXPECT_EQ(r.fresh, (std::vector<std::string>{"head/w", "head/b"}));
  EXPECT_TRUE(r.unused.empty());
  for (const char* n : {"conv/w", "conv/b", "bn/gamma", "bn/beta", "bn/running_mean", "bn/running_var"})
    EXPECT_EQ(values(five, n), values(trained, n)) << n;
  EXPECT_EQ(values(five, "head/w"), fresh_head);
  EXPECT_EQ(r.values, 3 * 2 * 9 + 3 + 4 * 3);

  // Without exclude the head's shape differs: the error says what to do.
  Net other = make(5);
  try {
    load_weights_by_name(file, other, {});
    ADD_FAILURE() << "a shape mismatch was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("head/w has shape [10, 12] there but [5, 12]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.weights.exclude"), std::string::npos);
  }
  // A head of another name is missing from the file; the old head is reported unused.
  Net renamed = make(5, "new_head");
  EXPECT_THROW(load_weights_by_name(file, renamed, {}), DataError);
  const WeightsReport r2 = load_weights_by_name(file, renamed, {"new_*"});
  EXPECT_EQ(r2.unused, (std::vector<std::string>{"head/b", "head/w"}));
  EXPECT_THROW(load_weights_by_name(file, renamed, {"new_*", "nothing*"}), ConfigError);
  EXPECT_THROW(load_weights_by_name((dir.path / "missing.h5").string(), renamed, {}), DataError);
}

TEST(FineTune, CheckpointsCarryBuffersAndOptimizerStateOnlyForTrainableParameters) {
  TempDir dir;
  Net net = make(4);
  for (const auto& p : net.param_info())
    if (p.buffer)
      for (int64_t i = 0; i < p.size; ++i) net.state()[p.offset + i] = 2.5f + static_cast<float>(i);
  const Config oc = Config::parse("{type: sgd, lr: 0.1, momentum: 0.9}");
  auto opt = Optimizer::create(oc, net);
  auto sched = Schedule::create(std::nullopt, opt->base_lr(), 1);
  const std::string file = (dir.path / "ckpt.h5").string();
  save_checkpoint(file, net, *opt, *sched, CheckpointMeta{});
  Net back = make(4);
  auto opt2 = Optimizer::create(oc, back);
  load_checkpoint(file, back, opt2.get(), nullptr);
  EXPECT_EQ(values(back, "bn/running_mean"), (std::vector<float>{2.5f, 3.5f, 4.5f}));
  EXPECT_EQ(values(back, "bn/running_var"), values(net, "bn/running_var"));
  EXPECT_EQ(opt2->state()[0].second.size(), back.params().size());
}

TEST(FineTune, AHistoryThatIsNotCountsIsRefused) {
  // Found by fuzz_checkpoint: a NaN in /metrics/epoch was converted to an integer
  // (undefined behaviour) instead of being refused.
  TempDir dir;
  Net net = make(4);
  auto opt = Optimizer::create(Config::parse("{type: sgd, lr: 0.1}"), net);
  auto sched = Schedule::create(std::nullopt, opt->base_lr(), 1);
  CheckpointMeta meta;
  meta.history.resize(2);
  const std::string file = (dir.path / "ckpt.h5").string();
  save_checkpoint(file, net, *opt, *sched, meta);
  {
    h5::File f = h5::File::open_write(file);
    H5Ldelete(f.id(), "/metrics/epoch", H5P_DEFAULT);
    const double bad[2] = {1, std::nan("")};
    h5::write_dataset(f, "/metrics/epoch", H5T_NATIVE_DOUBLE, {2}, bad);
  }
  try {
    read_checkpoint_meta(file);
    ADD_FAILURE() << "a NaN epoch was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/metrics/epoch: entry 1 is nan, not a count"), std::string::npos) << e.what();
  }
}

}  // namespace hubel
