// The Optimizer interface: one TBB-parallel pass over the flat parameter arena, reading
// the flat gradient arena of the same layout; optimizer state (velocity, moments,
// accumulators) lives in more arrays of that layout, plus the step count.
//
// What every optimizer shares is here: the learning-rate and weight-decay multipliers of
// each parameter (Caffe's lr_mult and decay_mult, chosen by name patterns), gradient
// clipping by global norm and by value, and the 1/world gradient scale of data-parallel
// training, all folded into the one pass. A new optimizer is one file pair that
// implements update() and one line in framework/builtin_optimizers.cpp.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "framework/net.hpp"

namespace hubel {

class Config;

// A contiguous run of the arenas with one learning-rate and one weight-decay multiplier,
// at most 16K floats: one parallel task.
struct ArenaBlock {
  int64_t begin = 0, end = 0;
  float lr_mult = 1;
  float decay_mult = 1;  // weights 1, biases and normalization parameters 0, by default
  int32_t tensor = 0;    // which parameter tensor (layer-wise optimizers' norms)
};

// optimizer.params: [{match: "c1", lr_mult: 0.1}, {match: "*/b", lr_mult: 2, decay_mult: 1}].
// A pattern is "layer/param" with * wildcards; a pattern without '/' means all parameters
// of the layers it matches. The first rule that matches a parameter sets it.
struct ParamRule {
  std::string match;
  float lr_mult = 1;
  float decay_mult = -1;  // < 0: keep the parameter's default (weights decay, biases not)
  bool lr_given = false;
};

// The gradient as the update sees it: g * scale, clamped to [-clip, clip].
struct GradTransform {
  float scale = 1;
  float clip = std::numeric_limits<float>::infinity();
  float operator()(float g) const { return std::min(clip, std::max(-clip, g * scale)); }
};

class Optimizer {
 public:
  struct Common {
    float lr = 0.01f;
    float weight_decay = 0;
    float clip_norm = 0;   // 0: off
    float clip_value = 0;  // 0: off
    std::vector<ParamRule> rules;
    // The linear scaling rule (Goyal et al. 2017): lr is for reference_batch samples per
    // step, and a run's schedule starts from lr x batch x accumulate / reference_batch,
    // after a warm-up (create_run_schedule in run.hpp).
    bool scale_lr_with_batch = false;
    int64_t reference_batch = 256;
  };
  Optimizer(const Common& common, const std::vector<ParamInfo>& layout, int64_t arena_size);
  virtual ~Optimizer() = default;
  virtual std::string type() const = 0;
  virtual std::string describe() const = 0;

  // One update of w from g at learning rate lr. grad_scale multiplies every gradient
  // first (the 1/world averaging of data-parallel training is folded in here); then
  // clipping by global norm, then by value.
  void step(std::span<float> w, std::span<const float> g, float lr, float grad_scale = 1.0f);
  int64_t steps() const { return steps_; }
  void set_steps(int64_t t) { steps_ = t; }
  // optimizer.lr: the learning rate the schedule starts from.
  float base_lr() const { return common_.lr; }
  const Common& common() const { return common_; }
  // The norm of the (scaled) gradient of the last step, before clipping; 0 if not measured.
  double last_grad_norm() const { return last_norm_; }
  const std::vector<ArenaBlock>& blocks() const { return blocks_; }

  // A momentum schedule changes this; false if the optimizer has no momentum.
  virtual bool set_momentum(float /*momentum*/) { return false; }

  // Named state arrays (same layout as the arenas) for checkpoints.
  virtual std::vector<std::pair<std::string, std::span<float>>> state() { return {}; }

  // Reads optimizer.*: type (sgd, adagrad, rmsprop, adam, adamw, lars, lamb), lr,
  // weight_decay, clip_norm, clip_value, params (rules), scale_lr_with_batch,
  // reference_batch, and the type's own hyper-parameters.
  static std::unique_ptr<Optimizer> create(const Config& c, const Net& net);

 protected:
  // Updates every block: w, g and state at the same offsets. steps() is already t.
  virtual void update(float* w, const float* g, float lr, const GradTransform& grad) = 0;

  // Calls f(block) for every block, in parallel.
  template <class F>
  void for_each_block(F&& f) const {
    tbb::parallel_for(tbb::blocked_range<size_t>(0, blocks_.size(), 1), [&](const tbb::blocked_range<size_t>& r) {
      for (size_t k = r.begin(); k != r.end(); ++k) f(blocks_[k]);
    });
  }

  // Per parameter tensor, the sums of K quantities over its values (squared norms, for
  // layer-wise trust ratios): f(block, out) adds a block's K partial sums into out[0..K).
  // One parallel pass; each tensor's partials are then added in block order, so the sums
  // are the same bits on any number of threads. Returns tensors() x K values (valid until
  // the next call; both buffers keep their capacity between steps).
  template <int K, class F>
  const std::vector<double>& tensor_sums(F&& f) {
    partials_.assign(blocks_.size() * K, 0.0);
    for_each_block([&](const ArenaBlock& b) { f(b, &partials_[static_cast<size_t>(&b - blocks_.data()) * K]); });
    sums_.assign(static_cast<size_t>(tensors_) * K, 0.0);
    for (size_t k = 0; k < blocks_.size(); ++k)
      for (int j = 0; j < K; ++j) sums_[static_cast<size_t>(blocks_[k].tensor) * K + j] += partials_[k * K + j];
    return sums_;
  }
  int64_t tensors() const { return tensors_; }

  Common common_;
  std::vector<ArenaBlock> blocks_;
  int64_t tensors_ = 0;
  std::vector<double> partials_, sums_;
  int64_t size_ = 0;
  int64_t steps_ = 0;
  double last_norm_ = 0;
};

// Reads the keys every optimizer shares (the factory calls it; tests may too).
Optimizer::Common read_common_options(const Config& c);

// The optimizers an experiment may name: a factory reads the type's own keys.
template <class Product, class... Args>
class Registry;
using OptimizerRegistry = Registry<Optimizer, const Optimizer::Common&, const std::vector<ParamInfo>&, int64_t>;
const OptimizerRegistry& builtin_optimizers();

}  // namespace hubel
