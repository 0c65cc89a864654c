// Flatten and reshape.
#include <gtest/gtest.h>

#include "layers/shape_ops.hpp"
#include "tests/gradcheck.hpp"

namespace hubel::layers {

TEST(ShapeOps, OutputShapes) {
  Reshape flatten({});
  const Shape img[] = {Shape{3, 4, 5}};
  EXPECT_EQ(flatten.output_shape(img[0]), (Shape{60}));
  Reshape r({-1, 10});
  EXPECT_EQ(r.output_shape(img[0]), (Shape{6, 10}));
  Reshape bad({7, -1});
  bad.set_name("r");
  try {
    bad.output_shape(img[0]);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'r' (reshape): cannot reshape [3, 4, 5] (60 values)"),
              std::string::npos)
        << e.what();
  }
  Reshape two({-1, -1});
  EXPECT_THROW(two.output_shape(img[0]), ShapeError);
  Reshape wrong({2, 2});
  EXPECT_THROW(wrong.output_shape(img[0]), ShapeError);
}

TEST(ShapeOps, CopiesValuesAndGradients) {
  Reshape r({4, 3});
  test::LayerHarness h(r, {Shape{2, 6}}, 2);
  h.forward({});
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(h.y()[i], h.x()[i]);
  h.check();
}

}  // namespace hubel::layers
