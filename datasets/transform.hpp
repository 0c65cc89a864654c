// Per-sample transforms between the stored data and the network: scale (uint8 to [0, 1]),
// per-channel normalization or mean-image subtraction, zero padding, and, for training,
// random crops of a padded image and random horizontal flips. The random choices for a
// sample depend only on (seed, epoch, sample index), so they are the same on any number
// of ranks and threads.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "framework/shape.hpp"
#include "framework/tensor.hpp"

namespace hubel::datasets {

struct TransformOptions {
  float scale = 1;               // stored value * scale
  std::vector<float> mean, std;  // per channel, in scaled units; empty: none
  Tensor mean_image;             // in scaled units, the sample's shape; empty: none
  std::array<int64_t, 3> pad{};  // zeros added on each side of (D, H, W)
  int64_t crop_pad = 0;          // augmentation: pad by this, crop back at a random offset
  bool flip = false;             // augmentation: mirror the last dimension with p = 1/2
};

class Transform {
 public:
  Transform(TransformOptions o, const Shape& in);
  const Shape& input_shape() const { return in_; }
  const Shape& output_shape() const { return out_; }
  bool augments() const { return o_.crop_pad > 0 || o_.flip; }
  std::string describe() const;
  // out[i] = T(raw[i]) for the samples ids[i]; augment applies the random parts.
  void apply(ConstTensorView raw, std::span<const int64_t> ids, uint64_t seed, int64_t epoch, bool augment,
             TensorView out) const;

 private:
  void one(const float* x, float* y, int64_t id, uint64_t seed, int64_t epoch, bool augment) const;
  TransformOptions o_;
  Shape in_, out_;
  int64_t C_ = 1;
  std::array<int64_t, 3> in3_{1, 1, 1}, out3_{1, 1, 1};
  std::vector<float> background_;  // per channel: the transformed value of a stored zero
};

}  // namespace hubel::datasets
