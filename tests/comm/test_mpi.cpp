// Data-parallel training under mpirun (ctest runs this with -np 1, 2 and 4): collectives
// and the bucketed gradient sync against hand-computed sums, N ranks against one,
// bitwise reproducibility across runs, threads and bucket sizes, and gradient
// accumulation against a larger batch. Without mpirun it runs as one rank.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "comm/gradient_sync.hpp"
#include "comm/mpi_communicator.hpp"
#include "datasets/loader.hpp"
#include "framework/config.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/random.hpp"
#include "framework/runtime.hpp"
#include "framework/schedule.hpp"
#include "framework/trainer.hpp"
#include "layers/builtin.hpp"

namespace hubel {

comm::Communicator* g_comm = nullptr;

namespace {

comm::Communicator& world() { return *g_comm; }

TEST(Collectives, AllreduceAndBroadcastGiveTheHandSums) {
  const int W = world().size(), r = world().rank();
  std::vector<float> v(1000);
  for (int i = 0; i < 1000; ++i) v[i] = static_cast<float>((r + 1) * i);
  world().allreduce_sum(v);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[i], static_cast<float>(i * W * (W + 1) / 2)) << i;
  std::vector<double> d{static_cast<double>(r), 1.0};
  world().allreduce_sum(d);
  EXPECT_EQ(d[0], W * (W - 1) / 2.0);
  EXPECT_EQ(d[1], W);
  std::vector<float> b(7, static_cast<float>(r + 10));
  world().broadcast(b, W - 1);
  for (float x : b) EXPECT_EQ(x, static_cast<float>(W - 1 + 10));
  // Non-blocking: several in flight, completed in any order.
  std::vector<float> a(100, static_cast<float>(r)), c(50, 1.0f);
  auto ra = world().start_allreduce_sum(a), rc = world().start_allreduce_sum(c);
  while (!world().test(rc)) {
  }
  while (!world().test(ra)) {
  }
  EXPECT_EQ(a[99], W * (W - 1) / 2.0f);
  EXPECT_EQ(c[0], static_cast<float>(W));
}

// The ordered allreduce: the sum grouped as the fixed tree ((r0 + r1) + (r2 + r3)), bit for
// bit, for values whose float sums depend on the grouping, and lengths shorter than the
// number of ranks, odd, and of several pieces.
TEST(Collectives, OrderedAllreduceAddsInTheTreeOfRanks) {
  const int W = world().size(), r = world().rank();
  if (W & (W - 1)) GTEST_SKIP() << W << " ranks: not a power of two";
  auto value = [](int rank, int64_t i) {
    Rng rng(hash_combine(static_cast<uint64_t>(rank) + 1, static_cast<uint64_t>(i)));
    return std::ldexp(rng.normal(), static_cast<int>(rng.below(40)) - 20);
  };
  for (const int64_t n : {int64_t{3}, int64_t{1001}, 3 * comm::GradientSync::kPiece + 17}) {
    std::vector<float> f(static_cast<size_t>(n));
    std::vector<double> d(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(d[i] = value(r, i));
    world().set_ordered(true);
    world().allreduce_sum(f);
    world().allreduce_sum(d);
    world().set_ordered(false);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> tf(static_cast<size_t>(W));
      std::vector<double> td(static_cast<size_t>(W));
      for (int k = 0; k < W; ++k) tf[k] = static_cast<float>(td[k] = value(k, i));
      for (int s = 1; s < W; s *= 2)
        for (int k = 0; k + s < W; k += 2 * s) tf[k] += tf[k + s], td[k] += td[k + s];
      wrong += tf[0] != f[i] || td[0] != d[i];
    }
    EXPECT_EQ(wrong, 0) << "of " << n << " on " << W << " ranks";
  }
}

TEST(GradientSync, BucketsGiveTheHandSumsForEveryArenaAndBucketSize) {
  const int W = world().size(), r = world().rank();
  const int64_t P = comm::GradientSync::kPiece;
  for (int64_t size : {int64_t{1000}, 2 * P + 5, 3 * P}) {
    for (int64_t bucket : {int64_t{1}, P, 2 * P, 10 * P}) {
      std::vector<float> g(static_cast<size_t>(size));
      for (int64_t i = 0; i < size; ++i) g[static_cast<size_t>(i)] = static_cast<float>((r + 1) * (i % 1000));
      comm::GradientSync sync(world(), size, bucket);
      sync.begin(g, 0);
      // Backward reports progress in steps, as layers finish.
      for (int64_t done = 0; done < size; done += 777) sync.ready(done);
      sync.finish();
      for (int64_t i = 0; i < size; ++i)
        ASSERT_EQ(g[static_cast<size_t>(i)], static_cast<float>((i % 1000) * W * (W + 1) / 2))
            << size << " " << bucket << " " << i;
      EXPECT_EQ(sync.buckets(), (size + sync.bucket_floats() - 1) / sync.bucket_floats());
    }
  }
}

// A small image classification set: class c has a bright square at a class-dependent
// place plus noise; sample i is a pure function of i.
class Squares : public datasets::Dataset {
 public:
  explicit Squares(int64_t n) : n_(n) {}
  std::string name() const override { return "squares"; }
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return {1, 8, 8}; }
  int64_t num_classes() const override { return 3; }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const override {
    for (size_t k = 0; k < idx.size(); ++k) {
      const int64_t i = idx[k];
      const int c = static_cast<int>(i % 3);
      Rng rng(static_cast<uint64_t>(i) * 7919 + 1);
      float* p = x.data() + static_cast<int64_t>(k) * 64;
      for (int j = 0; j < 64; ++j) p[j] = static_cast<float>(0.3 * rng.normal());
      for (int a = 0; a < 3; ++a)
        for (int b2 = 0; b2 < 3; ++b2) p[(1 + 2 * c + a) * 8 + 1 + 2 * c + b2] += 1.0f;
      if (labels) labels[k] = c;
    }
  }

