// Add and concat: values, shape errors, gradients.
#include <gtest/gtest.h>

#include "layers/joins.hpp"
#include "tests/gradcheck.hpp"

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
