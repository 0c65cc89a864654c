// Sliding-window geometry shared by convolution and pooling: kernel, stride, dilation,
// padding and rounding, read from an experiment file and resolved against an input
// shape; and the im2col / col2im kernels that turn windows into matrix columns.
//
// One implementation serves 1-D, 2-D and 3-D: a resolved Window always has three spatial
// dimensions (D, H, W), the missing leading ones of size 1 with kernel 1, stride 1 and no
// padding, so every loop is written once.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/shape.hpp"

namespace hubel::layers {

enum class PadMode { explicit_pad, valid, same, full };
enum class PadValue { zero, reflect, replicate };
// What to do when the windows do not tile the padded input exactly: refuse (the
// default: PyTorch floors silently, we make the user choose), drop the remainder, or
// add one more window that reaches past the end (it sees padding there).
enum class Rounding { exact, floor, ceil };

using Dims3 = std::array<int64_t, 3>;

// A window configuration as written in an experiment file. Per-dimension values hold one
// entry (the same for every dimension) or one per spatial dimension.
struct WindowOptions {
  int rank = 0;  // spatial dimensions required (1, 2, 3), or 0: taken from the input
  std::vector<int64_t> kernel{1}, stride{1}, dilation{1};
  bool stride_given = false;
  PadMode pad_mode = PadMode::valid;
  std::vector<int64_t> pad_lo{0}, pad_hi{0};  // explicit padding
  PadValue pad_value = PadValue::zero;
  Rounding rounding = Rounding::exact;

  // Reads kernel (required unless kernel_required is false), stride (default: 1, or the
  // kernel when stride_defaults_to_kernel, as pooling does), dilation, padding
  // (valid|same|full, n, [n per dim], or [[lo, hi] per dim]), padding_value
  // (zero|reflect|replicate) and rounding (exact|floor|ceil).
  static WindowOptions parse(const Config& c, int rank, bool stride_defaults_to_kernel);
  // "5x5, stride 2, same padding"
  std::string describe() const;
};

// A window resolved against one input: every size known, three spatial dims.
struct Window {
  int rank = 0;        // spatial dimensions of the data (1..3)
  Dims3 in{1, 1, 1};   // input (image) size
  Dims3 out{1, 1, 1};  // output positions (columns)
  Dims3 k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1};
  Dims3 lo{0, 0, 0}, hi{0, 0, 0};  // padding before and after
  PadValue value = PadValue::zero;

  int64_t in_vol() const { return in[0] * in[1] * in[2]; }
  int64_t out_vol() const { return out[0] * out[1] * out[2]; }
  int64_t k_vol() const { return k[0] * k[1] * k[2]; }
  // The spatial part of a shape: out (or in) as `rank` dims.
  Shape out_shape(int64_t channels) const;
  Shape in_shape(int64_t channels) const;
  bool is_pointwise() const;  // 1x1 kernel, stride 1, no padding: columns are the input
};

// Resolves a window for an input of spatial size `in` (rank 1..3). Errors (thrown as
// ShapeError through `fail`) say which dimension and why: a kernel larger than the
// padded input, windows that do not tile the input under exact rounding, reflect padding
// wider than the input allows, a non-positive output size.
Window resolve_window(const WindowOptions& o, std::span<const int64_t> in,
                      const std::function<void(const std::string&)>& fail);

// The geometry of a transposed convolution whose input has spatial size `in`: the output
// (the image of the equivalent forward convolution) has size
// (in-1)*s - lo - hi + dilation*(k-1) + 1 + output_padding.
Window resolve_transposed_window(const WindowOptions& o, std::span<const int64_t> in,
                                 std::span<const int64_t> output_padding,
                                 const std::function<void(const std::string&)>& fail);

// Where padded coordinate i (in [-lo, n + hi)) reads from in [0, n), or -1 for a zero.
inline int64_t source_index(int64_t i, int64_t n, PadValue v) {
  if (i >= 0 && i < n) return i;
  switch (v) {
    case PadValue::zero:
      return -1;
    case PadValue::reflect:
      return i < 0 ? -i : 2 * (n - 1) - i;
    case PadValue::replicate:
      return i < 0 ? 0 : n - 1;
  }
  return -1;
}

