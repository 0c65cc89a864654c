// SGD with weight decay and momentum over the flat arenas.
#include "framework/sgd.hpp"

#include <tbb/parallel_for.h>

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

Sgd::Sgd(const Options& o, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Optimizer(layout, arena_size), o_(o) {
  if (o_.momentum != 0) velocity_ = AlignedBuffer(arena_size);
}

namespace {
Sgd::Options read_options(const Config& c) {
  Sgd::Options o;
  o.momentum = c.get<float>("momentum", 0.0f);
  o.weight_decay = c.get<float>("weight_decay", 0.0f);
  if (!(o.momentum >= 0 && o.momentum < 1)) c.at("momentum").fail(cat("momentum must be in [0, 1); got ", o.momentum));
  if (!(o.weight_decay >= 0)) c.at("weight_decay").fail(cat("weight_decay must be >= 0; got ", o.weight_decay));
  return o;
}
}  // namespace

Sgd::Sgd(const Config& c, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : Sgd(read_options(c), layout, arena_size) {}

std::string Sgd::describe() const { return cat("sgd momentum ", o_.momentum, " weight_decay ", o_.weight_decay); }

void Sgd::step(std::span<float> w, std::span<const float> g, float lr, float grad_scale) {
  if (static_cast<int64_t>(w.size()) != size_ || g.size() != w.size())
    throw Error(cat("optimizer built for an arena of ", size_, " floats, given ", w.size()));
  float* wp = w.data();
  const float* gp = g.data();
  float* vp = velocity_.data();
  const float mu = o_.momentum;
  tbb::parallel_for(tbb::blocked_range<size_t>(0, blocks_.size(), 1), [&](const tbb::blocked_range<size_t>& r) {
    for (size_t k = r.begin(); k != r.end(); ++k) {
      const ArenaBlock& b = blocks_[k];
      const float wd = b.decay ? o_.weight_decay : 0.0f;
      if (mu == 0) {
        for (int64_t i = b.begin; i < b.end; ++i) wp[i] -= lr * (grad_scale * gp[i] + wd * wp[i]);
      } else {
        for (int64_t i = b.begin; i < b.end; ++i) {
          vp[i] = mu * vp[i] - lr * (grad_scale * gp[i] + wd * wp[i]);
          wp[i] += vp[i];
        }
      }
    }
  });
  ++steps_;
}

std::vector<std::pair<std::string, std::span<float>>> Sgd::state() {
  if (o_.momentum == 0) return {};
  return {{"velocity", velocity_.span()}};
}

}  // namespace hubel
