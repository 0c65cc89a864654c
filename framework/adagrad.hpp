// AdaGrad (Duchi et al.): per-parameter rates shrinking with the accumulated squared
// gradient. With g' = g + wd w: r <- r + g'^2; w <- w - a / (eps + sqrt(r)) g'.
#pragma once

#include "framework/optimizer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Adagrad : public Optimizer {
 public:
  struct Options {
    float eps = 1e-7f;
    float initial_accumulator = 0;
  };
  Adagrad(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: adagrad, lr, eps: 1.0e-7, initial_accumulator: 0, ...}
  static std::unique_ptr<Optimizer> from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size);
  std::string type() const override { return "adagrad"; }
  std::string describe() const override;
  std::vector<std::pair<std::string, std::span<float>>> state() override { return {{"accumulator", r_.span()}}; }

 protected:
  void update(float* w, const float* g, float lr, const GradTransform& grad) override;

 private:
  Options o_;
  AlignedBuffer r_;
};

}  // namespace hubel
