// Optimizer base: per-parameter multipliers, the block list, clipping, and the factory.
#include "framework/optimizer.hpp"

#include <algorithm>
#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/parallel.hpp"
#include "framework/registry.hpp"

namespace hubel {

namespace {

bool rule_matches(const ParamRule& r, const ParamInfo& p) {
  if (r.match.find('/') == std::string::npos) return glob_match(r.match, p.layer);
  return glob_match(r.match, p.full_name());
}

}  // namespace

Optimizer::Common read_common_options(const Config& c) {
  Optimizer::Common o;
  o.lr = c.get<float>("lr");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) c.at("lr").fail(cat("the learning rate must be positive; got ", o.lr));
  o.weight_decay = c.get<float>("weight_decay", 0.0f);
  if (!(o.weight_decay >= 0)) c.at("weight_decay").fail(cat("weight_decay must be >= 0; got ", o.weight_decay));
  o.clip_norm = c.get<float>("clip_norm", 0.0f);
  if (!(o.clip_norm >= 0)) c.at("clip_norm").fail(cat("clip_norm must be >= 0 (0: off); got ", o.clip_norm));
  o.clip_value = c.get<float>("clip_value", 0.0f);
  if (!(o.clip_value >= 0)) c.at("clip_value").fail(cat("clip_value must be >= 0 (0: off); got ", o.clip_value));
  o.scale_lr_with_batch = c.get<bool>("scale_lr_with_batch", false);
  o.reference_batch = c.get<int64_t>("reference_batch", o.reference_batch);
  if (o.reference_batch < 1)
    c.at("reference_batch").fail(cat("reference_batch must be positive; got ", o.reference_batch));
  if (c.has("reference_batch") && !o.scale_lr_with_batch)
    c.at("reference_batch").fail("reference_batch is for scale_lr_with_batch: true");
  if (auto params = c.find("params")) {
    if (!params->is_sequence()) params->fail("params is a list of {match: pattern, lr_mult: x, decay_mult: y}");
    for (const auto& item : params->items()) {
      ParamRule r;
      r.match = item.get<std::string>("match");
      if (r.match.empty()) item.at("match").fail("the pattern is empty");
      if (auto m = item.find("lr_mult")) {
        r.lr_mult = m->as<float>();
        r.lr_given = true;
        if (!(r.lr_mult >= 0)) m->fail(cat("lr_mult must be >= 0 (0 freezes); got ", r.lr_mult));
      }
      if (auto m = item.find("decay_mult")) {
        r.decay_mult = m->as<float>();
        if (!(r.decay_mult >= 0)) m->fail(cat("decay_mult must be >= 0; got ", r.decay_mult));
      }
      item.finish();
      o.rules.push_back(r);
    }
  }
  return o;
}

Optimizer::Optimizer(const Common& common, const std::vector<ParamInfo>& layout, int64_t arena_size)
    : common_(common), size_(arena_size) {
  constexpr int64_t kBlock = 16384;
  std::vector<ParamInfo> sorted;
  for (const auto& p : layout)
    if (p.trainable) sorted.push_back(p);
  std::sort(sorted.begin(), sorted.end(), [](const ParamInfo& a, const ParamInfo& b) { return a.offset < b.offset; });
  std::vector<bool> used(common.rules.size(), false);
  for (const auto& p : sorted) {
    float lr_mult = 1, decay_mult = p.decay ? 1.0f : 0.0f;
    for (size_t r = 0; r < common.rules.size(); ++r)
      if (rule_matches(common.rules[r], p)) {
        used[r] = true;
        if (common.rules[r].lr_given) lr_mult = common.rules[r].lr_mult;
        if (common.rules[r].decay_mult >= 0) decay_mult = common.rules[r].decay_mult;
        break;
      }
    // The alignment padding between parameters is zero in w and g and stays zero.
    for (int64_t b = p.offset; b < p.offset + p.size; b += kBlock)
      blocks_.push_back(
          {b, std::min(p.offset + p.size, b + kBlock), lr_mult, decay_mult, static_cast<int32_t>(tensors_)});
    ++tensors_;
  }
  for (size_t r = 0; r < common.rules.size(); ++r)
    if (!used[r]) {
      std::string names;
      for (size_t i = 0; i < layout.size() && i < 12; ++i) names += (i ? ", " : "") + layout[i].full_name();
      throw ConfigError(cat("optimizer.params[", r, "]: the pattern '", common.rules[r].match,
                            "' matches no parameter (parameters are named layer/param: ", names,
                            layout.size() > 12 ? ", ..." : "", ")"));
    }
}

void Optimizer::step(std::span<float> w, std::span<const float> g, float lr, float grad_scale) {
  if (static_cast<int64_t>(w.size()) != size_ || g.size() != w.size())
    throw Error(cat("optimizer built for an arena of ", size_, " floats, given ", w.size()));
  GradTransform t;
  t.scale = grad_scale;
  if (common_.clip_value > 0) t.clip = common_.clip_value;
  last_norm_ = 0;
  if (common_.clip_norm > 0) {
    const float* gp = g.data();
    const double sq = deterministic_sum<double>(size_, 16384, [&](int64_t b, int64_t e) {
      double s = 0;
      for (int64_t i = b; i < e; ++i) s += static_cast<double>(gp[i]) * gp[i];
      return s;
    });
    last_norm_ = std::sqrt(sq) * std::abs(grad_scale);
    if (last_norm_ > common_.clip_norm) t.scale = static_cast<float>(grad_scale * common_.clip_norm / last_norm_);
  }
  ++steps_;
  update(w.data(), g.data(), lr, t);
}

std::unique_ptr<Optimizer> Optimizer::create(const Config& c, const Net& net) {
  const std::string type = c.get<std::string>("type");
  const auto& registry = builtin_optimizers();
  registry.check(type, c.at("type"));
  const Common common = read_common_options(c);
  auto opt = registry.make(type, c, common, net.param_info(), static_cast<int64_t>(net.params().size()));
  c.finish();
  return opt;
}

}  // namespace hubel
