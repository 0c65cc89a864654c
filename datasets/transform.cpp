// Sample transforms.
#include "datasets/transform.hpp"

#include <algorithm>
#include <cmath>

#include "framework/error.hpp"
#include "framework/onnx.hpp"
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
  if ((geometric() || photometric() || o_.erase_p > 0) && r != 2)
    throw ConfigError(
        cat("vflip, resized_crop, rotate, brightness, contrast, saturation, erase and eval_crop are for "
            "images [C, H, W]; the samples are ",
            in.str()));
  if (o_.saturation.on() && C_ != 3)
    throw ConfigError(cat("saturation needs RGB images; the samples have ", C_, " channels"));
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
  if (o_.vflip_p > 0) s += "vertical flips; ";
  if (o_.resized_crop_scale.on())
    s += cat("random resized crops (", o_.resized_crop_scale.lo, "-", o_.resized_crop_scale.hi, " of the area); ");
  if (o_.rotate.on()) s += cat("rotations (", o_.rotate.lo, " to ", o_.rotate.hi, " degrees); ");
  if (photometric()) s += "color jitter; ";
  if (o_.erase_p > 0) s += "random erasing; ";
  if (o_.eval_crop > 0) s += cat("evaluation: the centre ", o_.eval_crop, " resized; ");
  if (s.empty()) return "none";
  s.resize(s.size() - 2);
  return s;
}

