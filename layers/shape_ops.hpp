// Shape operations that move no data: flatten (to one feature vector per sample) and
// reshape (to any per-sample shape of the same size).
#pragma once

#include <memory>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

// Copies x to y with another shape. (A later optimization can alias the buffers.)
class Reshape : public UnaryLayer {
 public:
  // An empty target shape means "flatten". One dimension may be -1 (inferred).
  explicit Reshape(std::vector<int64_t> target);
  static std::unique_ptr<Layer> from_config(const Config& c);
  static std::unique_ptr<Layer> flatten_from_config(const Config& c);

  std::string type() const override { return target_.empty() ? "flatten" : "reshape"; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  std::vector<int64_t> target_;
};

}  // namespace hubel::layers
