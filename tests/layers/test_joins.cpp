// Add and concat: values, shape errors, gradients.
#include <gtest/gtest.h>

#include "layers/joins.hpp"
#include "layers/builtin.hpp"
#include "layers/losses.hpp"
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

TEST(Joins, AddProjectsTheShortcutWithAStridedOneByOneConvolution) {
  auto add = test::layer_from_yaml("{type: add, project: auto}", "res");
  // main [2, 2, 2], shortcut [1, 4, 3]: stride 2 in H (4 -> 2) and 2 in W (3 -> 2).
  test::LayerHarness h(*add, {Shape{2, 2, 2}, Shape{1, 4, 3}}, 1);
  ASSERT_EQ(add->params().size(), 1u);
  EXPECT_EQ(add->params()[0].name, "proj_w");
  EXPECT_EQ(add->params()[0].shape, (Shape{2, 1, 1, 1}));
  h.w(0)[0] = 2, h.w(0)[1] = -1;
  for (int i = 0; i < 12; ++i) h.x(1)[i] = static_cast<float>(i);  // rows 0..3 of 3 values
  for (int i = 0; i < 8; ++i) h.x(0)[i] = 100;
  h.forward({});
  // Shortcut positions (0,0), (0,2), (2,0), (2,2) hold 0, 2, 6, 8.
  const float picked[] = {0, 2, 6, 8};
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ(h.y()[p], 100 + 2 * picked[p]);
    EXPECT_EQ(h.y()[4 + p], 100 - picked[p]);
  }
  test::LayerHarness g(*add, {Shape{2, 2, 2}, Shape{1, 4, 3}}, 3);
  g.check();
  // Equal shapes: no projection unless asked for.
  EXPECT_TRUE(add->param_specs(std::vector<Shape>{Shape{2, 3}, Shape{2, 3}}).empty());
  auto always = test::layer_from_yaml("{type: add, project: always}", "res");
  test::LayerHarness a(*always, {Shape{3, 2}, Shape{3, 2}}, 2);
  EXPECT_EQ(always->params()[0].shape, (Shape{3, 3, 1}));
  a.check();
  // Sizes no integer stride connects, and project: never with unequal shapes.
  const Shape odd[] = {Shape{2, 5, 5}, Shape{2, 8, 8}};  // 8 does not stride to 5
  EXPECT_THROW(add->output_shape(odd), ShapeError);
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
)", "block.yaml");
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
