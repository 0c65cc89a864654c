// Window geometry and the im2col / col2im kernels.
#include "layers/window.hpp"

#include <algorithm>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "framework/error.hpp"

namespace hubel::layers {

namespace {

const char* kDimNames3[3] = {"D", "H", "W"};

// The name of internal dimension t for data of spatial rank r ("W" for 1-D data).
std::string dim_name(int r, int i) { return r == 1 ? "W" : r == 2 ? (i == 0 ? "H" : "W") : kDimNames3[i]; }

std::string join_dims(const std::vector<int64_t>& v, const char* sep = "x") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += sep;
    s += std::to_string(v[i]);
  }
  return s;
}

int64_t pick(const std::vector<int64_t>& v, int i) { return v.size() == 1 ? v[0] : v[static_cast<size_t>(i)]; }

void check_rank(const std::vector<int64_t>& v, int r, const char* what,
                const std::function<void(const std::string&)>& fail) {
  if (v.size() != 1 && static_cast<int>(v.size()) != r)
    fail(cat(what, " has ", v.size(), " values but the input has ", r, " spatial dimension", r == 1 ? "" : "s"));
}

}  // namespace

std::vector<int64_t> parse_dims(const Config& c, int rank, const std::string& what, int64_t min_value) {
  std::vector<int64_t> v;
  if (c.is_sequence())
    v = c.as<std::vector<int64_t>>();
  else
    v = {c.as<int64_t>()};
  if (v.empty()) c.fail(cat(what, " needs at least one value"));
  if (v.size() > 3) c.fail(cat(what, " has ", v.size(), " values; at most 3 spatial dimensions are supported"));
  if (rank > 0 && v.size() != 1 && static_cast<int>(v.size()) != rank)
    c.fail(cat(what, " needs 1 or ", rank, " values for a ", rank, "-D layer; got ", v.size()));
  for (auto x : v)
    if (x < min_value) c.fail(cat(what, " must be at least ", min_value, "; got ", x));
  return v;
}

Dims3 expand_dims(const std::vector<int64_t>& v, int rank, int64_t unit) {
  Dims3 d{unit, unit, unit};
  for (int i = 0; i < rank; ++i) d[3 - rank + i] = pick(v, i);
  return d;
}

WindowOptions WindowOptions::parse(const Config& c, int rank, bool stride_defaults_to_kernel) {
  WindowOptions o;
  o.rank = rank;
  o.kernel = parse_dims(c.at("kernel"), rank, "kernel", 1);
  if (auto s = c.find("stride")) {
    o.stride = parse_dims(*s, rank, "stride", 1);
    o.stride_given = true;
  } else if (stride_defaults_to_kernel) {
    o.stride = o.kernel;
  }
  if (auto d = c.find("dilation")) o.dilation = parse_dims(*d, rank, "dilation", 1);
  if (auto p = c.find("padding")) {
    if (p->is_scalar()) {
      const auto text = p->as<std::string>();
      if (text == "valid")
        o.pad_mode = PadMode::valid;
      else if (text == "same")
        o.pad_mode = PadMode::same;
      else if (text == "full")
        o.pad_mode = PadMode::full;
      else if (!text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '-')) {
        o.pad_mode = PadMode::explicit_pad;
        o.pad_lo = o.pad_hi = parse_dims(*p, rank, "padding", 0);
      } else {
        p->fail(
            cat("padding must be valid, same, full, a number, a list of numbers (one per dimension) or a "
                "list of [before, after] pairs; got '",
                text, "'"));
      }
    } else if (p->is_sequence()) {
      o.pad_mode = PadMode::explicit_pad;
      auto items = p->items();
      if (!items.empty() && items[0].is_sequence()) {
        if (rank > 0 && static_cast<int>(items.size()) != rank)
          p->fail(cat("padding needs ", rank, " [before, after] pairs; got ", items.size()));
        if (items.size() > 3) p->fail("padding has more than 3 dimensions");
        o.pad_lo.clear();
        o.pad_hi.clear();
        for (const auto& it : items) {
          auto pair = it.as<std::vector<int64_t>>();
          if (pair.size() != 2) it.fail(cat("a padding pair is [before, after]; got ", pair.size(), " values"));
          if (pair[0] < 0 || pair[1] < 0) it.fail("padding must not be negative");
          o.pad_lo.push_back(pair[0]);
          o.pad_hi.push_back(pair[1]);
        }
      } else {
        o.pad_lo = o.pad_hi = parse_dims(*p, rank, "padding", 0);
      }
    } else {
      p->fail("padding must be valid, same, full, a number or a list");
    }
  }
  const auto value = c.choice("padding_value", {"zero", "reflect", "replicate"}, "zero");
  o.pad_value = value == "reflect" ? PadValue::reflect : value == "replicate" ? PadValue::replicate : PadValue::zero;
  const auto rounding = c.choice("rounding", {"exact", "floor", "ceil"}, "exact");
  o.rounding = rounding == "floor" ? Rounding::floor : rounding == "ceil" ? Rounding::ceil : Rounding::exact;
  return o;
}

