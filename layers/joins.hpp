// Joins of several inputs: add (element-wise sum, for residual connections) and concat
// (along the first per-sample dimension: channels, or features).
//
// Add is a plain join of equal shapes. Its `project` key (ResNet's projection shortcut)
// is read by the Net's builder, which puts an explicit 1x1 convolution "<add>_proj" on the
// shortcut (see Net::from_config).
#pragma once

#include <memory>

#include "framework/layer.hpp"
#include "framework/tensor.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Add : public Layer {
 public:
  Add();
  ~Add() override;
  // {type: add, inputs: [a, b, ...]} (project: never | auto | always is the builder's)
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "add"; }
  int arity() const override { return 0; }
  bool passes_gradient() const override { return true; }
  Shape output_shape(std::span<const Shape> x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) override;
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                std::span<const TensorView> dx, const StepContext& ctx) override;
};

class Concat : public Layer {
 public:
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "concat"; }
  int arity() const override { return 0; }
  Shape output_shape(std::span<const Shape> x) const override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) override;
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                std::span<const TensorView> dx, const StepContext& ctx) override;
};

}  // namespace hubel::layers
