// Dropout.
#include "layers/dropout.hpp"

#include <algorithm>

#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"

namespace hubel::layers {

std::unique_ptr<Layer> Dropout::from_config(const Config& c) {
  const double rate = c.get<double>("rate", 0.5);
  if (!(rate >= 0 && rate < 1)) c.at("rate").fail(cat("rate must be in [0, 1); got ", rate));
  return std::make_unique<Dropout>(rate);
}

std::string Dropout::describe() const { return cat("rate ", rate_); }

void Dropout::apply(const float* v, float* out, int64_t rows, int64_t per, const StepContext& ctx) const {
  const float scale = static_cast<float>(1.0 / (1.0 - rate_));
  // Keep when the top 24 bits of the hash, as a fraction, are >= rate.
  const auto threshold = static_cast<uint64_t>(rate_ * static_cast<double>(1 << 24));
  const uint64_t base = hash_combine(hash_combine(ctx.seed, hash_string(name())), ctx.step);
  parallel_chunks(rows, grain_for(per), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint64_t sample = hash_combine(base, static_cast<uint64_t>(ctx.first_sample + r));
      for (int64_t j = 0; j < per; ++j) {
        const bool keep = (mix64(sample + static_cast<uint64_t>(j) * 0x9e3779b97f4a7c15ULL) >> 40) >= threshold;
        out[r * per + j] = keep ? v[r * per + j] * scale : 0.0f;
      }
    }
  });
}

void Dropout::forward(ConstTensorView x, TensorView y, const StepContext& ctx) {
  if (!ctx.training || rate_ == 0) {
    std::copy(x.data(), x.data() + x.numel(), y.data());
    return;
  }
  apply(x.data(), y.data(), x.batch(), x.stride0(), ctx);
}

void Dropout::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx, const StepContext& ctx) {
  if (dx.empty()) return;
  if (!ctx.training || rate_ == 0) {
    std::copy(dy.data(), dy.data() + dy.numel(), dx.data());
    return;
  }
  apply(dy.data(), dx.data(), x.batch(), x.stride0(), ctx);
}

}  // namespace hubel::layers

namespace hubel::layers {

// Inference: the identity.
void Dropout::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                      const std::string& y) const {
  g.node("Identity", {x[0]}, {y});
}

}  // namespace hubel::layers