std::string WindowOptions::describe() const {
  std::vector<int64_t> k = kernel;
  if (rank > 1 && k.size() == 1) k.assign(static_cast<size_t>(rank), k[0]);
  std::string s = join_dims(k);
  if (stride.size() > 1 || stride[0] != 1) s += ", stride " + join_dims(stride, ",");
  if (dilation.size() > 1 || dilation[0] != 1) s += ", dilation " + join_dims(dilation, ",");
  switch (pad_mode) {
    case PadMode::valid:
      break;
    case PadMode::same:
      s += ", same padding";
      break;
    case PadMode::full:
      s += ", full padding";
      break;
    case PadMode::explicit_pad:
      if (pad_lo == pad_hi) {
        if (pad_lo.size() > 1 || pad_lo[0] != 0) s += ", padding " + join_dims(pad_lo, ",");
      } else {
        s += ", padding " + join_dims(pad_lo, ",") + " / " + join_dims(pad_hi, ",");
      }
  }
  if (pad_value == PadValue::reflect) s += " (reflect)";
  if (pad_value == PadValue::replicate) s += " (replicate)";
  if (rounding == Rounding::floor) s += ", floor";
  if (rounding == Rounding::ceil) s += ", ceil";
  return s;
}

Shape Window::out_shape(int64_t channels) const {
  std::array<int64_t, 4> dims{channels, 0, 0, 0};
  for (int i = 0; i < rank; ++i) dims[1 + i] = out[3 - rank + i];
  return Shape(std::span<const int64_t>(dims.data(), static_cast<size_t>(rank + 1)));
}

Shape Window::in_shape(int64_t channels) const {
  std::array<int64_t, 4> dims{channels, 0, 0, 0};
  for (int i = 0; i < rank; ++i) dims[1 + i] = in[3 - rank + i];
  return Shape(std::span<const int64_t>(dims.data(), static_cast<size_t>(rank + 1)));
}

bool Window::is_pointwise() const {
  for (int t = 0; t < 3; ++t)
    if (k[t] != 1 || s[t] != 1 || lo[t] != 0 || hi[t] != 0) return false;
  return true;
}

bool reference_impl(const Config& c) { return c.choice("impl", {"fast", "reference"}, "fast") == "reference"; }

bool all_inside(const Window& w) {
  for (int t = 0; t < 3; ++t)
    if (w.lo[t] != 0 || (w.out[t] - 1) * w.s[t] + (w.k[t] - 1) * w.d[t] >= w.in[t]) return false;
  return true;
}

WindowOffsets offsets_of(const Window& w) {
  WindowOffsets o;
  for_each_tap(w, 0, 0, 0, [&](int64_t, int64_t q) { o.taps.push_back(static_cast<int32_t>(q)); });
  for (int64_t od = 0; od < w.out[0]; ++od)
    for (int64_t oh = 0; oh < w.out[1]; ++oh)
      for (int64_t ow = 0; ow < w.out[2]; ++ow)
        o.starts.push_back(static_cast<int32_t>((od * w.s[0] * w.in[1] + oh * w.s[1]) * w.in[2] + ow * w.s[2]));
  return o;
}

