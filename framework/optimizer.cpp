// Optimizer base: the block list every optimizer iterates, and the factory.
#include "framework/optimizer.hpp"

#include <algorithm>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/sgd.hpp"

namespace hubel {

Optimizer::Optimizer(const std::vector<ParamInfo>& layout, int64_t arena_size) : size_(arena_size) {
  // Blocks of at most 16K floats (64 KiB), each with one decay setting. The alignment
  // padding between parameters is zero in w and g and stays zero.
  constexpr int64_t kBlock = 16384;
  std::vector<ParamInfo> sorted = layout;
  std::sort(sorted.begin(), sorted.end(), [](const ParamInfo& a, const ParamInfo& b) { return a.offset < b.offset; });
  for (const auto& p : sorted)
    for (int64_t b = p.offset; b < p.offset + p.size; b += kBlock)
      blocks_.push_back({b, std::min(p.offset + p.size, b + kBlock), p.decay});
}

std::unique_ptr<Optimizer> Optimizer::create(const Config& c, const Net& net) {
  const std::string type = c.choice("type", {"sgd"});
  const float lr = c.get<float>("lr");
  if (!(lr > 0)) c.at("lr").fail(cat("the learning rate must be positive; got ", lr));
  std::unique_ptr<Optimizer> opt;
  if (type == "sgd") opt = std::make_unique<Sgd>(c, net.param_info(), static_cast<int64_t>(net.params().size()));
  opt->base_lr_ = lr;
  c.finish();
  return opt;
}

}  // namespace hubel
