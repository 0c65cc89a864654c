// The Optimizer interface: one pass over the flat parameter arena, reading the flat
// gradient arena of the same layout; optimizer state lives in more arrays of that layout.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "framework/net.hpp"

namespace hubel {

class Config;

// A contiguous run of the arenas with one weight-decay setting, cut to a size that makes
// one parallel task.
struct ArenaBlock {
  int64_t begin = 0, end = 0;
  bool decay = true;
};

class Optimizer {
 public:
  // Prepares state for a Net's arena layout (call after Net::build).
  explicit Optimizer(const std::vector<ParamInfo>& layout, int64_t arena_size);
  virtual ~Optimizer() = default;
  virtual std::string type() const = 0;
  virtual std::string describe() const = 0;

  // One update of w from g with learning rate lr. `grad_scale` multiplies every gradient
  // first (the 1/world averaging of data-parallel training is folded in here).
  virtual void step(std::span<float> w, std::span<const float> g, float lr, float grad_scale) = 0;
  int64_t steps() const { return steps_; }
  // optimizer.lr: the learning rate the schedule starts from.
  float base_lr() const { return base_lr_; }

  // Named state arrays (same layout as the arenas) for checkpoints.
  virtual std::vector<std::pair<std::string, std::span<float>>> state() { return {}; }

  // Reads optimizer.* (type and its hyper-parameters).
  static std::unique_ptr<Optimizer> create(const Config& c, const Net& net);

 protected:
  std::vector<ArenaBlock> blocks_;
  int64_t size_ = 0;
  int64_t steps_ = 0;
  float base_lr_ = 0.01f;
};

}  // namespace hubel
