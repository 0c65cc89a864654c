// Layer-wise adaptive rate scaling for large global batches: each parameter tensor's step
// is scaled by a trust ratio of its weight norm to its update norm, so that no layer's
// step is too large relative to its weights (the norms in one pass over the arenas,
// Optimizer::tensor_sums).
//
// LARS (You, Gitman and Ginsburg 2017), SGD with momentum:
//   ratio = eta ||w|| / (||g|| + wd ||w|| + eps)   (1 where ||w|| or ||g|| is 0; wd the tensor's)
//   v <- mu v + lr ratio (g + wd w);   w <- w - v
// LAMB (You et al. 2019), Adam's moments:
//   s <- b1 s + (1 - b1) g;  r <- b2 r + (1 - b2) g^2  (bias-corrected as in Adam)
//   u = s^ / (sqrt(r^) + eps) + wd w;   ratio = ||w|| / ||u||   (1 where either is 0)
//   w <- w - lr ratio u
// LARS scales every tensor, as the paper does (trust_all: false leaves tensors without
// weight decay, biases and normalization parameters, at ratio 1: at LARS's large base
// rates that is a large plain step). LAMB leaves those at ratio 1 by default, as BERT's
// LAMB does (exclude_from_layer_adaptation), unless trust_all: true.
#pragma once

#include "framework/optimizer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Lars : public Optimizer {
 public:
  struct Options {
    float momentum = 0.9f, eta = 0.001f, eps = 1e-9f;
    bool trust_all = true;
  };
  Lars(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: lars, lr, momentum: 0.9, eta: 0.001, eps: 1.0e-9, trust_all: true, weight_decay, ...}
  static std::unique_ptr<Optimizer> from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size);
  std::string type() const override { return "lars"; }
  std::string describe() const override;
  bool set_momentum(float momentum) override {
    o_.momentum = momentum;
    return true;
  }
  std::vector<std::pair<std::string, std::span<float>>> state() override { return {{"velocity", v_.span()}}; }
  // The trust ratio of each parameter tensor at the last step (tests, diagnostics).
  const std::vector<float>& ratios() const { return ratios_; }

 protected:
  void update(float* w, const float* g, float lr, const GradTransform& grad) override;

 private:
  Options o_;
  AlignedBuffer v_;
  std::vector<float> ratios_;
};

class Lamb : public Optimizer {
 public:
  struct Options {
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
    bool trust_all = false;
  };
  Lamb(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: lamb, lr, beta1: 0.9, beta2: 0.999, eps: 1.0e-6, trust_all: false, weight_decay, ...}
  static std::unique_ptr<Optimizer> from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size);
  std::string type() const override { return "lamb"; }
  std::string describe() const override;
  std::vector<std::pair<std::string, std::span<float>>> state() override {
    return {{"first_moment", s_.span()}, {"second_moment", r_.span()}};
  }
  const std::vector<float>& ratios() const { return ratios_; }

 protected:
  void update(float* w, const float* g, float lr, const GradTransform& grad) override;

 private:
  Options o_;
  AlignedBuffer s_, r_;
  std::vector<float> ratios_;
};

}  // namespace hubel
