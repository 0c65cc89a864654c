// Normalization: batch normalization (per channel over the minibatch, with running
// statistics for evaluation) and layer normalization (per sample over all its values).
// Both have a trainable scale (gamma) and shift (beta) per channel: the first per-sample
// dimension, so per feature for flat inputs.
//
// Batch norm in data-parallel training either normalizes by the statistics of the global
// minibatch (sync: true, the default: one allreduce of per-channel sums and sums of
// squares per layer in forward, and one of the two gradient sums in backward, so N ranks
// train exactly like one), or by each rank's own share (sync: false, no communication;
// the running statistics are then averaged over ranks after every step so that every rank
// evaluates alike). Running statistics: mean and the unbiased variance, updated as
// r = (1 - momentum) r + momentum * batch value; they are buffers, saved in checkpoints.
#pragma once

#include <memory>
#include <vector>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class BatchNorm : public UnaryLayer {
 public:
  struct Options {
    double momentum = 0.1;
    double eps = 1e-5;
    bool sync = true;
  };
  explicit BatchNorm(const Options& o) : o_(o) {}
  // {type: batchnorm, momentum: 0.1, eps: 1e-5, sync: true}
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "batchnorm"; }
  bool reduces_across_ranks() const override { return o_.sync; }
  std::string inexact_reason() const override { return o_.sync ? "" : "keeps batch statistics per rank (sync: false)"; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override { return x; }
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape>, const Shape& y) const override { return 2 * y.numel(); }
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  Options o_;
  int64_t channels_ = 0, spatial_ = 0;
  // The statistics of the last training forward: mean and 1/sqrt(var + eps) per channel,
  // and the number of values (over all ranks when synchronized) they came from.
  std::vector<double> mean_, invstd_, sums_;
  std::vector<double> chunk_sums_;  // per chunk of samples (framework/chunks.hpp)
  std::vector<float> chunk_grads_;  // per chunk: d gamma, d beta
  double count_ = 0;
};

class LayerNorm : public UnaryLayer {
 public:
  explicit LayerNorm(double eps) : eps_(eps) {}
  // {type: layernorm, eps: 1e-5}
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "layernorm"; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override { return x; }
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape>, const Shape& y) const override { return 5 * y.numel(); }
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  double eps_;
  int64_t channels_ = 0, spatial_ = 0;
  std::vector<double> mean_, invstd_;  // per sample of the last forward
  std::vector<float> chunk_grads_;     // per chunk of samples: d gamma, d beta
};

}  // namespace hubel::layers
