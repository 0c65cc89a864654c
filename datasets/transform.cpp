// Sample transforms.
#include "datasets/transform.hpp"

#include "framework/error.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"

namespace hubel::datasets {

Transform::Transform(TransformOptions o, const Shape& in) : o_(std::move(o)), in_(in) {
  if (in.rank() < 1) throw ShapeError("transform: samples need a channel dimension");
  C_ = in[0];
  const int r = in.rank() - 1;
  if (r > 3) throw ShapeError(cat("transform: samples ", in.str(), " have more than 3 spatial dimensions"));
  for (int i = 0; i < r; ++i) in3_[3 - r + i] = in[1 + i];
  if (!o_.mean.empty() && static_cast<int64_t>(o_.mean.size()) != C_)
    throw ConfigError(cat("normalize: ", o_.mean.size(), " means for ", C_, " channels"));
  if (o_.mean.size() != o_.std.size()) throw ConfigError("normalize: as many std values as mean values are needed");
  for (float s : o_.std)
    if (!(s > 0)) throw ConfigError(cat("normalize: a standard deviation of ", s, " cannot divide"));
  if (o_.mean_image.shape().rank() && o_.mean_image.numel() != in.numel())
    throw ShapeError(cat("the mean image has shape ", o_.mean_image.shape().str(), " but samples are ", in.str()));
  if ((o_.crop_pad || o_.flip) && r == 0) throw ConfigError("augmentation needs spatial dimensions");
  std::array<int64_t, 4> dims{C_, 0, 0, 0};
  for (int t = 0; t < 3; ++t) {
    if (t < 3 - r && o_.pad[t])
      throw ConfigError(cat("pad: the samples ", in.str(), " have only ", r, " spatial dimensions"));
    out3_[t] = in3_[t] + 2 * o_.pad[t];
  }
  for (int i = 0; i < r; ++i) dims[1 + i] = out3_[3 - r + i];
  out_ = Shape(std::span<const int64_t>(dims.data(), static_cast<size_t>(r + 1)));
  background_.assign(static_cast<size_t>(C_), 0.0f);
  for (int64_t c = 0; c < C_; ++c)
    if (!o_.mean.empty()) background_[c] = -o_.mean[c] / o_.std[c];
}

std::string Transform::describe() const {
  std::string s;
  if (o_.scale != 1) s += cat("scale ", o_.scale, "; ");
  if (!o_.mean.empty()) s += "normalize per channel; ";
  if (o_.mean_image.shape().rank()) s += "subtract the mean image; ";
  if (out_ != in_) s += cat("pad to ", out_.str(), "; ");
  if (o_.crop_pad) s += cat("random crops (pad ", o_.crop_pad, "); ");
  if (o_.flip) s += "random flips; ";
  if (s.empty()) return "none";
  s.resize(s.size() - 2);
  return s;
}

void Transform::one(const float* x, float* y, int64_t id, uint64_t seed, int64_t epoch, bool augment) const {
  // Offsets of the crop window in the (virtually) padded image, and the flip.
  int64_t off_h = 0, off_w = 0;
  bool flip = false;
  if (augment && (o_.crop_pad || o_.flip)) {
    Rng rng(hash_combine(hash_combine(seed, 0x41554755ULL + static_cast<uint64_t>(epoch)), static_cast<uint64_t>(id)));
    if (o_.crop_pad) {
      off_h =
          in3_[1] > 1 ? static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * o_.crop_pad + 1))) - o_.crop_pad : 0;
      off_w = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * o_.crop_pad + 1))) - o_.crop_pad;
    }
    if (o_.flip) flip = rng.below(2) == 1;
  }
  const int64_t iv = in3_[0] * in3_[1] * in3_[2];
  const float* mean_image = o_.mean_image.shape().rank() ? o_.mean_image.data() : nullptr;
  int64_t q = 0;
  for (int64_t c = 0; c < C_; ++c) {
    const float m = o_.mean.empty() ? 0.0f : o_.mean[c], inv = o_.mean.empty() ? 1.0f : 1.0f / o_.std[c];
    for (int64_t d = 0; d < out3_[0]; ++d) {
      const int64_t sd = d - o_.pad[0];
      for (int64_t h = 0; h < out3_[1]; ++h) {
        const int64_t sh = h - o_.pad[1] + off_h;
        for (int64_t w = 0; w < out3_[2]; ++w, ++q) {
          const int64_t sw = (flip ? out3_[2] - 1 - w : w) - o_.pad[2] + off_w;  // mirrored in the output frame
          if (sd < 0 || sd >= in3_[0] || sh < 0 || sh >= in3_[1] || sw < 0 || sw >= in3_[2]) {
            y[q] = background_[c];
            continue;
          }
          const int64_t src = c * iv + (sd * in3_[1] + sh) * in3_[2] + sw;
          float v = x[src] * o_.scale;
          if (mean_image) v -= mean_image[src];
          y[q] = (v - m) * inv;
        }
      }
    }
  }
}

void Transform::apply(ConstTensorView raw, std::span<const int64_t> ids, uint64_t seed, int64_t epoch, bool augment,
                      TensorView out) const {
  const int64_t n = static_cast<int64_t>(ids.size()), in_per = in_.numel(), out_per = out_.numel();
  parallel_chunks(n, grain_for(out_per), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      one(raw.data() + i * in_per, out.data() + i * out_per, ids[i], seed, epoch, augment);
  });
}

}  // namespace hubel::datasets
