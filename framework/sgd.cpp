// SGD with weight decay and momentum over the flat arenas.
#include "framework/sgd.hpp"

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

Sgd::Sgd(const Common& common, const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(common, layout, arena_size), o_(o) {
  if (o_.momentum != 0) velocity_ = AlignedBuffer(arena_size);
}

std::unique_ptr<Optimizer> Sgd::from_config(const Config& c, const Common& common, const std::vector<ParamInfo>& layout,
                                            int64_t arena_size) {
  Options o;
  o.momentum = c.get<float>("momentum", 0.0f);
  if (!(o.momentum >= 0 && o.momentum < 1)) c.at("momentum").fail(cat("momentum must be in [0, 1); got ", o.momentum));
  o.nesterov = c.get<bool>("nesterov", false);
  if (o.nesterov && o.momentum == 0) c.at("nesterov").fail("Nesterov momentum needs momentum > 0");
  return std::make_unique<Sgd>(common, o, layout, arena_size);
}

std::string Sgd::describe() const {
  return cat("sgd lr ", common_.lr,
             o_.momentum ? cat(o_.nesterov ? ", Nesterov momentum " : ", momentum ", o_.momentum) : "",
             common_.weight_decay ? cat(", weight_decay ", common_.weight_decay) : "");
}

bool Sgd::set_momentum(float momentum) {
  o_.momentum = momentum;
  if (momentum != 0 && velocity_.size() != size_) velocity_ = AlignedBuffer(size_);
  return true;
}

void Sgd::update(float* w, const float* g, float lr, const GradTransform& grad) {
  float* v = velocity_.data();
  const float mu = o_.momentum;
  for_each_block([&](const ArenaBlock& b) {
    float* __restrict w_ = w;
    float* __restrict v_ = v;
    const float* __restrict g_ = g;
    const GradTransform gt = grad;
    const float a = lr * b.lr_mult, wd = common_.weight_decay * b.decay_mult;
    if (mu == 0) {
      for (int64_t i = b.begin; i < b.end; ++i) w_[i] -= a * (gt(g_[i]) + wd * w_[i]);
    } else if (!o_.nesterov) {
      for (int64_t i = b.begin; i < b.end; ++i) {
        const float vi = mu * v_[i] - a * (gt(g_[i]) + wd * w_[i]);
        v_[i] = vi;
        w_[i] += vi;
      }
    } else {
      for (int64_t i = b.begin; i < b.end; ++i) {
        const float step = a * (gt(g_[i]) + wd * w_[i]);
        const float vi = mu * v_[i] - step;
        v_[i] = vi;
        w_[i] += mu * vi - step;
      }
    }
  });
}

std::vector<std::pair<std::string, std::span<float>>> Sgd::state() {
  if (velocity_.size() == 0) return {};
  return {{"velocity", velocity_.span()}};
}

}  // namespace hubel