Window resolve_window(const WindowOptions& o, std::span<const int64_t> in,
                      const std::function<void(const std::string&)>& fail) {
  const int r = static_cast<int>(in.size());
  if (r < 1 || r > 3) fail(cat("needs 1 to 3 spatial dimensions; got ", r));
  if (o.rank && o.rank != r)
    fail(cat("is ", o.rank, "-D and expects an input [C", o.rank >= 3 ? ", D" : "", o.rank >= 2 ? ", H" : "",
             ", W]; got ", r, " spatial dimension", r == 1 ? "" : "s"));
  check_rank(o.kernel, r, "kernel", fail);
  check_rank(o.stride, r, "stride", fail);
  check_rank(o.dilation, r, "dilation", fail);
  check_rank(o.pad_lo, r, "padding", fail);
  Window w;
  w.rank = r;
  w.value = o.pad_value;
  for (int i = 0; i < r; ++i) {
    const int t = 3 - r + i;
    const std::string dn = dim_name(r, i);
    const int64_t n = in[static_cast<size_t>(i)], k = pick(o.kernel, i), s = pick(o.stride, i), d = pick(o.dilation, i);
    const int64_t ke = d * (k - 1) + 1;  // the extent of a dilated kernel
    int64_t lo = 0, hi = 0, out = 0;
    switch (o.pad_mode) {
      case PadMode::valid:
        break;
      case PadMode::full:
        lo = hi = ke - 1;
        break;
      case PadMode::explicit_pad:
        lo = pick(o.pad_lo, i), hi = pick(o.pad_hi, i);
        break;
      case PadMode::same: {
        // ceil(n / s) outputs; the padding needed is split, the odd one after.
        out = (n + s - 1) / s;
        const int64_t total = std::max<int64_t>(0, (out - 1) * s + ke - n);
        lo = total / 2;
        hi = total - lo;
        break;
      }
    }
    const int64_t span = n + lo + hi - ke;
    if (span < 0)
      fail(cat("dimension ", dn, ": the kernel spans ", ke, k != ke ? " (dilated)" : "",
               " but the padded input has only ", n + lo + hi, " (", n, " + padding ", lo, "+", hi, "): output size (",
               n, " - ", ke, " + ", lo + hi, ")/", s, " + 1 would not be positive"));
    if (o.pad_mode != PadMode::same) {
      const int64_t rem = span % s;
      out = span / s + 1;
      if (rem != 0) {
        if (o.rounding == Rounding::exact)
          fail(cat("dimension ", dn, ": windows of ", ke, " at stride ", s, " do not tile the input of ", n,
                   " with padding ", lo, "+", hi, ": (", n, " - ", ke, " + ", lo + hi, ")/", s, " + 1 = ", span, "/", s,
                   " + 1 is not whole (", rem, " element", rem == 1 ? "" : "s",
                   " left over). Change the padding or "
                   "stride, or choose rounding: floor (drop them) or rounding: ceil (one more window, over padding)"));
        if (o.rounding == Rounding::ceil) {
          ++out;
          hi += s - rem;
        }
      }
    }
    if (w.value == PadValue::reflect && (lo > n - 1 || hi > n - 1))
      fail(cat("dimension ", dn, ": reflect padding of ", std::max(lo, hi), " needs an input of at least ",
               std::max(lo, hi) + 1, "; got ", n));
    w.in[t] = n;
    w.out[t] = out;
    w.k[t] = k;
    w.s[t] = s;
    w.d[t] = d;
    w.lo[t] = lo;
    w.hi[t] = hi;
  }
  return w;
}

