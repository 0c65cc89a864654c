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

namespace hubel::onnx {
class Graph;  // framework/onnx.hpp
}

namespace hubel::datasets {

// A range [lo, hi] a value is drawn from uniformly, when active.
struct Range {
  double lo = 0, hi = 0;
  bool active = false;
  bool on() const { return active; }
};

struct TransformOptions {
  float scale = 1;               // stored value * scale
  std::vector<float> mean, std;  // per channel, in scaled units; empty: none
  Tensor mean_image;             // in scaled units, the sample's shape; empty: none
  std::array<int64_t, 3> pad{};  // zeros added on each side of (D, H, W)
  int64_t crop_pad = 0;          // augmentation: pad by this, crop back at a random offset
  bool flip = false;             // augmentation: mirror the last dimension with p = 1/2
  // Augmentations of 2-D images [C, H, W] (training only), applied in this order, each
  // drawn from (seed, epoch, sample):
  double flip_p = 0.5;       // the probability of `flip`
  double vflip_p = 0;        // mirror vertically with this probability
  Range resized_crop_scale;  // random resized crop: the window's share of the area ...
  Range resized_crop_ratio;  // ... and its aspect ratio w/h (log-uniform), resized to the output
  Range rotate;              // degrees, about the centre (bilinear; outside: background)
  Range brightness;          // a factor on every value
  Range contrast;            // a factor on the distance from the image's mean gray
  Range saturation;          // a factor on the distance from each pixel's gray (RGB)
  double erase_p = 0;        // random erasing (cutout): with this probability a window ...
  Range erase_scale{0.02, 0.33, true}, erase_ratio{0.3, 3.3, true};  // ... of this area share and ratio is set to 0
  // Evaluation: the centre window of this share of each side, resized to the output (the
  // evaluation counterpart of a random resized crop; 0: off).
  double eval_crop = 0;
};

class Transform {
 public:
  Transform(TransformOptions o, const Shape& in);
  const Shape& input_shape() const { return in_; }
  const Shape& output_shape() const { return out_; }
  bool augments() const { return o_.crop_pad > 0 || o_.flip || geometric() || photometric() || o_.erase_p > 0; }
  std::string describe() const;
  // out[i] = T(raw[i]) for the samples ids[i]; augment applies the random parts.
  void apply(ConstTensorView raw, std::span<const int64_t> ids, uint64_t seed, int64_t epoch, bool augment,
             TensorView out) const;
  // y (the output's shape) = T(image) for a whole decoded image [C, height, width] of any
  // size (images stored encoded): the window (a random resized crop when augmenting, else
  // the centre with the output's aspect ratio, times eval_crop) is taken from the full
  // image and resampled to the output, antialiased when shrinking. An image of the input
  // shape gives exactly what apply() gives for it as a stored sample.
  void apply_image(const uint8_t* pixels, int64_t height, int64_t width, int64_t id, uint64_t seed, int64_t epoch,
                   bool augment, float* y) const;
  // ONNX export: the evaluation transform of stored samples x (floats of the stored
  // values) as nodes (scale, mean image, zero padding, per-channel normalization); returns
  // the value the network reads. eval_crop resamples and is refused (ConfigError).
  std::string to_onnx(onnx::Graph& g, const std::string& x) const;

 private:
  void one(const float* x, float* y, int64_t id, uint64_t seed, int64_t epoch, bool augment) const;
  // The options beyond crop_pad and flip (the 2-D path of `resample`).
  bool geometric() const {
    return o_.vflip_p > 0 || o_.resized_crop_scale.on() || o_.rotate.on() || o_.eval_crop > 0 ||
           (o_.flip && o_.flip_p != 0.5);
  }
  bool photometric() const { return o_.brightness.on() || o_.contrast.on() || o_.saturation.on(); }
  // The 2-D augmentations: y (the output's shape, normalized) from x (stored).
  template <class T>
  void resample(const T* x, int64_t H, int64_t W, float* y, int64_t id, uint64_t seed, int64_t epoch,
                bool augment) const;
  TransformOptions o_;
  Shape in_, out_;
  int64_t C_ = 1;
  std::array<int64_t, 3> in3_{1, 1, 1}, out3_{1, 1, 1};
  std::vector<float> background_;  // per channel: the transformed value of a stored zero
};

}  // namespace hubel::datasets
