// Add and concat: values, shape errors, gradients.
#include <gtest/gtest.h>

#include "framework/config.hpp"
#include "framework/net.hpp"
#include "layers/builtin.hpp"
#include "layers/joins.hpp"
#include "layers/losses.hpp"
#include "tests/expect_error.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {

TEST(Joins, AddSumsAndConcatStacksChannels) {
  Add add;
  test::LayerHarness h(add, {Shape{2, 2}, Shape{2, 2}, Shape{2, 2}}, 2);
  h.forward({});
  for (int64_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(h.y()[i], h.x(0)[i] + h.x(1)[i] + h.x(2)[i]);

  Concat cat;
  test::LayerHarness c(cat, {Shape{1, 3}, Shape{2, 3}}, 2);
  EXPECT_EQ(c.y_shape(), (Shape{3, 3}));
  c.forward({});
  // Sample 1 of y: x0's sample 1 (3 values), then x1's sample 1 (6 values).
  EXPECT_EQ(c.y()[9], c.x(0)[3]);
  EXPECT_EQ(c.y()[12], c.x(1)[6]);
  EXPECT_EQ(c.y()[17], c.x(1)[11]);
}

TEST(Joins, ShapeErrors) {
  Add add;
  add.set_name("sum");
  const Shape bad[] = {Shape{2, 3}, Shape{3, 2}};
  EXPECT_THROW(add.output_shape(bad), ShapeError);
  Concat cat;
  const Shape bad2[] = {Shape{2, 3, 3}, Shape{2, 3, 4}};
  EXPECT_THROW(cat.output_shape(bad2), ShapeError);
  const Shape one[] = {Shape{2}};
  EXPECT_THROW(cat.output_shape(one), ShapeError);
}

TEST(Joins, GradientChecks) {
  Add add;
  test::LayerHarness(add, {Shape{5}, Shape{5}}, 3).check();
  Concat cat;
  test::LayerHarness(cat, {Shape{2, 2}, Shape{1, 2}, Shape{3, 2}}, 3).check();
}

}  // namespace hubel::layers

namespace hubel::layers {

TEST(Joins, AProjectedShortcutIsAnExplicitStridedOneByOneConvolutionNode) {
  // main [2, 2, 2] from the input [1, 4, 3]; the shortcut is the input itself: stride 2 in
  // H (4 -> 2) and 2 in W (3 -> 2).
  Net net = Net::from_config(Config::parse(R"(
input: [1, 4, 3]
layers:
  - {name: main, type: conv, filters: 2, kernel: 1, stride: 2, rounding: floor}
  - {name: res, type: add, inputs: [main, input], project: auto}
)",
                                           "m.yaml"),
                             layers::builtin_registry());
  ASSERT_EQ(net.size(), 3u);
  const Layer& proj = net.layer(1);
  EXPECT_EQ(proj.name(), "res_proj");
  EXPECT_EQ(proj.type(), "conv");
  net.build(1, 1);
  ASSERT_EQ(proj.params().size(), 1u);  // no bias
  EXPECT_EQ(proj.params()[0].shape, (Shape{2, 1, 1, 1}));
  EXPECT_TRUE(net.layer(2).params().empty());  // the add is a plain join
  const Layer& main = net.layer(0);
  for (int i = 0; i < 2; ++i) main.params()[0].w[i] = 0, main.params()[1].w[i] = 100;
  proj.params()[0].w[0] = 2, proj.params()[0].w[1] = -1;
  for (int i = 0; i < 12; ++i) net.input(1).data()[i] = static_cast<float>(i);  // rows 0..3 of 3 values
  const ConstTensorView y = net.forward(1, {false, 1, 0, 0});
  // Shortcut positions (0,0), (0,2), (2,0), (2,2) hold 0, 2, 6, 8.
  const float picked[] = {0, 2, 6, 8};
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ(y.data()[p], 100 + 2 * picked[p]);
    EXPECT_EQ(y.data()[4 + p], 100 - picked[p]);
  }
  // always: a projection even between equal shapes; auto with equal shapes: none.
  const char* equal = R"(
input: [3, 2]
layers:
  - {name: a, type: conv, filters: 3, kernel: 1}
  - {name: sum, type: add, inputs: [a, input], project: %s}
)";
  char buf[256];
  std::snprintf(buf, sizeof buf, equal, "always");
  EXPECT_EQ(Net::from_config(Config::parse(buf, "m.yaml"), layers::builtin_registry()).size(), 3u);
  std::snprintf(buf, sizeof buf, equal, "auto");
  EXPECT_EQ(Net::from_config(Config::parse(buf, "m.yaml"), layers::builtin_registry()).size(), 2u);
  // Sizes no integer stride connects; and no projection with unequal shapes.
  const std::string odd = R"(
input: [2, 8, 8]
layers:
  - {name: a, type: conv, filters: 2, kernel: 4}
  - {name: sum, type: add, inputs: [a, input], project: auto}
)";
  EXPECT_NE(test::error_of<ConfigError>([&] {
              Net::from_config(Config::parse(odd, "m.yaml"), layers::builtin_registry());
            }).find("cannot project the shortcut [2, 8, 8] to [2, 5, 5]: spatial size 8 does not reduce to 5"),
            std::string::npos);
  auto never = test::layer_from_yaml("{type: add}", "res");
  const Shape differ[] = {Shape{4, 2, 2}, Shape{2, 4, 4}};
  try {
    never->output_shape(differ);
    ADD_FAILURE() << "unequal shapes accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("project: auto"), std::string::npos) << e.what();
  }
}

TEST(Joins, ResidualBlockGradientCheckThroughTheNet) {
  const Config model = Config::parse(R"(
input: [2, 6, 6]
layers:
  - {name: a, type: conv, filters: 4, kernel: 3, stride: 2, padding: same, bias: none}
  - {name: bn_a, type: batchnorm}
  - {name: relu_a, type: relu}
  - {name: b, type: conv, filters: 4, kernel: 3, padding: same, bias: none}
  - {name: bn_b, type: batchnorm}
  - {name: sum, type: add, inputs: [bn_b, input], project: auto}
  - {name: out, type: relu}
  - {name: pool, type: global_avgpool}
  - {name: fc, type: dense, units: 3}
)",
                                     "block.yaml");
  Net net = Net::from_config(model, builtin_registry());
  net.build(4, 11);
  Rng rng(5);
  test::randomize(net.input(4).span(), rng);
  std::vector<int32_t> labels{0, 2, 1, 2};
  SoftmaxCrossEntropy loss;
  test::GradCheckOptions o;
  o.kink = 0;
  test::check_net_gradients(net, loss, 4, Targets{labels.data(), {}}, o);
}

}  // namespace hubel::layers
