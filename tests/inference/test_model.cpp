// hubel::Model (inference/model.hpp) and Net::build_inference: a checkpoint of a small
// conv net with batch norm, pooling and a dense head, with a data section that normalizes
// and pads, predicted through the API equals, bit for bit, the training net's evaluation
// forward on the transformed samples; in pieces larger than max_batch, from uint8 and
// float input, and from four threads at once; no gradients are allocated.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "datasets/hdf5_dataset.hpp"
#include "datasets/open.hpp"
#include "framework/checkpoint.hpp"
#include "framework/config.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/random.hpp"
#include "framework/schedule.hpp"
#include "inference/model.hpp"
#include "layers/builtin.hpp"
#include "tests/expect_error.hpp"
#include "tests/temp_dir.hpp"

namespace hubel {
namespace {

const char* kExperiment = R"(model:
  input: [1, 14, 14]
  layers:
    - {type: conv2d, name: c1, filters: 4, kernel: 3, padding: same, bias: none}
    - {type: batchnorm, name: bn}
    - {type: relu}
    - {type: maxpool2d, kernel: 2}
    - {type: conv2d, name: c2, filters: 6, kernel: 3, activation: relu}
    - {type: flatten}
    - {type: dense, name: fc, units: 3}
  loss: softmax_cross_entropy
data: {file: data.h5, train: train, val_fraction: 0, normalize: file, pad: 1}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1, batch: 8, seed: 5}
)";

struct Fixture {
  test::TempDir dir;
  std::string checkpoint = dir / "ckpt.h5";
  bool written = write_data();
  Config config = [this] {
    Config c = Config::parse(kExperiment, "exp.yaml");
    c.set_base(dir.path.string());
    return c;
  }();
  BuiltModel reference = build_model(config.at("model"), layers::builtin_registry());
  datasets::Splits data = datasets::open(config.at("data"));

  // 16 samples [1, 12, 12] of three named classes: the file's statistics normalize.
  bool write_data() {
    datasets::DatasetContents c;
    c.classes = {"ant", "bee", "cat"};
    c.splits.push_back({"train", Shape{1, 12, 12}, pixels(16, 77), {}});
    for (int i = 0; i < 16; ++i) c.splits[0].labels.push_back(i % 3);
    datasets::write_dataset_file(dir / "data.h5", c);
    return true;
  }

  Fixture() {
    reference.net.build(64, 5);
    // Every parameter and buffer random (variances positive), so nothing is trivial.
    Rng rng(9);
    for (const auto& p : reference.net.param_info())
      for (int64_t i = 0; i < p.size; ++i)
        reference.net.state()[static_cast<size_t>(p.offset + i)] = p.name == "running_var"
                                                                       ? static_cast<float>(rng.uniform(0.5, 2.0))
                                                                       : static_cast<float>(rng.uniform(-1, 1));
    Experiment exp = Experiment::from_config(config);
    auto opt = Optimizer::create(exp.optimizer, reference.net);
    auto sched = Schedule::create(exp.schedule, opt->base_lr(), 1);
    CheckpointMeta meta;
    meta.experiment = kExperiment;
    meta.experiment_dir = dir.path.string();
    save_checkpoint(checkpoint, reference.net, *opt, *sched, meta);
  }
  // Stored samples: n x [1, 12, 12] of pixel values.
  std::vector<uint8_t> pixels(int64_t n, uint64_t seed) const {
    Rng rng(seed);
    std::vector<uint8_t> p(static_cast<size_t>(n * 144));
    for (auto& v : p) v = static_cast<uint8_t>(rng.below(256));
    return p;
  }
  // The training net's evaluation forward on the transformed samples.
  std::vector<float> expected(const std::vector<uint8_t>& px, int64_t n) {
    std::vector<float> raw(px.begin(), px.end()), y;
    std::vector<int64_t> ids(static_cast<size_t>(n), 0);
    data.transform->apply(ConstTensorView(raw.data(), Shape{n, 1, 12, 12}), ids, 0, 0, false, reference.net.input(n));
    const ConstTensorView out = reference.net.forward(n, StepContext{});
    return {out.data(), out.data() + out.numel()};
  }
};

