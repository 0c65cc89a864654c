// Flatten and reshape.
#include "layers/shape_ops.hpp"

#include <cstring>

#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

namespace {
void copy(const float* src, float* dst, int64_t n) {
  parallel_chunks(n, 65536, [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, (e - b) * sizeof(float)); });
}
}  // namespace

Reshape::Reshape(std::vector<int64_t> target) : target_(std::move(target)) {}

std::unique_ptr<Layer> Reshape::from_config(const Config& c) {
  auto shape = c.get<std::vector<int64_t>>("shape");
  if (shape.empty() || shape.size() > 4)
    c.at("shape").fail("reshape.shape has 1 to 4 sizes per sample, e.g. [16, 5, 5]");
  return std::make_unique<Reshape>(shape);
}

std::unique_ptr<Layer> Reshape::flatten_from_config(const Config&) {
  return std::make_unique<Reshape>(std::vector<int64_t>{});
}

std::string Reshape::describe() const { return target_.empty() ? "" : Shape(target_).str(); }

Shape Reshape::output_shape(const Shape& x) const {
  if (target_.empty()) return {x.numel()};
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < target_.size(); ++i) {
    if (target_[i] == -1) {
      if (infer >= 0) shape_error("at most one dimension of the target shape may be -1");
      infer = static_cast<int>(i);
    } else if (target_[i] <= 0) {
      shape_error(cat("target shape ", Shape(target_).str(), " has a non-positive size"));
    } else {
      known *= target_[i];
    }
  }
  std::vector<int64_t> out = target_;
  if (infer >= 0) {
    if (x.numel() % known)
      shape_error(cat("cannot reshape ", x.str(), " (", x.numel(), " values) to ", Shape(target_).str()));
    out[infer] = x.numel() / known;
  }
  Shape s(out);
  if (s.numel() != x.numel())
    shape_error(cat("cannot reshape ", x.str(), " (", x.numel(), " values) to ", s.str(), " (", s.numel(), " values)"));
  return s;
}

void Reshape::forward(ConstTensorView x, TensorView y, const StepContext&) { copy(x.data(), y.data(), x.numel()); }

void Reshape::backward(ConstTensorView, ConstTensorView, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (!dx.empty()) copy(dy.data(), dx.data(), dy.numel());
}

}  // namespace hubel::layers

namespace hubel::layers {

void Reshape::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
                      const std::string& y) const {
  if (target_.empty()) {
    g.node("Flatten", {x[0]}, {y}, {onnx::attr("axis", int64_t{1})});
    return;
  }
  const auto out = onnx::dims(output_shape(xs[0]));
  std::vector<int64_t> shape{0};
  shape.insert(shape.end(), out.begin(), out.end());
  g.node("Reshape", {x[0], g.constant_i64(name() + "_shape", {static_cast<int64_t>(shape.size())}, shape)}, {y});
}

}  // namespace hubel::layers
