// Softmax over the features of each sample: y_i = exp(x_i - max) / sum_j exp(x_j - max).
// For training a classifier use the fused softmax_cross_entropy loss instead (stabler and
// cheaper); this layer is for networks that must output probabilities.
#pragma once

#include <memory>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Softmax : public UnaryLayer {
 public:
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "softmax"; }
  Shape output_shape(const Shape& x) const override { return x; }
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  // dx_i = y_i (dy_i - sum_j dy_j y_j)
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;
};

}  // namespace hubel::layers
