// Dropout with inverted scaling: in training, each element is kept with probability 1 - p
// and scaled by 1 / (1 - p); in evaluation the layer is the identity. The mask of an
// element is a hash of (seed, step, the sample's position in the global minibatch, the
// layer, the element): the same on any number of ranks and threads, and recomputed in
// backward rather than stored.
#pragma once

#include <memory>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Dropout : public UnaryLayer {
 public:
  explicit Dropout(double rate) : rate_(rate) {}
  // {type: dropout, rate: 0.5}
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "dropout"; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override { return x; }
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  // Multiplies v by the mask (0 or 1/(1-p)) of the rows of this call.
  void apply(const float* v, float* out, int64_t rows, int64_t per, const StepContext& ctx) const;
  double rate_;
};

}  // namespace hubel::layers
