// AdaGrad over the flat arenas.
#include "framework/adagrad.hpp"

#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

Adagrad::Adagrad(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(common, layout, arena_size), o_(o), r_(arena_size) {
  std::fill(r_.data(), r_.data() + arena_size, o_.initial_accumulator);
}

std::unique_ptr<Optimizer> Adagrad::from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size) {
  Options o;
  o.eps = c.get<float>("eps", o.eps);
  if (!(o.eps > 0)) c.at("eps").fail(cat("eps must be positive; got ", o.eps));
  o.initial_accumulator = c.get<float>("initial_accumulator", 0.0f);
  if (!(o.initial_accumulator >= 0))
    c.at("initial_accumulator").fail(cat("initial_accumulator must be >= 0; got ", o.initial_accumulator));
  return std::make_unique<Adagrad>(common, o, layout, arena_size);
}

std::string Adagrad::describe() const {
  return cat("adagrad lr ", common_.lr, ", eps ", o_.eps,
             common_.weight_decay ? cat(", weight_decay ", common_.weight_decay) : "");
}

void Adagrad::update(float* w, const float* g, float lr, const GradTransform& grad) {
  float* r = r_.data();
  const float eps = o_.eps;
  for_each_block([&](const ArenaBlock& b) {
    float* __restrict w_ = w;
    float* __restrict r_ = r;
    const float* __restrict g_ = g;
    const GradTransform gt = grad;
    const float a = lr * b.lr_mult, wd = common_.weight_decay * b.decay_mult;
    for (int64_t i = b.begin; i < b.end; ++i) {
      const float gi = gt(g_[i]) + wd * w_[i];
      const float ri = r_[i] + gi * gi;
      r_[i] = ri;
      w_[i] -= a / (eps + std::sqrt(ri)) * gi;
    }
  });
}

}  // namespace hubel
