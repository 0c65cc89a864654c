// Dense (fully connected): y = W x + b for each sample, x flattened. W is [units, inputs].
#pragma once

#include <memory>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Dense : public UnaryLayer {
 public:
  struct Options {
    int64_t units = 0;
    bool bias = true;
    Init w_init = Init::scaled(Init::Kind::XavierUniform);
    Init b_init = Init::zeros();
  };
  explicit Dense(const Options& o);
  // {type: dense, units: 64, bias: true, init: he_normal, bias_init: 0}
  static std::unique_ptr<Layer> from_config(const Config& c);

  std::string type() const override { return "dense"; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override;
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override {
    return (2 * x[0].numel() + (o_.bias ? 1 : 0)) * y.numel();
  }
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  void exact_parameter_gradients(ConstTensorView x, ConstTensorView dy, const StepContext& ctx);
  Options o_;
  int64_t in_ = 0;
  AlignedBuffer partials_;  // an exact run's per-chunk [dW, db]
};

}  // namespace hubel::layers
