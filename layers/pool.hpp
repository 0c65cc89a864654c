// Pooling, 1-D to 3-D from one implementation: max (the gradient goes to the saved
// position of the maximum), average (spread evenly) and L2 (square root of the sum of
// squares) over windows with stride, padding and overlap; LeNet-5's trainable
// subsampling (sum of the window times a per-map weight, plus a per-map bias); global
// average and max pooling; and maxout, the maximum over groups of channels.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "framework/layer.hpp"
#include "layers/window.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

enum class PoolKind { max, avg, l2 };

class Pool : public UnaryLayer {
 public:
  // How the layer computes, chosen in bind (pool_fast.hpp holds the fast paths), or named
  // by impl; --profile shows it.
  enum class Plan {
    reference,  // every tap resolved against the padding (where a window reads padding, or impl: reference)
    offsets,    // every window inside the input: taps by precomputed offsets
    max_2x2,    // max over 2x2 windows at stride 2, branch-free
  };
  struct Options {
    PoolKind kind = PoolKind::max;
    WindowOptions window;  // stride defaults to the kernel
    // Average pooling: divide by the whole window (true, as PyTorch and Caffe do) or by
    // the input elements the window covers (false).
    bool count_padding = true;
    std::optional<Plan> impl;  // unset (impl: fast): the fastest plan for the shapes
  };
  explicit Pool(Options o) : o_(std::move(o)) {}
  // {type: maxpool2d, kernel: 2, stride: 2, padding: 0, dilation: 1, rounding: exact,
  //  count_padding: true (avgpool only), impl: fast | reference | offsets | max_2x2}
  static std::unique_ptr<Layer> from_config(const Config& c, PoolKind kind, int rank);

  std::string type() const override;
  std::string plan() const override;
  bool spatial() const override { return true; }
  std::string describe() const override { return o_.window.describe(); }
  Shape output_shape(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;
  // After bind: the window of a layer that runs the max_2x2 plan (a convolution that feeds
  // it may compute it in its own passes: Conv::fuse), else null.
  const Window* max_2x2_window() const { return plan_ == Plan::max_2x2 ? &w_ : nullptr; }

 private:
  Window window(const Shape& x) const;
  Options o_;
  Window w_;
  int64_t C_ = 0;
  std::vector<int32_t> argmax_;  // max: index of the maximum within its plane, per output
  Plan plan_ = Plan::reference;
  WindowOffsets offsets_;  // the offsets and max_2x2 plans
};

// y[c] = w[c] * (sum of the window of x[c]) + b[c]: LeNet-5's S2 and S4 layers.
class Subsample : public UnaryLayer {
 public:
  struct Options {
    WindowOptions window;
    Init w_init = Init::constant(0.25);  // starts as an average over a 2x2 window
    Init b_init = Init::zeros();
  };
  explicit Subsample(Options o) : o_(std::move(o)) {}
  // {type: subsample2d, kernel: 2, stride: 2, init: 0.25, bias_init: 0}
  static std::unique_ptr<Layer> from_config(const Config& c, int rank);

  std::string type() const override;
  bool spatial() const override { return true; }
  std::string describe() const override { return o_.window.describe() + ", trainable"; }
  Shape output_shape(const Shape& x) const override;
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  Window window(const Shape& x) const;
  Options o_;
  Window w_;
  int64_t C_ = 0;
  std::vector<float> chunk_grads_;  // per chunk of samples: dw, db
};

// Global pooling over all spatial positions: [C, ...] -> [C].
class GlobalPool : public UnaryLayer {
 public:
  explicit GlobalPool(PoolKind kind) : kind_(kind) {}
  static std::unique_ptr<Layer> from_config(const Config& c, PoolKind kind);

  std::string type() const override { return kind_ == PoolKind::max ? "global_maxpool" : "global_avgpool"; }
  Shape output_shape(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape&) const override { return x[0].numel(); }
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  PoolKind kind_;
  int64_t C_ = 0, P_ = 0;
  std::vector<int32_t> argmax_;
};

// Maxout: the maximum over each group of k consecutive channels, [C, ...] -> [C/k, ...].
class Maxout : public UnaryLayer {
 public:
  explicit Maxout(int64_t k) : k_(k) {}
  // {type: maxout, pieces: 2}
  static std::unique_ptr<Layer> from_config(const Config& c);

  std::string type() const override { return "maxout"; }
  std::string describe() const override { return cat("max over ", k_, " channels"); }
  Shape output_shape(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape&) const override { return x[0].numel(); }
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  int64_t k_;
  int64_t P_ = 0, groups_ = 0;
  std::vector<int32_t> argmax_;  // which channel of the group won
};

}  // namespace hubel::layers
