// Joins of several inputs: add (element-wise sum, for residual connections) and concat
// (along the first per-sample dimension: channels, or features).
//
// Add can project its second input (the shortcut) with a 1x1 convolution, strided to the
// first input's size, without bias (ResNet's option B): `project: auto` does so when the
// shapes differ, `always` even when they agree, `never` (the default) requires equal shapes.
#pragma once

#include <memory>

#include "framework/layer.hpp"
#include "framework/tensor.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Conv;

class Add : public Layer {
 public:
  enum class Project { never, auto_, always };
  explicit Add(Project p = Project::never);
  ~Add() override;
  // {type: add, inputs: [main, shortcut], project: never | auto | always}
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "add"; }
  std::string describe() const override;
  int arity() const override { return 0; }
  Shape output_shape(std::span<const Shape> x) const override;
  std::vector<ParamSpec> param_specs(std::span<const Shape> x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) override;
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy, std::span<const TensorView> dx,
                const StepContext& ctx) override;

 private:
  bool projects(std::span<const Shape> x) const;
  // The 1x1 convolution taking the shortcut x[1] to x[0]'s shape.
  std::unique_ptr<Conv> projection(std::span<const Shape> x) const;
  Project project_;
  std::unique_ptr<Conv> proj_;  // bound when projecting
  Tensor proj_y_;               // its output
};

class Concat : public Layer {
 public:
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "concat"; }
  int arity() const override { return 0; }
  Shape output_shape(std::span<const Shape> x) const override;
  void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) override;
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy, std::span<const TensorView> dx,
                const StepContext& ctx) override;
};

}  // namespace hubel::layers