 private:
  int64_t n_;
};

const char* kCnn =
    "model:\n"
    "  input: [1, 8, 8]\n"
    "  layers:\n"
    "    - {type: conv2d, filters: 4, kernel: 3, padding: same}\n"
    "    - {type: relu}\n"
    "    - {type: maxpool2d, kernel: 2}\n"
    "    - {type: conv2d, filters: 6, kernel: 3}\n"
    "    - {type: tanh}\n"
    "    - {type: flatten}\n"
    "    - {type: dense, units: 23000}\n"  // an arena of three allreduce pieces
    "    - {type: relu}\n"
    "    - {type: dense, units: 3}\n"
    "  loss: softmax_cross_entropy\n"
    "data: {}\n"
    "optimizer: {type: sgd, lr: 0.02, momentum: 0.9, weight_decay: 1.0e-4}\n"
    "train: {epochs: 2, batch: 16, seed: 5, max_steps: 6}\n";

struct TrainResult {
  std::vector<float> weights;
  std::vector<float> state;  // with the buffers
  std::vector<double> losses;
};

// Trains kCnn on `comm` (each rank its share of every global batch).
TrainResult train(comm::Communicator& comm, int threads, const std::vector<std::string>& sets = {}) {
  Config c = Config::parse(kCnn, "cnn.yaml");
  for (const auto& s : sets) c.apply_override(s);
  Experiment exp = Experiment::from_config(c);
  BuiltModel m = build_model(exp.model, layers::builtin_registry());
  exp.data.finish();
  Runtime runtime(threads);
  m.net.build(exp.train.batch / comm.size(), exp.train.seed);
  if (comm.size() > 1) comm.broadcast(m.net.state(), 0);
  auto opt = Optimizer::create(exp.optimizer, m.net);
  auto sched = Schedule::create(exp.schedule, opt->base_lr(), exp.train.epochs);
  Squares data(48);
  datasets::Loader loader(data, nullptr,
                          {exp.train.batch, comm.rank(), comm.size(), true, false, false, exp.train.seed, 1});
  Trainer trainer(m.net, *m.loss, *opt, *sched, comm, exp.train);
  TrainResult r;
  runtime.run([&] {
    for (const auto& h : trainer.fit(loader, nullptr)) r.losses.push_back(h.train_loss);
  });
  r.weights.assign(m.net.params().begin(), m.net.params().end());
  r.state.assign(m.net.state().begin(), m.net.state().end());
  return r;
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-12;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return diff / scale;
}

// Exact training (the default where it applies: here 1, 2 and 4 ranks, batch 16 in 8
// chunks of 2): N ranks give one rank's weights and losses bit for bit; with
// train.exact=false they agree only approximately.
TEST(DataParallel, NRanksEqualOneRankBitForBit) {
  comm::LocalCommunicator alone;
  const TrainResult one = train(alone, 1);
  const TrainResult many = train(world(), 1);
  ASSERT_EQ(one.weights.size(), many.weights.size());
  EXPECT_EQ(0, std::memcmp(one.weights.data(), many.weights.data(), one.weights.size() * sizeof(float)))
      << "on " << world().size() << " ranks: max relative difference "
      << max_relative_difference(many.weights, one.weights);
  EXPECT_EQ(one.losses, many.losses);
  const TrainResult loose = train(world(), 1, {"train.exact=false"});
  EXPECT_LT(max_relative_difference(loose.weights, one.weights), 1e-5) << "on " << world().size() << " ranks";
  EXPECT_NE(one.weights, train(alone, 1, {"train.max_steps=2"}).weights);  // the steps did something
}

