// RMSprop (Hinton): AdaGrad with an exponentially decaying average, so old gradients are
// forgotten. With g' = g + wd w: r <- rho r + (1 - rho) g'^2; w <- w - a / sqrt(eps + r) g'.
#pragma once

#include "framework/optimizer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Rmsprop : public Optimizer {
 public:
  struct Options {
    float rho = 0.9f;
    float eps = 1e-6f;
  };
  Rmsprop(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: rmsprop, lr, rho: 0.9, eps: 1.0e-6, ...}
  static std::unique_ptr<Optimizer> from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size);
  std::string type() const override { return "rmsprop"; }
  std::string describe() const override;
  std::vector<std::pair<std::string, std::span<float>>> state() override { return {{"mean_square", r_.span()}}; }

 protected:
  void update(float* w, const float* g, float lr, const GradTransform& grad) override;

 private:
  Options o_;
  AlignedBuffer r_;
};

}  // namespace hubel
