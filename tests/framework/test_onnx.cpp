// The ONNX writer's wire format on a worked example (bytes computed by hand from
// onnx.proto's field numbers), its names and its errors. That real runtimes load what it
// writes is tests/launch/onnx_test.sh's part (onnxruntime on every ready experiment).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "framework/error.hpp"
#include "framework/onnx.hpp"
#include "tests/expect_error.hpp"

namespace hubel::onnx {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

TEST(Onnx, OneReluModelByteForByte) {
  Graph g(13, 0);
  g.reserve("x");
  g.node("Relu", {"x"}, {"y"});
  const std::vector<int64_t> sample{3};
  g.input("x", sample);
  g.output("y", sample);
  const std::string m = g.serialize("p", "1", "g");
  // NodeProto: input "x" (0a 01 78), output "y" (12 01 79), name "Relu_0", op_type "Relu".
  const std::string node = bytes({0x0a, 1, 'x', 0x12, 1, 'y', 0x1a, 6}) + "Relu_0" + bytes({0x22, 4}) + "Relu";
  // ValueInfoProto x: name, type { tensor_type { elem_type FLOAT, shape { dim "N", dim 3 } } }.
  auto info = [](char name) {
    const std::string shape = bytes({0x0a, 3, 0x12, 1, 'N', 0x0a, 2, 0x08, 3});
    const std::string tensor = bytes({0x08, 1, 0x12, static_cast<int>(shape.size())}) + shape;
    const std::string type = bytes({0x0a, static_cast<int>(tensor.size())}) + tensor;
    return bytes({0x0a, 1, name, 0x12, static_cast<int>(type.size())}) + type;
  };
  const std::string in = info('x'), out = info('y');
  const std::string graph = bytes({0x0a, static_cast<int>(node.size())}) + node + bytes({0x12, 1, 'g'}) +
                            bytes({0x5a, static_cast<int>(in.size())}) + in +
                            bytes({0x62, static_cast<int>(out.size())}) + out;
  const std::string want = bytes({0x08, 7, 0x12, 1, 'p', 0x1a, 1, '1', 0x3a, static_cast<int>(graph.size())}) + graph +
                           bytes({0x42, 4, 0x0a, 0, 0x10, 13});
  EXPECT_EQ(m, want);
}

TEST(Onnx, VarintsAttributesAndRawData) {
  Graph g(17, 300);
  const float w[2] = {1.5f, -2.0f};
  const std::string c = g.constant("w", {2}, w);
  g.node("Mul", {"x", c}, {"y"}, {attr("alpha", 0.5f), attr("axes", std::vector<int64_t>{-1})});
  g.input("x", std::vector<int64_t>{2});
  const std::string m = g.serialize("p", "1", "g");
  EXPECT_EQ(m.substr(0, 2), bytes({0x08, 8}));                                     // IR 8 for opset 17
  EXPECT_NE(m.find(bytes({0x08, 0xac, 0x02})), std::string::npos);                 // dim_value 300 as a varint
  EXPECT_NE(m.find(bytes({0x15, 0, 0, 0, 0x3f, 0xa0, 1, 1})), std::string::npos);  // f = 0.5, type (field 20) FLOAT
  // ints [-1]: ten bytes of two's complement varint, then type INTS.
  EXPECT_NE(m.find(bytes({0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xa0, 1, 7})),
            std::string::npos);
  // TensorProto: dims 2, data_type FLOAT, name "w", raw_data 1.5f -2.0f little-endian.
  EXPECT_NE(m.find(bytes({0x08, 2, 0x10, 1, 0x42, 1, 'w', 0x4a, 8, 0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0})),
            std::string::npos);
}

TEST(Onnx, NamesAndErrors) {
  Graph g(13, 0);
  EXPECT_EQ(g.reserve("c1"), "c1");
  EXPECT_EQ(g.fresh("c1"), "c1_2");
  EXPECT_EQ(g.fresh("c1"), "c1_3");
  EXPECT_EQ(g.fresh("c2"), "c2");
  using test::error_of;
  EXPECT_EQ(error_of<Error>([&] { g.reserve("c1"); }), "onnx export: the name 'c1' is used twice");
  const float one = 1;
  EXPECT_EQ(error_of<Error>([&] { g.constant("k", {2}, std::span<const float>(&one, 1)); }),
            "onnx export: constant 'k' has 1 values for 2");
  EXPECT_EQ(error_of<ConfigError>([] { Graph(12, 0); }), "--opset 12: hubel writes opsets 13 to 17");
  EXPECT_EQ(error_of<ConfigError>([] { Graph(18, 0); }), "--opset 18: hubel writes opsets 13 to 17");
}

}  // namespace
}  // namespace hubel::onnx
