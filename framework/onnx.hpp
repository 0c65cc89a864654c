// ONNX export: a graph builder and a writer of the protobuf wire format for the part of
// onnx.proto a model needs (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto). Written by hand: the format is small, stable and
// documented field by field in onnx/onnx.proto, and a hand writer spares every user of
// the library a protobuf dependency and its version skew.
//
// Layers describe themselves through Layer::to_onnx (framework/layer.hpp), the Net
// walks its graph (Net::to_onnx); values are float tensors whose first dimension is the
// batch (symbolic "N", or fixed). Every tensor the Graph holds is named uniquely.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "framework/shape.hpp"

namespace hubel::onnx {

inline std::vector<int64_t> dims(const Shape& s) { return {s.begin(), s.end()}; }
// [1, d...]: a per-channel constant of a sample with `spatial` trailing dimensions,
// broadcast against [N, C, spatial...] (channels first: [C, 1, ...]).
inline std::vector<int64_t> channel_dims(int64_t channels, int spatial) {
  std::vector<int64_t> d{channels};
  d.resize(static_cast<size_t>(spatial) + 1, 1);
  return d;
}

// An attribute of a node: one int, float, string, or a list of ints or floats.
struct Attr {
  enum class Kind { i, f, s, ints, floats };
  std::string name;
  Kind kind = Kind::i;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
};
Attr attr(const std::string& name, int64_t v);
Attr attr(const std::string& name, float v);
Attr attr(const std::string& name, const std::string& v);
Attr attr(const std::string& name, std::vector<int64_t> v);
Attr attr_floats(const std::string& name, std::vector<float> v);

class Graph {
 public:
  // opset: the ai.onnx operator set version (13..17); batch: the fixed batch size, or 0
  // for a symbolic one.
  Graph(int opset, int64_t batch);
  int opset() const { return opset_; }

  // A new unique value name built from `base` ("c1" or "c1_2", ...).
  std::string fresh(const std::string& base);
  // Reserves a name for a value (a layer's output): it must not be taken yet.
  std::string reserve(const std::string& name);

  // Initializers (constant tensors); each returns its (unique) name.
  std::string constant(const std::string& base, std::vector<int64_t> dims, std::span<const float> values);
  std::string constant_i64(const std::string& base, std::vector<int64_t> dims, std::span<const int64_t> values);
  std::string scalar(const std::string& base, float v) { return constant(base, {}, std::span<const float>(&v, 1)); }

  // A node computing `outputs` from `inputs` ("" for an omitted optional input).
  void node(const std::string& op, std::vector<std::string> inputs, std::vector<std::string> outputs,
            std::vector<Attr> attrs = {});
  // A one-output node whose output is a fresh name from `base`; returns it.
  std::string op(const std::string& op, std::vector<std::string> inputs, const std::string& base,
                 std::vector<Attr> attrs = {});

  // The graph's input and output: float tensors of per-sample shape `sample` behind the
  // batch dimension.
  void input(const std::string& name, std::span<const int64_t> sample);
  void output(const std::string& name, std::span<const int64_t> sample);

  // Version-dependent helpers.
  // Reshape x to [batch, dims...] (the batch copied).
  std::string reshape(const std::string& x, std::span<const int64_t> sample, const std::string& base);
  // Reductions keeping or dropping the axes (opset 18 moved axes to an input; 13..17 have
  // them as attributes, except ReduceSum, an input since 13).
  std::string reduce(const std::string& op, const std::string& x, std::vector<int64_t> axes, bool keepdims,
                     const std::string& base);

  // The serialized ModelProto.
  std::string serialize(const std::string& producer, const std::string& producer_version,
                        const std::string& graph_name) const;
  size_t nodes() const { return nodes_.size(); }

 private:
  struct Node {
    std::string op;
    std::vector<std::string> inputs, outputs;
    std::vector<Attr> attrs;
    std::string name;
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    int data_type = 1;  // FLOAT; 7: INT64
    std::string raw;
  };
  struct Value {
    std::string name;
    std::vector<int64_t> sample;
  };
  std::string value_info(const Value& v) const;

  int opset_;
  int64_t batch_;
  std::vector<Node> nodes_;
  std::vector<Tensor> initializers_;
  std::vector<Value> inputs_, outputs_;
  std::vector<std::string> names_;  // sorted: every name in use
  int64_t node_count_ = 0;
};

}  // namespace hubel::onnx