TEST(Model, PredictsWhatTheTrainingNetEvaluatesBitForBit) {
  Fixture f;
  Model::Options o;
  o.max_batch = 8;  // 20 samples: pieces of 8, 8 and 4
  const Model m = Model::load(f.checkpoint, o);
  EXPECT_EQ(m.input_shape(), (Shape{1, 12, 12}));
  EXPECT_EQ(m.output_shape(), Shape{3});
  EXPECT_EQ(m.parameters(), f.reference.net.num_params());
  EXPECT_EQ(m.class_names(), (std::vector<std::string>{"ant", "bee", "cat"}));
  const int64_t n = 20;
  const auto px = f.pixels(n, 1);
  const auto want = f.expected(px, n);
  std::vector<float> y(static_cast<size_t>(n * 3), -1.0f), yf(y.size(), -1.0f);
  m.predict(px.data(), n, y.data());
  const std::vector<float> fx(px.begin(), px.end());
  m.predict(fx.data(), n, yf.data());
  EXPECT_EQ(y, want);
  EXPECT_EQ(yf, want);
  // classify: the largest output and its softmax probability.
  const auto c = m.classify(px.data(), n);
  ASSERT_EQ(c.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* r = want.data() + i * 3;
    const int64_t best = std::max_element(r, r + 3) - r;
    double sum = 0;
    for (int k = 0; k < 3; ++k) sum += std::exp(static_cast<double>(r[k]) - r[best]);
    EXPECT_EQ(c[static_cast<size_t>(i)].label, best);
    EXPECT_NEAR(c[static_cast<size_t>(i)].probability, 1.0 / sum, 1e-6);
  }
  m.predict(px.data(), 0, y.data());  // nothing to do
}

// Four callers at once, each call on `threads` threads (2: a batch split between replicas).
void concurrent_callers(int call_threads) {
  Fixture f;
  Model::Options o;
  o.max_batch = 16;
  o.threads = call_threads;
  const Model m = Model::load(f.dir / "ckpt.h5", o);
  constexpr int kThreads = 4;
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<std::vector<float>> want;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(f.pixels(5 + 7 * t, 100 + static_cast<uint64_t>(t)));
    want.push_back(f.expected(inputs.back(), 5 + 7 * t));
  }
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      const int64_t n = 5 + 7 * t;
      std::vector<float> y(static_cast<size_t>(n * 3));
      for (int rep = 0; rep < 25; ++rep) {
        m.predict(inputs[static_cast<size_t>(t)].data(), n, y.data());
        if (y != want[static_cast<size_t>(t)]) ++wrong[static_cast<size_t>(t)];
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, std::vector<int>(kThreads, 0));
}

TEST(Model, ConcurrentCallersGetTheSameAnswers) { concurrent_callers(2); }
// (What the ThreadSanitizer run checks: oneTBB's own task objects, shared by threads that
// steal from each other, are reported as races by an uninstrumented libtbb.)
TEST(Model, ConcurrentCallersOneThreadEach) { concurrent_callers(1); }

TEST(Model, AnInferenceNetHoldsNoGradientsAndSharesItsOutputs) {
  Fixture f;
  BuiltModel m = build_model(f.config.at("model"), layers::builtin_registry());
  m.net.build_inference(64);
  EXPECT_TRUE(m.net.inference_only());
  EXPECT_EQ(m.net.grads().size(), 0u);
  EXPECT_EQ(m.net.state().size(), f.reference.net.state().size());
  // Seven outputs of decreasing size take three buffers (each output is read by the next
  // layer only), against seven outputs and gradient buffers for training.
  EXPECT_LT(m.net.activation_bytes() * 2, f.reference.net.activation_bytes());
  EXPECT_EQ(test::error_of<Error>([&] { m.net.backward(1, StepContext{}); }),
            "Net::backward: this net was built for inference only");
  // A replica reads another net's parameters in place.
  BuiltModel r = build_model(f.config.at("model"), layers::builtin_registry());
  std::copy(f.reference.net.state().begin(), f.reference.net.state().end(), m.net.state().begin());
  r.net.build_inference(4, &m.net);
  EXPECT_EQ(r.net.state().size(), 0u);
}

TEST(Model, LoadsExportedWeightsWithTheirExperiment) {
  Fixture f;
  const std::string weights = f.dir / "weights.h5";
  export_weights(weights, f.checkpoint);
  EXPECT_EQ(test::error_of<ConfigError>([&] { Model::load(weights); }),
            weights + ": holds exported weights and no experiment; name the experiment file too");
  {
    std::ofstream e(f.dir / "exp.yaml");
    e << kExperiment;
  }
  Model::Options o;
  o.experiment = f.dir / "exp.yaml";
  const Model m = Model::load(weights, o);
  const auto px = f.pixels(3, 5);
  std::vector<float> y(9);
  m.predict(px.data(), 3, y.data());
  EXPECT_EQ(y, f.expected(px, 3));
}

TEST(Model, ErrorsNameTheFile) {
  Fixture f;
  EXPECT_NE(test::error_of<Error>([&] { Model::load(f.dir / "none.h5"); }).find("none.h5"), std::string::npos);
  Model::Options o;
  o.max_batch = 0;
  EXPECT_EQ(test::error_of<ConfigError>([&] { Model::load(f.checkpoint, o); }),
            "Model::load: max_batch must be positive; got 0");
}

}  // namespace
}  // namespace hubel
