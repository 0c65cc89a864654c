// Weighted average pooling: each window's weighted sum, with one weight per position of the
// window shared by every channel. The weights are fixed, a Gaussian of the distance from
// the window's centre normalized to sum 1 (`weights: gaussian`, `sigma`), or learned
// (`weights: learned`, starting as the plain average 1/k_vol). Padding reads zero and keeps
// its weight (a Gaussian window at the border sums to less than 1, like average pooling
// with count_padding).
#pragma once

#include <memory>
#include <vector>

#include "framework/layer.hpp"
#include "layers/window.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class WeightedPool : public UnaryLayer {
 public:
  struct Options {
    WindowOptions window;  // stride defaults to the kernel
    bool learned = false;
    double sigma = 1.0;  // gaussian: in input elements (times the dilation)
  };
  explicit WeightedPool(Options o) : o_(std::move(o)) {}
  // {type: weighted_avgpool2d, kernel: 3, stride: 2, padding: 1, weights: gaussian | learned, sigma: 1.0}
  static std::unique_ptr<Layer> from_config(const Config& c, int rank);

  std::string type() const override;
  bool spatial() const override { return true; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override;
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

  // The fixed Gaussian weights of a window, in tap order (kernel-major, as for_each_tap).
  static std::vector<float> gaussian(const Window& w, double sigma);

 private:
  Window window(const Shape& x) const;
  const float* weights() const { return o_.learned ? params_[0].w : fixed_.data(); }
  Options o_;
  Window w_;
  int64_t C_ = 0;
  std::vector<float> fixed_;     // gaussian weights
  std::vector<float> partials_;  // learned: per chunk of samples, the weights' gradient
};

}  // namespace hubel::layers
