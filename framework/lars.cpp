// LARS and LAMB over the flat arenas: the per-tensor norms in one parallel pass, then the
// update in another.
#include "framework/lars.hpp"

#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

namespace {

bool trusted(const ArenaBlock& b, bool trust_all) { return trust_all || b.decay_mult != 0; }

float ratio_or_one(double num, double den) {
  return num > 0 && den > 0 && std::isfinite(num / den) ? static_cast<float>(num / den) : 1.0f;
}

bool read_trust_all(const Config& c, bool fallback) { return c.get<bool>("trust_all", fallback); }

}  // namespace

Lars::Lars(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(common, layout, arena_size), o_(o), v_(arena_size), ratios_(static_cast<size_t>(tensors()), 1.0f) {}

std::unique_ptr<Optimizer> Lars::from_config(const Config& c, const Common& common,
                                             const std::vector<ParamInfo>& layout, int64_t arena_size) {
  Options o;
  o.momentum = c.get<float>("momentum", o.momentum);
  if (!(o.momentum >= 0 && o.momentum < 1)) c.at("momentum").fail(cat("momentum must be in [0, 1); got ", o.momentum));
  o.eta = c.get<float>("eta", o.eta);
  if (!(o.eta > 0)) c.at("eta").fail(cat("eta (the trust coefficient) must be positive; got ", o.eta));
  o.eps = c.get<float>("eps", o.eps);
  if (!(o.eps >= 0)) c.at("eps").fail(cat("eps must be >= 0; got ", o.eps));
  o.trust_all = read_trust_all(c, o.trust_all);
  return std::make_unique<Lars>(common, o, layout, arena_size);
}

std::string Lars::describe() const {
  return cat("lars lr ", common_.lr, ", momentum ", o_.momentum, ", eta ", o_.eta,
             common_.weight_decay ? cat(", weight_decay ", common_.weight_decay) : "");
}

void Lars::update(float* w, const float* g, float lr, const GradTransform& grad) {
  const auto& sums = tensor_sums<2>([&](const ArenaBlock& b, double* out) {
    double ww = 0, gg = 0;
    for (int64_t i = b.begin; i < b.end; ++i) {
      const double gi = grad(g[i]);
      ww += static_cast<double>(w[i]) * w[i];
      gg += gi * gi;
    }
    out[0] += ww, out[1] += gg;
  });
  for (const ArenaBlock& b : blocks_) {  // (each tensor's blocks share its weight decay)
    const double wn = std::sqrt(sums[2 * b.tensor]), gn = std::sqrt(sums[2 * b.tensor + 1]);
    const double wd = static_cast<double>(common_.weight_decay) * b.decay_mult;
    ratios_[b.tensor] = wn == 0 || gn == 0 ? 1.0f : ratio_or_one(o_.eta * wn, gn + wd * wn + o_.eps);
  }
  float* v = v_.data();
  const float mu = o_.momentum;
  for_each_block([&](const ArenaBlock& b) {
    float* __restrict w_ = w;
    float* __restrict v_ = v;
    const float* __restrict g_ = g;
    const GradTransform gt = grad;
    const float ratio = trusted(b, o_.trust_all) ? ratios_[b.tensor] : 1.0f;
    const float a = lr * b.lr_mult * ratio, wd = common_.weight_decay * b.decay_mult;
    for (int64_t i = b.begin; i < b.end; ++i) {
      const float vi = mu * v_[i] + a * (gt(g_[i]) + wd * w_[i]);
      v_[i] = vi;
      w_[i] -= vi;
    }
  });
}

Lamb::Lamb(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(common, layout, arena_size),
      o_(o),
      s_(arena_size),
      r_(arena_size),
      ratios_(static_cast<size_t>(tensors()), 1.0f) {}

std::unique_ptr<Optimizer> Lamb::from_config(const Config& c, const Common& common,
                                             const std::vector<ParamInfo>& layout, int64_t arena_size) {
  Options o;
  o.beta1 = c.get<float>("beta1", o.beta1);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) c.at("beta1").fail(cat("beta1 must be in [0, 1); got ", o.beta1));
  o.beta2 = c.get<float>("beta2", o.beta2);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) c.at("beta2").fail(cat("beta2 must be in [0, 1); got ", o.beta2));
  o.eps = c.get<float>("eps", o.eps);
  if (!(o.eps > 0)) c.at("eps").fail(cat("eps must be positive; got ", o.eps));
  o.trust_all = read_trust_all(c, o.trust_all);
  return std::make_unique<Lamb>(common, o, layout, arena_size);
}

std::string Lamb::describe() const {
  return cat("lamb lr ", common_.lr, ", betas ", o_.beta1, " ", o_.beta2, ", eps ", o_.eps,
             common_.weight_decay ? cat(", weight_decay ", common_.weight_decay) : "");
}

void Lamb::update(float* w, const float* g, float lr, const GradTransform& grad) {
  const float b1 = o_.beta1, b2 = o_.beta2, eps = o_.eps;
  const double t = static_cast<double>(steps_);
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(b1), t)));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(b2), t)));
  float* s = s_.data();
  float* r = r_.data();
  const float wd0 = common_.weight_decay;
  // Pass 1: the moments, and per tensor ||w||^2 and ||u||^2.
  const auto& sums = tensor_sums<2>([&](const ArenaBlock& b, double* out) {
    const float wd = wd0 * b.decay_mult;
    double ww = 0, uu = 0;
    for (int64_t i = b.begin; i < b.end; ++i) {
      const float gi = grad(g[i]);
      const float si = b1 * s[i] + (1 - b1) * gi;
      const float ri = b2 * r[i] + (1 - b2) * gi * gi;
      s[i] = si;
      r[i] = ri;
      const float u = (si * c1) / (std::sqrt(ri * c2) + eps) + wd * w[i];
      ww += static_cast<double>(w[i]) * w[i];
      uu += static_cast<double>(u) * u;
    }
    out[0] += ww, out[1] += uu;
  });
  for (int64_t k = 0; k < tensors(); ++k) ratios_[k] = ratio_or_one(std::sqrt(sums[2 * k]), std::sqrt(sums[2 * k + 1]));
  // Pass 2: the update, u again from the stored moments.
  for_each_block([&](const ArenaBlock& b) {
    float* __restrict w_ = w;
    const float* __restrict s_ = s;
    const float* __restrict r_ = r;
    const float ratio = trusted(b, o_.trust_all) ? ratios_[b.tensor] : 1.0f;
    const float a = lr * b.lr_mult * ratio, wd = wd0 * b.decay_mult;
    for (int64_t i = b.begin; i < b.end; ++i) {
      const float u = (s_[i] * c1) / (std::sqrt(r_[i] * c2) + eps) + wd * w_[i];
      w_[i] -= a * u;
    }
  });
}

}  // namespace hubel
