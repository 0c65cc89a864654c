// RMSprop over the flat arenas.
#include "framework/rmsprop.hpp"

#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

Rmsprop::Rmsprop(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(common, layout, arena_size), o_(o), r_(arena_size) {}

std::unique_ptr<Optimizer> Rmsprop::from_config(const Config& c, const Common& common,
                                                const std::vector<ParamInfo>& layout, int64_t arena_size) {
  Options o;
  o.rho = c.get<float>("rho", o.rho);
  if (!(o.rho >= 0 && o.rho < 1)) c.at("rho").fail(cat("rho must be in [0, 1); got ", o.rho));
  o.eps = c.get<float>("eps", o.eps);
  if (!(o.eps > 0)) c.at("eps").fail(cat("eps must be positive; got ", o.eps));
  return std::make_unique<Rmsprop>(common, o, layout, arena_size);
}

std::string Rmsprop::describe() const {
  return cat("rmsprop lr ", common_.lr, ", rho ", o_.rho, ", eps ", o_.eps,
             common_.weight_decay ? cat(", weight_decay ", common_.weight_decay) : "");
}

void Rmsprop::update(float* w, const float* g, float lr, const GradTransform& grad) {
  float* r = r_.data();
  const float rho = o_.rho, eps = o_.eps;
  for_each_block([&](const ArenaBlock& b) {
    float* __restrict w_ = w;
    float* __restrict r_ = r;
    const float* __restrict g_ = g;
    const GradTransform gt = grad;
    const float a = lr * b.lr_mult, wd = common_.weight_decay * b.decay_mult;
    for (int64_t i = b.begin; i < b.end; ++i) {
      const float gi = gt(g_[i]) + wd * w_[i];
      const float ri = rho * r_[i] + (1 - rho) * gi * gi;
      r_[i] = ri;
      w_[i] -= a / std::sqrt(eps + ri) * gi;
    }
  });
}

}  // namespace hubel