Window resolve_transposed_window(const WindowOptions& o, std::span<const int64_t> in,
                                 std::span<const int64_t> output_padding,
                                 const std::function<void(const std::string&)>& fail) {
  const int r = static_cast<int>(in.size());
  if (r < 1 || r > 3) fail(cat("needs 1 to 3 spatial dimensions; got ", r));
  if (o.rank && o.rank != r)
    fail(cat("is ", o.rank, "-D; got an input with ", r, " spatial dimension", r == 1 ? "" : "s"));
  check_rank(o.kernel, r, "kernel", fail);
  check_rank(o.stride, r, "stride", fail);
  check_rank(o.dilation, r, "dilation", fail);
  check_rank(o.pad_lo, r, "padding", fail);
  if (o.pad_value != PadValue::zero) fail("a transposed convolution pads with zeros only");
  if (o.rounding != Rounding::exact) fail("rounding does not apply to a transposed convolution (use output_padding)");
  const std::vector<int64_t> op(output_padding.begin(), output_padding.end());
  if (!op.empty()) check_rank(op, r, "output_padding", fail);
  Window w;
  w.rank = r;
  for (int i = 0; i < r; ++i) {
    const int t = 3 - r + i;
    const std::string dn = dim_name(r, i);
    const int64_t m = in[static_cast<size_t>(i)], k = pick(o.kernel, i), s = pick(o.stride, i), d = pick(o.dilation, i);
    const int64_t ke = d * (k - 1) + 1;
    int64_t lo = 0, hi = 0, extra = op.empty() ? 0 : pick(op, i);
    switch (o.pad_mode) {
      case PadMode::valid:
        break;
      case PadMode::full:
        lo = hi = ke - 1;
        break;
      case PadMode::explicit_pad:
        lo = pick(o.pad_lo, i), hi = pick(o.pad_hi, i);
        break;
      case PadMode::same:
        // Output m * s: the transpose of a "same" convolution of stride s.
        if (ke >= s) {
          lo = (ke - s) / 2;
          hi = ke - s - lo;
        } else {
          extra += s - ke;
        }
        break;
    }
    if (extra >= std::max(s, d))
      fail(cat("dimension ", dn, ": output_padding ", extra, " must be smaller than the stride or the dilation"));
    const int64_t out = (m - 1) * s - lo - hi + ke + extra;
    if (out <= 0)
      fail(cat("dimension ", dn, ": output size (", m, " - 1)*", s, " - ", lo + hi, " + ", ke, " + ", extra, " = ", out,
               " is not positive"));
    w.in[t] = out;
    w.out[t] = m;
    w.k[t] = k;
    w.s[t] = s;
    w.d[t] = d;
    w.lo[t] = lo;
    w.hi[t] = hi + extra;
  }
  return w;
}

namespace {

// For one row of columns (kernel offset `off` = kw*d - lo along W): the range of output
// positions [first, last) whose input index ow*s + off falls inside [0, n).
inline void inside_range(int64_t out, int64_t s, int64_t off, int64_t n, int64_t& first, int64_t& last) {
  first = off < 0 ? (-off + s - 1) / s : 0;
  last = n - off > 0 ? (n - off + s - 1) / s : 0;
  first = std::min(first, out);
  last = std::clamp(last, first, out);
}

// Walks every (channel, kernel offset, output row) of the window and calls
// row(col_row, image_row or nullptr, offset along W) — the shared skeleton of im2col and col2im.
template <class Image, class Row>
void walk_rows(const Window& w, int64_t channels, Image* x, int64_t ld, Row&& row) {
  const int64_t P = ld ? ld : w.out_vol(), iv = w.in_vol();
  int64_t kk = 0;
  for (int64_t c = 0; c < channels; ++c) {
    Image* xc = x + c * iv;
    for (int64_t kd = 0; kd < w.k[0]; ++kd)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw, ++kk) {
          const int64_t row_base = kk * P;
          const int64_t off_w = kw * w.d[2] - w.lo[2];
          for (int64_t od = 0; od < w.out[0]; ++od) {
            const int64_t id = source_index(od * w.s[0] + kd * w.d[0] - w.lo[0], w.in[0], w.value);
            for (int64_t oh = 0; oh < w.out[1]; ++oh) {
              const int64_t ih = source_index(oh * w.s[1] + kh * w.d[1] - w.lo[1], w.in[1], w.value);
              const int64_t col = row_base + (od * w.out[1] + oh) * w.out[2];
              row(col, id < 0 || ih < 0 ? nullptr : xc + (id * w.in[1] + ih) * w.in[2], off_w);
            }
          }
        }
  }
}

