// Joins of several inputs: add (element-wise sum, for residual connections) and concat
// (along the first per-sample dimension: channels, or features).
#pragma once

#include <memory>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Add : public Layer {
 public:
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "add"; }
  int arity() const override { return 0; }
  Shape output_shape(std::span<const Shape> x) const override;
  void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) override;
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy, std::span<const TensorView> dx,
                const StepContext& ctx) override;
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
