// Adam and AdamW over the flat arenas.
#include "framework/adam.hpp"

#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

Adam::Adam(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(common, layout, arena_size), o_(o), s_(arena_size), r_(arena_size) {}

std::unique_ptr<Optimizer> Adam::from_config(const Config& c, Common common, const std::vector<ParamInfo>& layout,
                                             int64_t arena_size, bool decoupled) {
  Options o;
  o.decoupled = decoupled;
  o.beta1 = c.get<float>("beta1", o.beta1);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) c.at("beta1").fail(cat("beta1 must be in [0, 1); got ", o.beta1));
  o.beta2 = c.get<float>("beta2", o.beta2);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) c.at("beta2").fail(cat("beta2 must be in [0, 1); got ", o.beta2));
  o.eps = c.get<float>("eps", o.eps);
  if (!(o.eps > 0)) c.at("eps").fail(cat("eps must be positive; got ", o.eps));
  if (decoupled && !c.has("weight_decay")) common.weight_decay = 0.01f;  // PyTorch's AdamW default
  return std::make_unique<Adam>(common, o, layout, arena_size);
}

std::string Adam::describe() const {
  return cat(type(), " lr ", common_.lr, ", betas ", o_.beta1, " ", o_.beta2, ", eps ", o_.eps,
             common_.weight_decay
                 ? cat(o_.decoupled ? ", decoupled weight_decay " : ", weight_decay ", common_.weight_decay)
                 : "");
}

void Adam::update(float* w, const float* g, float lr, const GradTransform& grad) {
  float* s = s_.data();
  float* r = r_.data();
  const float b1 = o_.beta1, b2 = o_.beta2, eps = o_.eps;
  const double t = static_cast<double>(steps_);
  // Bias corrections folded into the step and into eps: a s/(1-b1^t) / (sqrt(r/(1-b2^t)) + eps).
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(b1), t)));
  const float c2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(b2), t)));
  // Two loops, so that each is branch-free and vectorizes.
  auto run = [=, this]<bool kDecoupled>(const ArenaBlock& b) {
    // Captured by value and restrict-qualified: loads through captured references (which a
    // store might alias) would stop vectorization.
    float* __restrict w_ = w;
    float* __restrict s_ = s;
    float* __restrict r_ = r;
    const float* __restrict g_ = g;
    const GradTransform gt = grad;
    const float a = lr * b.lr_mult, wd = common_.weight_decay * b.decay_mult;
    for (int64_t i = b.begin; i < b.end; ++i) {
      float gi = gt(g_[i]);
      float wi = w_[i];
      if constexpr (kDecoupled)
        wi -= a * wd * wi;
      else
        gi += wd * wi;
      const float si = b1 * s_[i] + (1 - b1) * gi;
      const float ri = b2 * r_[i] + (1 - b2) * gi * gi;
      s_[i] = si;
      r_[i] = ri;
      w_[i] = wi - a * (si * c1) / (std::sqrt(ri) * c2 + eps);
    }
  };
  if (o_.decoupled)
    for_each_block([&](const ArenaBlock& b) { run.template operator()<true>(b); });
  else
    for_each_block([&](const ArenaBlock& b) { run.template operator()<false>(b); });
}

}  // namespace hubel
