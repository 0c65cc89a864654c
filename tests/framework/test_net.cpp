// The Net: shape inference, errors naming layers, arena layout, graph gradients.
#include <gtest/gtest.h>

#include <sstream>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/experiment.hpp"
#include "framework/net.hpp"
#include "layers/activations.hpp"
#include "layers/builtin.hpp"
#include "layers/dense.hpp"
#include "layers/joins.hpp"
#include "layers/losses.hpp"
#include "tests/expect_error.hpp"
#include "tests/gradcheck.hpp"

namespace hubel {

namespace {

Net net_from(const std::string& yaml) {
  Config c = Config::parse(yaml, "net.yaml");
  Net net = Net::from_config(c.at("model"), layers::builtin_registry());
  return net;
}

using test::error_of;

}  // namespace

TEST(Net, SequentialShapesAndParameterCounts) {
  Net net = net_from(
      "model:\n"
      "  input: [1, 28, 28]\n"
      "  layers:\n"
      "    - {type: flatten}\n"
      "    - {type: dense, name: fc1, units: 100}\n"
      "    - {type: relu}\n"
      "    - {type: dense, name: fc2, units: 10}\n");
  EXPECT_EQ(net.size(), 4u);
  EXPECT_EQ(net.output_shape(), (Shape{10}));
  EXPECT_EQ(net.num_params(), 784 * 100 + 100 + 100 * 10 + 10);
  EXPECT_EQ(net.layer(0).name(), "flatten1");
  EXPECT_EQ(net.layer(2).name(), "relu1");
  std::ostringstream os;
  net.summary(os);
  EXPECT_NE(os.str().find("78500   157K  100 units"), std::string::npos) << os.str();  // 2*784*100 + 100 flops
  EXPECT_NE(os.str().find("79510 parameters"), std::string::npos) << os.str();
}

TEST(Net, ArenasAreFlatAlignedAndFilledFromTheEnd) {
  Net net = net_from(
      "model:\n  input: [3]\n  layers:\n"
      "    - {type: dense, name: a, units: 5}\n"
      "    - {type: dense, name: b, units: 2}\n");
  net.build(4, 1);
  const auto& info = net.param_info();
  ASSERT_EQ(info.size(), 4u);
  // The last layer comes first: backward fills the gradient arena from offset 0.
  EXPECT_EQ(info[0].full_name(), "b/w");
  EXPECT_EQ(info[0].offset, 0);
  EXPECT_EQ(info[1].full_name(), "b/b");
  EXPECT_EQ(info[1].offset, 16);
  EXPECT_EQ(info[2].full_name(), "a/w");
  EXPECT_EQ(info[3].full_name(), "a/b");
  EXPECT_FALSE(info[1].decay);
  EXPECT_TRUE(info[2].decay);
  for (const auto& p : info) EXPECT_EQ(p.offset % 16, 0);
  EXPECT_EQ(net.params().size(), net.grads().size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(net.params().data()) % 64, 0u);
  EXPECT_EQ(net.num_params(), 10 + 2 + 15 + 5);
  // Biases start at zero, weights do not.
  for (int i = 0; i < 2; ++i) EXPECT_EQ(net.params()[info[1].offset + i], 0.0f);
  EXPECT_NE(net.params()[info[0].offset], 0.0f);
}

TEST(Net, InitializationDependsOnSeedAndNamesOnly) {
  auto make = [](const std::string& extra) {
    Net n = net_from("model:\n  input: [3]\n  layers:\n" + extra +
                     "    - {type: dense, name: a, units: 4}\n    - {type: dense, name: b, units: 2}\n");
    n.build(2, 9);
    return n;
  };
  Net n1 = make("");
  Net n2 = make("    - {type: dense, name: first, units: 3}\n");
  // Layer b's weights are the same whatever comes before it.
  const auto& i1 = n1.param_info();
  const auto& i2 = n2.param_info();
  EXPECT_EQ(i1[0].full_name(), "b/w");
  EXPECT_EQ(i2[0].full_name(), "b/w");
  for (int k = 0; k < 8; ++k) EXPECT_EQ(n1.params()[i1[0].offset + k], n2.params()[i2[0].offset + k]);
}

TEST(Net, ShapeErrorsNameTheLayerAndLine) {
  const std::string msg = error_of<ConfigError>([] {
    net_from(
        "model:\n  input: [2]\n  layers:\n    - {type: dense, units: 6}\n    - {type: reshape, name: r, shape: [4, "
        "2]}\n");
  });
  EXPECT_NE(msg.find("net.yaml:5:7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer 'r' (reshape)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot reshape [6]"), std::string::npos) << msg;
}

TEST(Net, UnknownLayerTypeListsTheKnownOnes) {
  const std::string msg =
      error_of<ConfigError>([] { net_from("model:\n  input: [2]\n  layers:\n    - {type: dens, units: 6}\n"); });
  EXPECT_NE(msg.find("net.yaml:4:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown layer type 'dens'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dense"), std::string::npos) << msg;
}

TEST(Net, UnknownLayerKeyIsAnError) {
  const std::string msg =
      error_of<ConfigError>([] { net_from("model:\n  input: [2]\n  layers:\n    - {type: dense, unit: 6}\n"); });
  // The misspelling of a required key is named where it is, with the key meant.
  EXPECT_NE(msg.find("net.yaml:4:21 (model.layers[0].unit): unknown key 'unit'; did you mean 'units'?"),
            std::string::npos)
      << msg;
  // A required key simply absent (nothing near it) is missing.
  const std::string missing =
      error_of<ConfigError>([] { net_from("model:\n  input: [2]\n  layers:\n    - {type: dense, size: 6}\n"); });
  EXPECT_NE(missing.find("missing required key 'model.layers[0].units'"), std::string::npos) << missing;
  const std::string msg2 = error_of<ConfigError>(
      [] { net_from("model:\n  input: [2]\n  layers:\n    - {type: dense, units: 6, activation: relu}\n"); });
  EXPECT_NE(msg2.find("unknown key 'activation'"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("net.yaml:4:31"), std::string::npos) << msg2;
}

TEST(Net, GraphErrors) {
  EXPECT_NE(error_of<ConfigError>([] {
              net_from("model:\n  input: [2]\n  layers:\n    - {type: dense, units: 2, inputs: [nowhere]}\n");
            }).find("input 'nowhere' is not a layer defined before it"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([] {
              net_from(
                  "model:\n  input: [2]\n  layers:\n    - {type: dense, name: a, units: 2}\n    - {type: dense, name: "
                  "a, units: 2}\n");
            }).find("'a' is used twice"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([] {
              net_from(
                  "model:\n  input: [2]\n  layers:\n    - {type: dense, name: a, units: 2}\n    - {type: add, inputs: "
                  "[a]}\n");
            }).find("adds two or more inputs"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([] {
              net_from(
                  "model:\n  input: [2]\n  layers:\n    - {type: dense, name: a, units: 3}\n"
                  "    - {type: dense, name: b, units: 2, inputs: input}\n    - {type: add, inputs: [a, b]}\n");
            }).find("input 0 is [3], input 1 is [2]"),
            std::string::npos);
  // A layer that leads nowhere is a mistake, found at build time.
  Net net = net_from(
      "model:\n  input: [2]\n  layers:\n    - {type: dense, name: dead, units: 3}\n"
      "    - {type: dense, name: out, units: 2, inputs: input}\n");
  EXPECT_NE(error_of<ConfigError>([&] { net.build(2, 1); }).find("layer 'dead' feeds nothing"), std::string::npos);
  EXPECT_NE(error_of<ConfigError>([] {
              net_from("model:\n  input: [0, 3]\n  layers:\n    - {type: relu}\n");
            }).find("positive sizes"),
            std::string::npos);
}

TEST(Net, ModelNeedsALossAndChecksIt) {
  Config c = Config::parse("model:\n  input: [2]\n  layers:\n    - {type: dense, units: 2}\n  loss: hinge\n", "m.yaml");
  EXPECT_NE(error_of<ConfigError>([&] {
              build_model(c.at("model"), layers::builtin_registry());
            }).find("unknown loss 'hinge'"),
            std::string::npos);
}

// A graph with fan-out (t1 feeds three layers), an add and a concat: the Net must sum the
// gradients that flow back into t1.
TEST(Net, GraphGradientsWithFanOutAddAndConcat) {
  Net net = net_from(
      "model:\n  input: [6]\n  layers:\n"
      "    - {type: dense, name: fc1, units: 8}\n"
      "    - {type: tanh, name: t1}\n"
      "    - {type: dense, name: a, units: 5, inputs: t1}\n"
      "    - {type: dense, name: b, units: 5, inputs: t1}\n"
      "    - {type: add, name: s, inputs: [a, b]}\n"
      "    - {type: concat, name: c, inputs: [s, t1]}\n"
      "    - {type: dense, name: out, units: 3}\n");
  net.build(4, 5);
  EXPECT_EQ(net.output_shape(), (Shape{3}));
  Rng rng(3);
  test::randomize(net.input(4).span(), rng);
  std::vector<int32_t> labels{0, 2, 1, 2};
  layers::SoftmaxCrossEntropy loss;
  test::GradCheckOptions o;
  test::check_net_gradients(net, loss, 4, Targets{labels.data(), {}}, o);
}

// Gradient buffers of a chain share two slabs, sized by the largest gradients that are
// alive together; a graph keeps fan-out buffers apart (its gradient check is above).
TEST(Net, GradientBuffersOfAChainShareTwoSlabs) {
  Net net = net_from(
      "model:\n  input: [10]\n  layers:\n"
      "    - {type: dense, units: 20}\n"
      "    - {type: tanh}\n"
      "    - {type: dense, units: 30}\n"
      "    - {type: tanh}\n"
      "    - {type: dense, units: 5}\n");
  net.build(8, 1);
  // Backward: the loss writes out's gradient (5); then tanh's (30) while 5 is read; dense 30's
  // (30) reusing the slab of 5; tanh 20's into the slab of 30, dense 20's into the other.
  // Without sharing: 20 + 20 + 30 + 30 + 5 = 105 floats per row; with it 30 + 30.
  const int64_t outputs = 20 + 20 + 30 + 30 + 5, input = 10;
  EXPECT_EQ(net.activation_bytes(), 4 * 8 * (input + outputs + 60));
  // Training still equals finite differences through the shared buffers.
  Rng rng(3);
  test::randomize(net.input(8).span(), rng);
  std::vector<int32_t> labels{0, 2, 1, 4, 3, 0, 1, 2};
  layers::SoftmaxCrossEntropy loss;
  test::check_net_gradients(net, loss, 8, Targets{labels.data(), {}}, test::GradCheckOptions{});
}

namespace {
// An add that records, at each backward, which inputs' gradients are dy's own buffer.
class ProbeAdd : public layers::Add {
 public:
  explicit ProbeAdd(std::string name) { set_name(std::move(name)); }
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                std::span<const TensorView> dx, const StepContext& ctx) override {
    passed.clear();
    for (const auto& d : dx) passed.push_back(!d.empty() && d.data() == dy.data());
    Add::backward(x, y, dy, dx, ctx);
  }
  std::vector<bool> passed;
};

template <class L, class... A>
L& add_named(Net& net, const std::string& name, const std::vector<std::string>& inputs, A&&... a) {
  auto layer = std::make_unique<L>(std::forward<A>(a)...);
  layer->set_name(name);
  return static_cast<L&>(net.add(std::move(layer), inputs));
}
}  // namespace

// A residual add hands its dy to its inputs as their gradient buffers, except where the
// fan-out adds into the buffer (the first of several consumers): t feeds a, s1 and s3; s1
// feeds s2 twice; s2 feeds s3, s3 out. The gradients still equal finite differences.
TEST(Net, AddsPassTheirGradientThrough) {
  Net net(Shape{6});
  add_named<layers::Dense>(net, "fc1", {}, layers::Dense::Options{8});
  add_named<layers::Tanh>(net, "t", {});
  add_named<layers::Dense>(net, "a", {"t"}, layers::Dense::Options{8});
  auto& s1 = add_named<ProbeAdd>(net, "s1", {"a", "t"}, "s1");
  auto& s2 = add_named<ProbeAdd>(net, "s2", {"s1", "s1"}, "s2");
  auto& s3 = add_named<ProbeAdd>(net, "s3", {"s2", "t"}, "s3");
  add_named<layers::Dense>(net, "out", {"s3"}, layers::Dense::Options{3});
  net.build(4, 5);
  Rng rng(3);
  test::randomize(net.input(4).span(), rng);
  std::vector<int32_t> labels{0, 2, 1, 2};
  layers::SoftmaxCrossEntropy loss;
  test::check_net_gradients(net, loss, 4, Targets{labels.data(), {}}, test::GradCheckOptions{});
  EXPECT_EQ(s1.passed, (std::vector<bool>{true, true}));   // a: one consumer; t: its second
  EXPECT_EQ(s2.passed, (std::vector<bool>{false, true}));  // s1's first buffer takes the fan-out
  EXPECT_EQ(s3.passed, (std::vector<bool>{true, true}));   // s2 through s3 (a chain of adds); t's third
}

TEST(Net, ForwardRejectsTooLargeBatches) {
  Net net = net_from("model:\n  input: [2]\n  layers:\n    - {type: dense, units: 2}\n");
  net.build(4, 1);
  EXPECT_THROW(net.forward(5, {}), Error);
  EXPECT_NO_THROW(net.forward(3, {}));
}

}  // namespace hubel
