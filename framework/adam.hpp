// Adam (Kingma and Ba) with bias-corrected moments, and AdamW (Loshchilov and Hutter):
//   s <- b1 s + (1 - b1) g';  r <- b2 r + (1 - b2) g'^2   (t = the step count)
//   w <- w - a (s / (1 - b1^t)) / (sqrt(r / (1 - b2^t)) + eps)
// Adam adds weight decay to the gradient (g' = g + wd w); AdamW decouples it
// (g' = g; w <- w - a wd w before the update).
#pragma once

#include "framework/optimizer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Adam : public Optimizer {
 public:
  struct Options {
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    bool decoupled = false;  // AdamW
  };
  Adam(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: adam | adamw, lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1.0e-8,
  //             weight_decay (adamw: default 0.01), ...}
  static std::unique_ptr<Optimizer> from_config(const Config& c, Common common, const std::vector<ParamInfo>& layout,
                                                int64_t arena_size, bool decoupled);
  std::string type() const override { return o_.decoupled ? "adamw" : "adam"; }
  std::string describe() const override;
  std::vector<std::pair<std::string, std::span<float>>> state() override {
    return {{"first_moment", s_.span()}, {"second_moment", r_.span()}};
  }

 protected:
  void update(float* w, const float* g, float lr, const GradTransform& grad) override;

 private:
  Options o_;
  AlignedBuffer s_, r_;
};

}  // namespace hubel
