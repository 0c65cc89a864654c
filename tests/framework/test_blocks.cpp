// Blocks in experiment files: a block defined once and repeated expands to the right
// layers, names, wiring and parameters; the shipped ResNet-20 has about 0.27 million
// parameters; mistakes are reported with their place.
#include <gtest/gtest.h>

#include "framework/experiment.hpp"
#include "framework/net.hpp"
#include "layers/builtin.hpp"

namespace hubel {

namespace {
const char* kModel = R"(
input: [3, 8, 8]
blocks:
  unit:
    params: {filters: ~, stride: 1}
    layers:
      - {name: c, type: conv2d, filters: $filters, kernel: 3, stride: $stride, padding: same}
      - {type: relu}
      - {name: sum, type: add, inputs: [relu1, in], project: auto}
layers:
  - {name: stem, type: conv2d, filters: 4, kernel: 1}
  - {block: unit, name: s, repeat: 3, filters: 4}
  - {block: unit, repeat: 2, filters: 6, first: {stride: 2}}
  - {block: unit, filters: 6}
  - {type: flatten}
  - {name: out, type: dense, units: 2}
)";

Net net_of(const std::string& model) {
  return Net::from_config(Config::parse(model, "m.yaml"), layers::builtin_registry());
}

std::string error_of(const std::string& model) {
  try {
    net_of(model);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST(Blocks, ARepeatedBlockExpandsToNamedWiredLayers) {
  Net net = net_of(kModel);
  // stem + 6 instances x 3 layers + the one projection + flatten + out.
  ASSERT_EQ(net.size(), 1u + 6 * 3 + 1 + 2);
  EXPECT_EQ(net.layer(1).name(), "s.1.c");
  EXPECT_EQ(net.layer(2).name(), "s.1.relu1");
  EXPECT_EQ(net.layer(9).name(), "s.3.sum");
  EXPECT_EQ(net.layer(10).name(), "unit1.1.c");
  EXPECT_EQ(net.layer(12).name(), "unit1.1.sum_proj");
  EXPECT_EQ(net.layer(12).type(), "conv");
  EXPECT_EQ(net.layer(17).name(), "unit2.c");
  ASSERT_NE(net.find("unit1.2.sum"), nullptr);
  // The first repetition has stride 2 (8x8 -> 4x4) and projects its shortcut; the second
  // keeps the size and adds the identity.
  net.build(2, 1);
  int64_t c_params = 0, proj = 0;
  for (const auto& p : net.param_info()) {
    if (p.layer == "unit1.1.sum_proj") proj += p.size;
    if (p.layer == "unit1.2.sum_proj") ADD_FAILURE() << "the second repetition projects";
    if (p.layer.ends_with(".sum")) ADD_FAILURE() << "an add holds parameters";
    if (p.name == "w" && p.layer.size() > 2 && p.layer.substr(p.layer.size() - 2) == ".c") c_params += p.size;
  }
  EXPECT_EQ(proj, 6 * 4);
  EXPECT_EQ(c_params, 3 * (4 * 4 * 9) + 3 * (6 * 6 * 9) - (6 * 6 * 9) + (6 * 4 * 9));
  EXPECT_EQ(net.activation("unit1.1.sum", 2).shape(), (Shape{2, 6, 4, 4}));
  EXPECT_EQ(net.activation("s.3.sum", 2).shape(), (Shape{2, 4, 8, 8}));
  // num_params: stem 16, three s units 4*4*9+4 each, unit1.1 6*4*9+6 + 24, unit1.2 and
  // unit2 6*6*9+6 each, out 6*4*4*2+2.
  EXPECT_EQ(net.num_params(), 16 + 3 * 148 + (222 + 24) + 2 * 330 + 194);
}

TEST(Blocks, TheResNet20ExperimentHasAbout270ThousandParameters) {
  const Experiment e = Experiment::load(std::string(HUBEL_SOURCE_DIR) + "/launch/experiments/resnet20.yaml");
  BuiltModel m = build_model(e.model, layers::builtin_registry());
  EXPECT_NEAR(static_cast<double>(m.net.num_params()), 0.27e6, 0.005e6);
  int convs = 0, norms = 0;
  for (size_t i = 0; i < m.net.size(); ++i) {
    convs += m.net.layer(i).type() == "conv2d";
    norms += m.net.layer(i).type() == "batchnorm";
  }
  EXPECT_EQ(convs, 19);  // with the classifier: the 20 weight layers
  EXPECT_EQ(norms, 19);
}

TEST(Blocks, MistakesNameTheirPlace) {
  const std::string base =
      "input: [3, 8, 8]\nblocks:\n  unit:\n    params: {filters: ~}\n    layers:\n"
      "      - {name: c, type: conv2d, filters: $filters, kernel: 1}\nlayers:\n";
  EXPECT_NE(error_of(base + "  - {block: unit}\n").find("needs a value for its parameter 'filters'"),
            std::string::npos);
  EXPECT_NE(error_of(base + "  - {block: unit, filters: 2, width: 3}\n").find("'width' is not a parameter"),
            std::string::npos);
  EXPECT_NE(error_of(base + "  - {block: other}\n").find("no block named 'other'"), std::string::npos);
  EXPECT_NE(error_of(base + "  - {block: unit, filters: 2, repeat: 0}\n").find("repeat must be"), std::string::npos);
  const std::string undefined =
      "input: [3]\nblocks:\n  u:\n    layers:\n      - {type: dense, units: $n}\nlayers:\n  - {block: u}\n";
  const std::string msg = error_of(undefined);
  EXPECT_NE(msg.find("'$n' is not a parameter of block 'u'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.yaml:5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("used at m.yaml:7"), std::string::npos) << msg;
  const std::string outside =
      "input: [3]\nblocks:\n  u:\n    layers:\n      - {type: add, inputs: [stem, in]}\nlayers:\n"
      "  - {name: stem, type: dense, units: 3}\n  - {block: u}\n";
  EXPECT_NE(error_of(outside).find("'stem' is not a layer of this block"), std::string::npos);
}

TEST(Blocks, FreezeMatchesLayerPatterns) {
  const Config model = Config::parse(std::string(kModel) + "freeze: [stem, 's.*']\n", "m.yaml");
  Net net = Net::from_config(model, layers::builtin_registry());
  EXPECT_TRUE(net.frozen("stem"));
  EXPECT_TRUE(net.frozen("s.2.c"));
  EXPECT_FALSE(net.frozen("unit1.1.c"));
  net.build(2, 1);
  EXPECT_EQ(net.num_trainable(), net.num_params() - 16 - 3 * 148);
  const Config bad = Config::parse(std::string(kModel) + "freeze: [conv*]\n", "m.yaml");
  EXPECT_THROW(Net::from_config(bad, layers::builtin_registry()), ConfigError);
}

}  // namespace hubel