// dst[2 o] += src[o] for first <= o < last, col2im's stride-2 row, where dst[0 .. avail)
// is the image's row: eight at a time into two contiguous vectors whose odd floats are
// written back as they were read (adding a zero would turn -0 into +0).
inline void add_even(const float* src, int64_t first, int64_t last, int64_t avail, float* dst) {
  int64_t o = first;
#if defined(__AVX2__)
  const __m256i spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  for (; o + 8 <= last && 2 * o + 16 <= avail; o += 8) {
    const __m256 v = _mm256_loadu_ps(src + o);              // v0 .. v7
    const __m256 lo = _mm256_permutevar8x32_ps(v, spread);  // v0 v0 v1 v1 v2 v2 v3 v3
    const __m256 hi = _mm256_permutevar8x32_ps(v, _mm256_add_epi32(spread, _mm256_set1_epi32(4)));  // v4 .. v7 twice
    float* d = dst + 2 * o;
    const __m256 a = _mm256_loadu_ps(d), b = _mm256_loadu_ps(d + 8);
    _mm256_storeu_ps(d, _mm256_blend_ps(a, _mm256_add_ps(a, lo), 0x55));
    _mm256_storeu_ps(d + 8, _mm256_blend_ps(b, _mm256_add_ps(b, hi), 0x55));
  }
#endif
  for (; o < last; ++o) dst[2 * o] += src[o];
}

}  // namespace

// Eight at a time from two contiguous vectors (the scalar gather of every other float was
// a quarter of the speed).
void copy_even(const float* src, int64_t first, int64_t last, int64_t avail, float* dst) {
  int64_t o = first;
#if defined(__AVX2__)
  for (; o + 8 <= last && 2 * o + 16 <= avail; o += 8) {
    const __m256 a = _mm256_loadu_ps(src + 2 * o), b = _mm256_loadu_ps(src + 2 * o + 8);
    const __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
    _mm256_storeu_ps(dst + o, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8)));
  }
#endif
  for (; o < last; ++o) dst[o] = src[2 * o];
}

void interleave(const float* even, const float* odd, int64_t n, float* dst) {
  int64_t m = 0;
#if defined(__AVX2__)
  for (; m + 8 <= n; m += 8) {
    const __m256 a = _mm256_loadu_ps(even + m), b = _mm256_loadu_ps(odd + m);
    const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);  // a0 b0 a1 b1 | a4 b4 a5 b5, ...
    _mm256_storeu_ps(dst + 2 * m, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(dst + 2 * m + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
#endif
  for (; m < n; ++m) {
    dst[2 * m] = even[m];
    dst[2 * m + 1] = odd[m];
  }
}

void deinterleave(const float* src, int64_t n, float* even, float* odd) {
  int64_t m = 0;
#if defined(__AVX2__)
  for (; m + 8 <= n; m += 8) {
    const __m256 a = _mm256_loadu_ps(src + 2 * m), b = _mm256_loadu_ps(src + 2 * m + 8);
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
    const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));  // a1 a3 b1 b3 | a5 a7 b5 b7
    _mm256_storeu_ps(even + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    _mm256_storeu_ps(odd + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
  }
#endif
  for (; m < n; ++m) {
    even[m] = src[2 * m];
    odd[m] = src[2 * m + 1];
  }
}

void im2col(const Window& w, int64_t channels, const float* x, float* cols, int64_t ld) {
  const int64_t ow = w.out[2], s = w.s[2], n = w.in[2];
  walk_rows(w, channels, x, ld, [&](int64_t col, const float* src, int64_t off) {
    float* dst = cols + col;
    if (!src) {
      std::fill(dst, dst + ow, 0.0f);
      return;
    }
    int64_t first, last;
    inside_range(ow, s, off, n, first, last);
    for (int64_t o = 0; o < first; ++o) {
      const int64_t i = source_index(o * s + off, n, w.value);
      dst[o] = i < 0 ? 0.0f : src[i];
    }
    if (s == 1) {
      // A plain loop, not memcpy: rows are short (10 to 30 floats in LeNet), and a call
      // per row cost more than the copy.
      const float* sr = src + off;
      for (int64_t o = first; o < last; ++o) dst[o] = sr[o];
    } else if (s == 2) {
      copy_even(src + off, first, last, n - off, dst);
    } else {
      for (int64_t o = first; o < last; ++o) dst[o] = src[o * s + off];
    }
    for (int64_t o = last; o < ow; ++o) {
      const int64_t i = source_index(o * s + off, n, w.value);
      dst[o] = i < 0 ? 0.0f : src[i];
    }
  });
}

void col2im(const Window& w, int64_t channels, const float* cols, float* x, int64_t ld) {
  std::fill(x, x + channels * w.in_vol(), 0.0f);
  const int64_t ow = w.out[2], s = w.s[2], n = w.in[2];
  walk_rows(w, channels, x, ld, [&](int64_t col, float* dst, int64_t off) {
    if (!dst) return;
    const float* src = cols + col;
    int64_t first, last;
    inside_range(ow, s, off, n, first, last);
    for (int64_t o = 0; o < first; ++o) {
      const int64_t i = source_index(o * s + off, n, w.value);
      if (i >= 0) dst[i] += src[o];
    }
    if (s == 1) {
      float* d = dst + off;
      for (int64_t o = first; o < last; ++o) d[o] += src[o];
    } else if (s == 2) {
      add_even(src, first, last, n - off, dst + off);
    } else {
      for (int64_t o = first; o < last; ++o) dst[o * s + off] += src[o];
    }
    for (int64_t o = last; o < ow; ++o) {
      const int64_t i = source_index(o * s + off, n, w.value);
      if (i >= 0) dst[i] += src[o];
    }
  });
}

}  // namespace hubel::layers

namespace hubel::layers {

bool OnnxWindow::padded() const {
  return std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p != 0; });
}