// Calls f(kk, q) for each kernel offset of the window at output position (od, oh, ow)
// whose input element exists: kk is the kernel offset index, q the element's index within
// one channel (padding by reflection or replication reads the element it copies).
template <class F>
void for_each_tap(const Window& w, int64_t od, int64_t oh, int64_t ow, F&& f) {
  int64_t kk = 0;
  for (int64_t kd = 0; kd < w.k[0]; ++kd) {
    const int64_t id = source_index(od * w.s[0] + kd * w.d[0] - w.lo[0], w.in[0], w.value);
    for (int64_t kh = 0; kh < w.k[1]; ++kh) {
      const int64_t ih = source_index(oh * w.s[1] + kh * w.d[1] - w.lo[1], w.in[1], w.value);
      for (int64_t kw = 0; kw < w.k[2]; ++kw, ++kk) {
        const int64_t iw = source_index(ow * w.s[2] + kw * w.d[2] - w.lo[2], w.in[2], w.value);
        if (id < 0 || ih < 0 || iw < 0) continue;
        f(kk, (id * w.in[1] + ih) * w.in[2] + iw);
      }
    }
  }
}

// Calls f(p, od, oh, ow) for every output position p of the window, in order.
template <class F>
void for_each_output(const Window& w, F&& f) {
  int64_t p = 0;
  for (int64_t od = 0; od < w.out[0]; ++od)
    for (int64_t oh = 0; oh < w.out[1]; ++oh)
      for (int64_t ow = 0; ow < w.out[2]; ++ow, ++p) f(p, od, oh, ow);
}

// cols[(c * k_vol + kk) * ld + p] = padded x[c] at window position p, kernel offset kk;
// ld (the row stride of cols, 0: out_vol) lets several samples share one matrix, side by side.
void im2col(const Window& w, int64_t channels, const float* x, float* cols, int64_t ld = 0);
// The adjoint: x[c] (overwritten) = sum of the columns that read each element.
void col2im(const Window& w, int64_t channels, const float* cols, float* x, int64_t ld = 0);
// The stride-2 rows of these and of the strided convolutions' phases (conv_algorithm.hpp):
// dst[o] = src[2 o] for first <= o < last, where src[0 .. avail) may be read;
void copy_even(const float* src, int64_t first, int64_t last, int64_t avail, float* dst);
// dst[2 m] = even[m] and dst[2 m + 1] = odd[m] for m < n; and back.
void interleave(const float* even, const float* odd, int64_t n, float* dst);
void deinterleave(const float* src, int64_t n, float* even, float* odd);
// impl: fast | reference (the naive kernel, kept for tests and debugging) of a layer's config.
bool reference_impl(const Config& c);
// Every tap of every window reads inside the input (no padding is ever read).
bool all_inside(const Window& w);
// Where all_inside: the offset of each tap from its window's first element, in tap order,
// and of each window's first element in the plane, so kernels index directly.
struct WindowOffsets {
  std::vector<int32_t> taps, starts;
};
WindowOffsets offsets_of(const Window& w);

// ONNX export (framework/onnx.hpp) of a window's geometry: the attributes of Conv,
// ConvTranspose and the pools, in the data's `rank` dimensions. pads is [lo..., hi...]
// with hi grown where ceil rounding adds a window that reaches past the padding.
struct OnnxWindow {
  std::vector<int64_t> kernel, strides, dilations, pads;
  bool padded() const;
};
OnnxWindow onnx_window(const Window& w);
// Where the window pads by reflection or replication: x [N, C, spatial...] padded by a
// Pad node (mode reflect or edge) and `ow`'s pads cleared; else x itself.
std::string onnx_pad_input(onnx::Graph& g, const std::string& x, const Window& w, OnnxWindow& ow,
                           const std::string& base);
// The attributes of a windowed node (kernel_shape, strides, pads, and dilations unless
// `dilations` is false).
std::vector<onnx::Attr> onnx_window_attrs(const OnnxWindow& ow, bool dilations = true);

// A depthwise convolution over the window (C groups of one channel) with `kernels`
// [C, k_vol] and an optional per-channel bias: the ONNX form of the layers that weight a
// window per channel (trainable subsampling, weighted pooling).
void onnx_depthwise_conv(onnx::Graph& g, const std::string& name, const std::string& x, const Window& w, int64_t C,
                         const std::vector<float>& kernels, const float* bias, const std::string& y);

// Per-dimension values parsed from a scalar or a list of `rank` entries (rank 0: any length).
std::vector<int64_t> parse_dims(const Config& c, int rank, const std::string& what, int64_t min_value);
// Expands per-dimension values to the three internal dimensions (leading unit dims get `unit`).
Dims3 expand_dims(const std::vector<int64_t>& v, int rank, int64_t unit);

}  // namespace hubel::layers