void Transform::one(const float* x, float* y, int64_t id, uint64_t seed, int64_t epoch, bool augment) const {
  if (geometric() || photometric() || o_.erase_p > 0) return resample(x, in3_[1], in3_[2], y, id, seed, epoch, augment);
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

template <class T>
void Transform::resample(const T* x, int64_t H, int64_t W, float* y, int64_t id, uint64_t seed, int64_t epoch,
                         bool augment) const {
  const int64_t OH = out3_[1], OW = out3_[2], ph = o_.pad[1], pw = o_.pad[2];
  // The frame: the (padded) source image, the output's size for stored samples.
  const double fh = static_cast<double>(H + 2 * ph), fw = static_cast<double>(W + 2 * pw);
  // The default window: the whole frame when it has the output's aspect ratio, else its
  // centred part that has (the shorter side fitted, as Resize + CenterCrop).
  double bh = fh, bw = fw;
  if (fh * static_cast<double>(OW) > fw * static_cast<double>(OH))
    bh = fw * static_cast<double>(OH) / static_cast<double>(OW);
  else if (fh * static_cast<double>(OW) < fw * static_cast<double>(OH))
    bw = fh * static_cast<double>(OW) / static_cast<double>(OH);
  // The same draws as the integer path first (crop offset, flip), then the others.
  Rng rng(hash_combine(hash_combine(seed, 0x41554755ULL + static_cast<uint64_t>(epoch)), static_cast<uint64_t>(id)));
  double off_h = 0, off_w = 0;
  bool hflip = false, vflip = false;
  // The window of the frame that maps onto the output: top, left, height, width.
  double top = std::floor((fh - bh) / 2), left = std::floor((fw - bw) / 2), wh = bh, ww = bw, angle = 0;
  if (augment) {
    if (o_.crop_pad) {
      off_h =
          static_cast<double>(rng.below(static_cast<uint64_t>(2 * o_.crop_pad + 1))) - static_cast<double>(o_.crop_pad);
      off_w =
          static_cast<double>(rng.below(static_cast<uint64_t>(2 * o_.crop_pad + 1))) - static_cast<double>(o_.crop_pad);
    }
    if (o_.flip) hflip = rng.uniform() < o_.flip_p;
    if (o_.vflip_p > 0) vflip = rng.uniform() < o_.vflip_p;
    if (o_.resized_crop_scale.on()) {
      // Inception's crop: up to 10 tries for a window inside the frame, else the default.
      const double area = fh * fw;
      for (int t = 0; t < 10; ++t) {
        const double a = area * rng.uniform(o_.resized_crop_scale.lo, o_.resized_crop_scale.hi);
        const double r = std::exp(rng.uniform(std::log(o_.resized_crop_ratio.lo), std::log(o_.resized_crop_ratio.hi)));
        const double cw = std::round(std::sqrt(a * r)), ch = std::round(std::sqrt(a / r));
        if (cw >= 1 && ch >= 1 && cw <= fw && ch <= fh) {
          top = static_cast<double>(rng.below(static_cast<uint64_t>(fh - ch + 1)));
          left = static_cast<double>(rng.below(static_cast<uint64_t>(fw - cw + 1)));
          wh = ch, ww = cw;
          break;
        }
      }
    }
    if (o_.rotate.on()) angle = rng.uniform(o_.rotate.lo, o_.rotate.hi) * 3.14159265358979323846 / 180;
  } else {
    const double share = o_.eval_crop > 0 ? o_.eval_crop : 1;
    wh = std::round(bh * share), ww = std::round(bw * share);
    top = std::floor((fh - wh) / 2), left = std::floor((fw - ww) / 2);
  }
  // Output pixel (h, w) -> the window -> rotated about the window's centre -> the padded
  // image -> the stored image; sampled bilinearly (exact at whole coordinates), the
  // background outside.
  const double sy = wh / static_cast<double>(OH), sx = ww / static_cast<double>(OW);
  const double cy = top + wh / 2, cx = left + ww / 2, cs = std::cos(angle), sn = std::sin(angle);
  const int64_t iv = H * W;
  const float* mean_image = o_.mean_image.shape().rank() ? o_.mean_image.data() : nullptr;
  auto at = [&](int64_t c, int64_t yy, int64_t xx) -> float {
    if (yy < 0 || yy >= H || xx < 0 || xx >= W) return std::nanf("");
    const int64_t src = c * iv + yy * W + xx;
    float v = static_cast<float>(x[src]) * o_.scale;
    if (mean_image) v -= mean_image[src];
    return v;
  };
  if (angle == 0 && (sy > 1 || sx > 1)) {
    // Shrinking (a full-resolution image to the output): a triangle filter as wide as the
    // scale (antialiased, as PIL's BILINEAR resize), separable: the columns' taps on the
    // rows the rows' taps use, then the rows'.
    struct Taps {
      std::vector<int64_t> first, count;  // per output: the first source index and the tap count
      std::vector<double> w;              // per output, count weights (0 outside the image)
      std::vector<double> inside;         // per output: the weights' sum inside the image
      int64_t lo = 0, hi = -1;            // the source indices any tap reads
    };
    auto line = [&](int64_t n, bool mirror, double start, double step, double shift, int64_t size) {
      Taps t;
      const double support = std::max(1.0, step);
      t.lo = size;
      for (int64_t o = 0; o < n; ++o) {
        const double oo = mirror ? static_cast<double>(n - 1 - o) : static_cast<double>(o);
        const double f = start + (oo + 0.5) * step - 0.5 - shift;
        const auto i0 = static_cast<int64_t>(std::ceil(f - support + 1e-9)),
                   i1 = static_cast<int64_t>(std::floor(f + support - 1e-9));
        double total = 0, in = 0;
        const size_t at0 = t.w.size();
        for (int64_t i = i0; i <= i1; ++i) total += std::max(0.0, 1 - std::abs(static_cast<double>(i) - f) / support);
        for (int64_t i = i0; i <= i1; ++i) {
          const bool ok = i >= 0 && i < size;
          const double wt = ok ? std::max(0.0, 1 - std::abs(static_cast<double>(i) - f) / support) / total : 0.0;
          t.w.push_back(wt);
          in += wt;
          if (ok && wt > 0) t.lo = std::min(t.lo, i), t.hi = std::max(t.hi, i);
        }
        t.first.push_back(i0);
        t.count.push_back(static_cast<int64_t>(t.w.size() - at0));
        t.inside.push_back(in);
      }
      return t;
    };
    const Taps rows = line(OH, vflip, top, sy, static_cast<double>(ph) - off_h, H);
    const Taps cols = line(OW, hflip, left, sx, static_cast<double>(pw) - off_w, W);
    const int64_t nr = std::max<int64_t>(0, rows.hi - rows.lo + 1);
    std::vector<float> tmp(static_cast<size_t>(nr * OW));
    for (int64_t c = 0; c < C_; ++c) {
      const T* xc = x + c * iv;
      const float* mc = mean_image ? mean_image + c * iv : nullptr;
      for (int64_t r = 0; r < nr; ++r) {
        const T* src = xc + (rows.lo + r) * W;
        const float* msrc = mc ? mc + (rows.lo + r) * W : nullptr;
        size_t k = 0;
        for (int64_t w = 0; w < OW; ++w) {
          double v = 0;
          for (int64_t j = 0, i = cols.first[static_cast<size_t>(w)]; j < cols.count[static_cast<size_t>(w)];
               ++j, ++i, ++k) {
            const double wt = cols.w[k];
            if (wt == 0) continue;
            const float p = static_cast<float>(src[i]) * o_.scale;
            v += wt * (msrc ? p - msrc[i] : p);
          }
          tmp[static_cast<size_t>(r * OW + w)] = static_cast<float>(v);
        }
      }
      size_t k = 0;
      for (int64_t h = 0; h < OH; ++h) {
        float* out = y + (c * OH + h) * OW;
        const int64_t n = rows.count[static_cast<size_t>(h)], f0 = rows.first[static_cast<size_t>(h)];
        for (int64_t w = 0; w < OW; ++w) {
          const double cover = rows.inside[static_cast<size_t>(h)] * cols.inside[static_cast<size_t>(w)];
          if (cover < 0.5) {
            out[w] = std::nanf("");
            continue;
          }
          double v = 0;
          for (int64_t j = 0; j < n; ++j) {
            const double wt = rows.w[k + static_cast<size_t>(j)];
            if (wt > 0) v += wt * tmp[static_cast<size_t>((f0 + j - rows.lo) * OW + w)];
          }
          out[w] = static_cast<float>(v / cover);
        }
        k += static_cast<size_t>(n);
      }
    }
  } else if (angle == 0) {
    // Axis-aligned (no rotation): the rows' and columns' taps apart, each computed once.
    struct Tap {
      int64_t i0 = 0;
      double w0 = 0, w1 = 0;  // for i0 and i0 + 1; 0 where outside the image
    };
    auto line = [&](int64_t n, bool mirror, double start, double step, double shift, int64_t size) {
      std::vector<Tap> taps(static_cast<size_t>(n));
      for (int64_t o = 0; o < n; ++o) {
        const double oo = mirror ? static_cast<double>(n - 1 - o) : static_cast<double>(o);
        const double f = start + (oo + 0.5) * step - 0.5 - shift;
        const double f0 = std::floor(f + 1e-9), d = std::max(0.0, f - f0);
        const auto i0 = static_cast<int64_t>(f0);
        taps[static_cast<size_t>(o)] = {i0, i0 >= 0 && i0 < size ? 1 - d : 0.0, i0 + 1 >= 0 && i0 + 1 < size ? d : 0.0};
      }
      return taps;
    };
    const auto rows = line(OH, vflip, top, sy, static_cast<double>(ph) - off_h, H);
    const auto cols = line(OW, hflip, left, sx, static_cast<double>(pw) - off_w, W);
    for (int64_t c = 0; c < C_; ++c) {
      const T* xc = x + c * iv;
      const float* mc = mean_image ? mean_image + c * iv : nullptr;
      auto px = [&](int64_t yy, int64_t xx) {
        const float v = static_cast<float>(xc[yy * W + xx]) * o_.scale;
        return mc ? v - mc[yy * W + xx] : v;
      };
      for (int64_t h = 0; h < OH; ++h) {
        const Tap& r = rows[static_cast<size_t>(h)];
        float* out = y + (c * OH + h) * OW;
        for (int64_t w = 0; w < OW; ++w) {
          const Tap& q = cols[static_cast<size_t>(w)];
          const double wsum = (r.w0 + r.w1) * (q.w0 + q.w1);
          if (wsum < 0.5) {
            out[w] = std::nanf("");
            continue;
          }
          double v = 0;
          if (r.w0 > 0 && q.w0 > 0) v += r.w0 * q.w0 * px(r.i0, q.i0);
          if (r.w0 > 0 && q.w1 > 0) v += r.w0 * q.w1 * px(r.i0, q.i0 + 1);
          if (r.w1 > 0 && q.w0 > 0) v += r.w1 * q.w0 * px(r.i0 + 1, q.i0);
          if (r.w1 > 0 && q.w1 > 0) v += r.w1 * q.w1 * px(r.i0 + 1, q.i0 + 1);
          out[w] = static_cast<float>(v / wsum);
        }
      }
    }
  } else {
    for (int64_t h = 0; h < OH; ++h)
      for (int64_t w = 0; w < OW; ++w) {
        const double oh = vflip ? static_cast<double>(OH - 1 - h) : static_cast<double>(h);
        const double ow = hflip ? static_cast<double>(OW - 1 - w) : static_cast<double>(w);
        // Pixel centres: (oh + 0.5) in the output is top + (oh + 0.5) sy in the window.
        double py = top + (oh + 0.5) * sy - cy, px = left + (ow + 0.5) * sx - cx;
        const double ry = cs * py - sn * px + cy, rx = sn * py + cs * px + cx;
        const double fy = ry - 0.5 - static_cast<double>(ph) + off_h, fx = rx - 0.5 - static_cast<double>(pw) + off_w;
        const double y0 = std::floor(fy + 1e-9), x0 = std::floor(fx + 1e-9);
        const double dy = std::max(0.0, fy - y0), dx = std::max(0.0, fx - x0);
        const auto iy = static_cast<int64_t>(y0), ix = static_cast<int64_t>(x0);
        for (int64_t c = 0; c < C_; ++c) {
          double v = 0, wsum = 0;
          const double wts[4] = {(1 - dy) * (1 - dx), (1 - dy) * dx, dy * (1 - dx), dy * dx};
          const int64_t ys[4] = {iy, iy, iy + 1, iy + 1}, xs[4] = {ix, ix + 1, ix, ix + 1};
          for (int k = 0; k < 4; ++k) {
            if (wts[k] < 1e-12) continue;
            const float s = at(c, ys[k], xs[k]);
            if (std::isnan(s)) continue;
            v += wts[k] * s;
            wsum += wts[k];
          }
          // Outside the image (weights under half): the background (a stored zero).
          y[(c * OH + h) * OW + w] = wsum >= 0.5 ? static_cast<float>(v / wsum) : std::nanf("");
        }
      }
  }
  // Color jitter on the scaled values, then normalization, then erasing.
  const int64_t ov = OH * OW;
  const float top_value = 255.0f * o_.scale;
  if (augment && photometric()) {
    const double b = o_.brightness.on() ? rng.uniform(o_.brightness.lo, o_.brightness.hi) : 1;
    const double k = o_.contrast.on() ? rng.uniform(o_.contrast.lo, o_.contrast.hi) : 1;
    const double sat = o_.saturation.on() ? rng.uniform(o_.saturation.lo, o_.saturation.hi) : 1;
    auto clamp = [&](double v) {
      return static_cast<float>(o_.scale != 1 ? std::clamp(v, 0.0, static_cast<double>(top_value)) : v);
    };
    auto gray = [&](int64_t q) {
      return C_ == 3 ? 0.299 * y[q] + 0.587 * y[ov + q] + 0.114 * y[2 * ov + q] : static_cast<double>(y[q]);
    };
    if (b != 1)
      for (int64_t q = 0; q < C_ * ov; ++q)
        if (!std::isnan(y[q])) y[q] = clamp(y[q] * b);
    if (k != 1) {
      double mean = 0;
      int64_t n = 0;
      for (int64_t q = 0; q < ov; ++q)
        if (!std::isnan(y[q])) mean += gray(q), ++n;
      mean /= static_cast<double>(std::max<int64_t>(1, n));
      for (int64_t q = 0; q < C_ * ov; ++q)
        if (!std::isnan(y[q])) y[q] = clamp((y[q] - mean) * k + mean);
    }
    if (sat != 1 && C_ == 3)
      for (int64_t q = 0; q < ov; ++q) {
        if (std::isnan(y[q])) continue;
        const double g = gray(q);
        for (int64_t c = 0; c < 3; ++c) y[c * ov + q] = clamp((y[c * ov + q] - g) * sat + g);
      }
  }
  for (int64_t c = 0; c < C_; ++c) {
    const float m = o_.mean.empty() ? 0.0f : o_.mean[c], inv = o_.mean.empty() ? 1.0f : 1.0f / o_.std[c];
    for (int64_t q = c * ov; q < (c + 1) * ov; ++q) y[q] = std::isnan(y[q]) ? background_[c] : (y[q] - m) * inv;
  }
  if (augment && o_.erase_p > 0 && rng.uniform() < o_.erase_p) {
    const double area = static_cast<double>(ov);
    for (int t = 0; t < 10; ++t) {
      const double a = area * rng.uniform(o_.erase_scale.lo, o_.erase_scale.hi);
      const double r = std::exp(rng.uniform(std::log(o_.erase_ratio.lo), std::log(o_.erase_ratio.hi)));
      const auto eh = static_cast<int64_t>(std::round(std::sqrt(a / r))),
                 ew = static_cast<int64_t>(std::round(std::sqrt(a * r)));
      if (eh < 1 || ew < 1 || eh > OH || ew > OW) continue;
      const auto ey = static_cast<int64_t>(rng.below(static_cast<uint64_t>(OH - eh + 1)));
      const auto ex = static_cast<int64_t>(rng.below(static_cast<uint64_t>(OW - ew + 1)));
      for (int64_t c = 0; c < C_; ++c)
        for (int64_t h = ey; h < ey + eh; ++h)
          for (int64_t w = ex; w < ex + ew; ++w) y[(c * OH + h) * OW + w] = 0;
      break;
    }
  }
}

void Transform::apply_image(const uint8_t* pixels, int64_t height, int64_t width, int64_t id, uint64_t seed,
                            int64_t epoch, bool augment, float* y) const {
  if (out3_[0] != 1 || in_.rank() != 3)
    throw ShapeError(cat("transform: whole images are for samples [C, H, W]; these are ", in_.str()));
  if (height < 1 || width < 1) throw ShapeError(cat("transform: an image of ", width, "x", height, " pixels"));
  if (height == in3_[1] && width == in3_[2] && !geometric() && !photometric() && o_.erase_p == 0) {
    // The stored path's arithmetic exactly (crop_pad, flip): the image is a stored sample.
    std::vector<float> x(static_cast<size_t>(C_ * height * width));
    std::copy(pixels, pixels + x.size(), x.begin());
    return one(x.data(), y, id, seed, epoch, augment);
  }
  if (o_.mean_image.shape().rank() && (height != in3_[1] || width != in3_[2]))
    throw ConfigError("mean_image: the images have other sizes than the samples (use normalize)");
  resample(pixels, height, width, y, id, seed, epoch, augment);
}

void Transform::apply(ConstTensorView raw, std::span<const int64_t> ids, uint64_t seed, int64_t epoch, bool augment,
                      TensorView out) const {
  const int64_t n = static_cast<int64_t>(ids.size()), in_per = in_.numel(), out_per = out_.numel();
  parallel_chunks(n, grain_for(out_per), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      one(raw.data() + i * in_per, out.data() + i * out_per, ids[i], seed, epoch, augment);
  });
}