OnnxWindow onnx_window(const Window& w) {
  OnnxWindow o;
  std::vector<int64_t> hi;
  for (int i = 3 - w.rank; i < 3; ++i) {
    o.kernel.push_back(w.k[i]);
    o.strides.push_back(w.s[i]);
    o.dilations.push_back(w.d[i]);
    o.pads.push_back(w.lo[i]);
    const int64_t reach = (w.out[i] - 1) * w.s[i] + w.d[i] * (w.k[i] - 1) + 1 - w.in[i] - w.lo[i];
    hi.push_back(std::max(w.hi[i], reach));
  }
  o.pads.insert(o.pads.end(), hi.begin(), hi.end());
  return o;
}

std::string onnx_pad_input(onnx::Graph& g, const std::string& x, const Window& w, OnnxWindow& ow,
                           const std::string& base) {
  if (w.value == PadValue::zero || !ow.padded()) return x;
  const auto r = static_cast<size_t>(w.rank);
  std::vector<int64_t> pads(2 * (r + 2), 0);  // N and C unpadded
  for (size_t i = 0; i < r; ++i) {
    pads[2 + i] = ow.pads[i];
    pads[r + 4 + i] = ow.pads[r + i];
  }
  std::fill(ow.pads.begin(), ow.pads.end(), 0);
  const std::string p = g.constant_i64(base + "_pads", {static_cast<int64_t>(pads.size())}, pads);
  return g.op("Pad", {x, p}, base + "_padded",
              {onnx::attr("mode", std::string(w.value == PadValue::reflect ? "reflect" : "edge"))});
}

void onnx_depthwise_conv(onnx::Graph& g, const std::string& name, const std::string& x, const Window& w, int64_t C,
                         const std::vector<float>& kernels, const float* bias, const std::string& y) {
  std::vector<int64_t> wd{C, 1};
  for (int i = 3 - w.rank; i < 3; ++i) wd.push_back(w.k[i]);
  OnnxWindow ow = onnx_window(w);
  std::vector<std::string> in{onnx_pad_input(g, x, w, ow, name), g.constant(name + "_w", wd, kernels)};
  if (bias) in.push_back(g.constant(name + "_b", {C}, std::span<const float>(bias, static_cast<size_t>(C))));
  auto a = onnx_window_attrs(ow);
  a.push_back(onnx::attr("group", C));
  g.node("Conv", in, {y}, std::move(a));
}

std::vector<onnx::Attr> onnx_window_attrs(const OnnxWindow& ow, bool dilations) {
  std::vector<onnx::Attr> a{onnx::attr("kernel_shape", ow.kernel), onnx::attr("strides", ow.strides),
                            onnx::attr("pads", ow.pads)};
  if (dilations) a.push_back(onnx::attr("dilations", ow.dilations));
  return a;
}

}  // namespace hubel::layers
