// The protobuf wire format (developers.google.com/protocol-buffers/docs/encoding): each
// field is a varint key (number << 3 | wire type) and its value: a varint (0), 32-bit
// little-endian (5) or a length-delimited run of bytes (2: strings, bytes and nested
// messages). Field numbers are onnx.proto's.
#include "framework/onnx.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "framework/error.hpp"

namespace hubel::onnx {

namespace {

static_assert(std::endian::native == std::endian::little, "raw_data is little-endian");

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, int field, int wire) { varint(out, static_cast<uint64_t>(field) << 3 | wire); }
void field_varint(std::string& out, int field, int64_t v) {
  key(out, field, 0);
  varint(out, static_cast<uint64_t>(v));
}
void field_bytes(std::string& out, int field, const std::string& bytes) {
  key(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}
void field_float(std::string& out, int field, float v) {
  key(out, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

}  // namespace

Attr attr(const std::string& name, int64_t v) {
  Attr a;
  a.name = name;
  a.kind = Attr::Kind::i;
  a.i = v;
  return a;
}
Attr attr(const std::string& name, float v) {
  Attr a;
  a.name = name;
  a.kind = Attr::Kind::f;
  a.f = v;
  return a;
}
Attr attr(const std::string& name, const std::string& v) {
  Attr a;
  a.name = name;
  a.kind = Attr::Kind::s;
  a.s = v;
  return a;
}
Attr attr(const std::string& name, std::vector<int64_t> v) {
  Attr a;
  a.name = name;
  a.kind = Attr::Kind::ints;
  a.ints = std::move(v);
  return a;
}
Attr attr_floats(const std::string& name, std::vector<float> v) {
  Attr a;
  a.name = name;
  a.kind = Attr::Kind::floats;
  a.floats = std::move(v);
  return a;
}

Graph::Graph(int opset, int64_t batch) : opset_(opset), batch_(batch) {
  if (opset < 13 || opset > 17) throw ConfigError(cat("--opset ", opset, ": hubel writes opsets 13 to 17"));
  if (batch < 0) throw ConfigError(cat("--batch ", batch, ": a batch size is positive (or dynamic)"));
}

std::string Graph::reserve(const std::string& name) {
  const auto it = std::lower_bound(names_.begin(), names_.end(), name);
  if (it != names_.end() && *it == name) throw Error(cat("onnx export: the name '", name, "' is used twice"));
  names_.insert(it, name);
  return name;
}

std::string Graph::fresh(const std::string& base) {
  if (!std::binary_search(names_.begin(), names_.end(), base)) return reserve(base);
  for (int64_t i = 2;; ++i) {
    std::string n = cat(base, "_", i);
    if (!std::binary_search(names_.begin(), names_.end(), n)) return reserve(n);
  }
}

std::string Graph::constant(const std::string& base, std::vector<int64_t> dims, std::span<const float> values) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  if (n != static_cast<int64_t>(values.size()))
    throw Error(cat("onnx export: constant '", base, "' has ", values.size(), " values for ", n));
  Tensor t{fresh(base), std::move(dims), 1,
           std::string(reinterpret_cast<const char*>(values.data()), values.size_bytes())};
  initializers_.push_back(std::move(t));
  return initializers_.back().name;
}

std::string Graph::constant_i64(const std::string& base, std::vector<int64_t> dims, std::span<const int64_t> values) {
  Tensor t{fresh(base), std::move(dims), 7,
           std::string(reinterpret_cast<const char*>(values.data()), values.size_bytes())};
  initializers_.push_back(std::move(t));
  return initializers_.back().name;
}

void Graph::node(const std::string& op, std::vector<std::string> inputs, std::vector<std::string> outputs,
                 std::vector<Attr> attrs) {
  nodes_.push_back({op, std::move(inputs), std::move(outputs), std::move(attrs), cat(op, "_", node_count_++)});
}

std::string Graph::op(const std::string& op, std::vector<std::string> inputs, const std::string& base,
                      std::vector<Attr> attrs) {
  std::string y = fresh(base);
  node(op, std::move(inputs), {y}, std::move(attrs));
  return y;
}

void Graph::input(const std::string& name, std::span<const int64_t> sample) {
  inputs_.push_back({name, {sample.begin(), sample.end()}});
}
void Graph::output(const std::string& name, std::span<const int64_t> sample) {
  outputs_.push_back({name, {sample.begin(), sample.end()}});
}

std::string Graph::reshape(const std::string& x, std::span<const int64_t> sample, const std::string& base) {
  std::vector<int64_t> shape{0};  // 0: the batch, copied from the input
  shape.insert(shape.end(), sample.begin(), sample.end());
  const std::string s = constant_i64(base + "_shape", {static_cast<int64_t>(shape.size())}, shape);
  return op("Reshape", {x, s}, base);
}

std::string Graph::reduce(const std::string& op_type, const std::string& x, std::vector<int64_t> axes, bool keepdims,
                          const std::string& base) {
  if (op_type == "ReduceSum") {
    const std::string a = constant_i64(base + "_axes", {static_cast<int64_t>(axes.size())}, axes);
    return op(op_type, {x, a}, base, {attr("keepdims", int64_t{keepdims})});
  }
  return op(op_type, {x}, base, {attr("axes", std::move(axes)), attr("keepdims", int64_t{keepdims})});
}

std::string Graph::value_info(const Value& v) const {
  std::string shape;
  {
    std::string dim;
    if (batch_)
      field_varint(dim, 1, batch_);
    else
      field_bytes(dim, 2, "N");
    field_bytes(shape, 1, dim);
  }
  for (int64_t d : v.sample) {
    std::string dim;
    field_varint(dim, 1, d);
    field_bytes(shape, 1, dim);
  }
  std::string tensor;
  field_varint(tensor, 1, 1);  // elem_type FLOAT
  field_bytes(tensor, 2, shape);
  std::string type;
  field_bytes(type, 1, tensor);
  std::string out;
  field_bytes(out, 1, v.name);
  field_bytes(out, 2, type);
  return out;
}

std::string Graph::serialize(const std::string& producer, const std::string& producer_version,
                             const std::string& graph_name) const {
  std::string graph;
  for (const Node& n : nodes_) {
    std::string node;
    for (const auto& i : n.inputs) field_bytes(node, 1, i);
    for (const auto& o : n.outputs) field_bytes(node, 2, o);
    field_bytes(node, 3, n.name);
    field_bytes(node, 4, n.op);
    for (const Attr& a : n.attrs) {
      std::string at;
      field_bytes(at, 1, a.name);
      switch (a.kind) {
        case Attr::Kind::f:
          field_float(at, 2, a.f);
          field_varint(at, 20, 1);
          break;
        case Attr::Kind::i:
          field_varint(at, 3, a.i);
          field_varint(at, 20, 2);
          break;
        case Attr::Kind::s:
          field_bytes(at, 4, a.s);
          field_varint(at, 20, 3);
          break;
        case Attr::Kind::floats:
          for (float f : a.floats) field_float(at, 7, f);
          field_varint(at, 20, 6);
          break;
        case Attr::Kind::ints:
          for (int64_t i : a.ints) field_varint(at, 8, i);
          field_varint(at, 20, 7);
          break;
      }
      field_bytes(node, 5, at);
    }
    field_bytes(graph, 1, node);
  }
  field_bytes(graph, 2, graph_name);
  for (const Tensor& t : initializers_) {
    std::string tensor;
    for (int64_t d : t.dims) field_varint(tensor, 1, d);
    field_varint(tensor, 2, t.data_type);
    field_bytes(tensor, 8, t.name);
    field_bytes(tensor, 9, t.raw);
    field_bytes(graph, 5, tensor);
  }
  for (const Value& v : inputs_) field_bytes(graph, 11, value_info(v));
  for (const Value& v : outputs_) field_bytes(graph, 12, value_info(v));

  std::string model;
  field_varint(model, 1, opset_ >= 15 ? 8 : 7);  // ir_version: IR 7 came with opset 13, IR 8 with 15
  field_bytes(model, 2, producer);
  field_bytes(model, 3, producer_version);
  field_bytes(model, 7, graph);
  std::string opset;
  field_bytes(opset, 1, "");
  field_varint(opset, 2, opset_);
  field_bytes(model, 8, opset);
  return model;
}

}  // namespace hubel::onnx