std::string Transform::to_onnx(onnx::Graph& g, const std::string& x) const {
  if (o_.eval_crop > 0)
    throw ConfigError(
        "data.augment.eval_crop: the evaluation crop resamples the image, which ONNX cannot repeat exactly; "
        "the ONNX export is refused");
  std::string v = x;
  if (o_.scale != 1) v = g.op("Mul", {v, g.scalar("input_scale", o_.scale)}, "input_scaled");
  if (o_.mean_image.shape().rank())
    v = g.op("Sub",
             {v, g.constant("mean_image", onnx::dims(in_), {o_.mean_image.data(), static_cast<size_t>(in_.numel())})},
             "input_centered");
  const int r = in_.rank() - 1;
  if (o_.pad[0] || o_.pad[1] || o_.pad[2]) {
    std::vector<int64_t> pads(static_cast<size_t>(2 * (r + 2)), 0);
    for (int i = 0; i < r; ++i) {
      const int64_t p = o_.pad[static_cast<size_t>(3 - r + i)];
      pads[static_cast<size_t>(2 + i)] = pads[static_cast<size_t>(r + 4 + i)] = p;
    }
    v = g.op("Pad", {v, g.constant_i64("input_pads", {static_cast<int64_t>(pads.size())}, pads)}, "input_padded",
             {onnx::attr("mode", std::string("constant"))});
  }
  if (!o_.mean.empty()) {
    std::vector<float> inv;
    for (float s : o_.std) inv.push_back(1.0f / s);
    const auto cd = onnx::channel_dims(C_, r);
    v = g.op("Sub", {v, g.constant("input_mean", cd, o_.mean)}, "input_minus_mean");
    v = g.op("Mul", {v, g.constant("input_inverse_std", cd, inv)}, "input_normalized");
  }
  return v;
}

}  // namespace hubel::datasets
