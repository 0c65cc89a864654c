// Minibatch stochastic gradient descent with L2 weight decay and (optionally) classic
// momentum: v <- mu v - lr (g + wd w); w <- w + v. With mu = 0: w <- w - lr (g + wd w).
#pragma once

#include "framework/optimizer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Sgd : public Optimizer {
 public:
  struct Options {
    float momentum = 0;
    float weight_decay = 0;
  };
  Sgd(const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: sgd, lr, momentum, weight_decay}
  Sgd(const Config& c, const std::vector<ParamInfo>& layout, int64_t arena_size);

  std::string type() const override { return "sgd"; }
  std::string describe() const override;
  void step(std::span<float> w, std::span<const float> g, float lr, float grad_scale) override;
  std::vector<std::pair<std::string, std::span<float>>> state() override;

 private:
  Options o_;
  AlignedBuffer velocity_;
};

}  // namespace hubel