TEST(DataParallel, BitwiseAcrossRunsThreadsAndBucketSizes) {
  const TrainResult a = train(world(), 1);
  const TrainResult b = train(world(), 2, {"train.bucket_mb=100"});   // one bucket of three pieces
  const TrainResult c = train(world(), 2, {"train.bucket_mb=0.01"});  // one piece per bucket: three buckets
  EXPECT_GT(a.weights.size(), 2u * comm::GradientSync::kPiece);
  ASSERT_EQ(a.weights.size(), b.weights.size());
  EXPECT_EQ(0, std::memcmp(a.weights.data(), b.weights.data(), a.weights.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(a.weights.data(), c.weights.data(), a.weights.size() * sizeof(float)));
  // Every rank holds the same weights, bit for bit.
  std::vector<float> root = a.weights;
  world().broadcast(root, 0);
  EXPECT_EQ(0, std::memcmp(root.data(), a.weights.data(), root.size() * sizeof(float)));
}

TEST(DataParallel, AccumulationEqualsALargerBatch) {
  const TrainResult big = train(world(), 1, {"train.batch=16", "train.max_steps=3"});
  const std::string small_batch = cat("train.batch=", 8 >= world().size() ? 8 : world().size());
  if (8 % world().size() != 0) GTEST_SKIP() << "a batch of 8 does not split over " << world().size() << " ranks";
  const TrainResult acc = train(world(), 1, {small_batch, "train.accumulate=2", "train.max_steps=3"});
  EXPECT_LT(max_relative_difference(acc.weights, big.weights), 1e-5);
  // Exact: accumulation on N ranks equals accumulation on one, bit for bit.
  comm::LocalCommunicator alone;
  const TrainResult acc_one = train(alone, 1, {small_batch, "train.accumulate=2", "train.max_steps=3"});
  EXPECT_EQ(0, std::memcmp(acc.weights.data(), acc_one.weights.data(), acc.weights.size() * sizeof(float)));
}

// Batch norm after a convolution and after the wide dense layer, and dropout: the
// convolution's statistics are reduced while the gradient buckets of the layers above are
// in flight on the communication thread.
const char* kNormalized =
    "model.layers=[{type: conv2d, filters: 4, kernel: 3, padding: same}, {type: batchnorm}, {type: relu}, "
    "{type: maxpool2d, kernel: 2}, {type: conv2d, filters: 6, kernel: 3}, {type: tanh}, {type: flatten}, "
    "{type: dense, units: 23000}, {type: batchnorm, momentum: 0.3}, {type: relu}, {type: dropout, rate: 0.3}, "
    "{type: dense, units: 3}]";

TEST(DataParallel, SynchronizedBatchNormAndDropoutOnNRanksEqualOneRank) {
  comm::LocalCommunicator alone;
  const TrainResult one = train(alone, 1, {kNormalized, "train.bucket_mb=0.01"});
  const TrainResult many = train(world(), 2, {kNormalized, "train.bucket_mb=0.01"});
  ASSERT_EQ(one.state.size(), many.state.size());
  // Weights and running statistics, after 6 steps of global batch 16, bit for bit.
  EXPECT_EQ(0, std::memcmp(one.state.data(), many.state.data(), one.state.size() * sizeof(float)))
      << "on " << world().size() << " ranks: max relative difference "
      << max_relative_difference(many.state, one.state);
  EXPECT_NE(one.state, train(alone, 1, {kNormalized, "train.max_steps=2"}).state);
}

TEST(DataParallel, PerRankBatchNormStatisticsAreAveragedToTheSameValuesOnEveryRank) {
  const std::string local =
      std::string(kNormalized)
          .replace(std::string(kNormalized).find("{type: batchnorm}"), 17, "{type: batchnorm, sync: false}");
  const TrainResult r = train(world(), 1, {local});
  std::vector<float> root = r.state;
  world().broadcast(root, 0);
  EXPECT_EQ(0, std::memcmp(root.data(), r.state.data(), root.size() * sizeof(float)));
  for (float v : r.state) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace hubel

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<hubel::comm::Communicator> comm = hubel::comm::make_communicator(&argc, &argv);
  hubel::g_comm = comm.get();
  // Only rank 0 prints the test list; every rank runs every test.
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  if (comm->rank() == 0) std::printf("test_mpi: %d rank(s)\n", comm->size());
  const int rc = RUN_ALL_TESTS();
  // The job fails if any rank failed.
  std::vector<double> failed{static_cast<double>(rc != 0)};
  comm->allreduce_sum(failed);
  return failed[0] > 0 ? 1 : 0;
}
