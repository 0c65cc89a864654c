// Minibatch stochastic gradient descent with L2 weight decay and momentum, classic or
// Nesterov. With g' = g + wd w and a = lr * lr_mult:
//   classic:  v <- mu v - a g';  w <- w + v
//   Nesterov: v <- mu v - a g';  w <- w + mu v - a g'   (Sutskever et al.'s form, rewritten
//             so the gradient is taken at the current weights)
//   mu = 0:   w <- w - a g'
#pragma once

#include "framework/optimizer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Sgd : public Optimizer {
 public:
  struct Options {
    float momentum = 0;
    bool nesterov = false;
  };
  Sgd(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size);
  // optimizer: {type: sgd, lr, momentum: 0.9, nesterov: false, weight_decay, ...}
  static std::unique_ptr<Optimizer> from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size);

  std::string type() const override { return "sgd"; }
  std::string describe() const override;
  bool set_momentum(float momentum) override;
  std::vector<std::pair<std::string, std::span<float>>> state() override;

 protected:
  void update(float* w, const float* g, float lr, const GradTransform& grad) override;

 private:
  Options o_;
  AlignedBuffer velocity_;
};

}  // namespace hubel
