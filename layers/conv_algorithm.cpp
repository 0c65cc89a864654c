// The pieces the convolution's fast algorithms share: bias and activation, block
// matrices, the wide layout and the chunked weight gradient.
#include "layers/conv_algorithm.hpp"

#include <algorithm>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "framework/config.hpp"
#include "framework/parallel.hpp"
#include "layers/gemm_kernels.hpp"
#include "layers/pool_fast.hpp"

namespace hubel::layers::conv_detail {

namespace {

// At most this many per-chunk weight-gradient partials, and at most this many bytes of them.
constexpr int64_t kMaxPartials = 32;
constexpr int64_t kPartialBytes = int64_t{256} << 20;

int64_t bias_size(const ConvProblem& p) {
  return p.bias == BiasKind::none ? 0 : p.bias == BiasKind::channel ? p.g.K : p.g.K * p.g.P();
}

}  // namespace

BiasKind parse_bias(const Config& c, bool location_allowed) {
  auto b = c.find("bias");
  if (!b) return BiasKind::channel;
  const auto v = b->as<std::string>();
  if (v == "true" || v == "channel") return BiasKind::channel;
  if (v == "false" || v == "none") return BiasKind::none;
  if (v == "location" && location_allowed) return BiasKind::location;
  b->fail(cat("bias must be true, false, channel", location_allowed ? ", location" : "", " or none; got '", v, "'"));
}

const char* bias_name(BiasKind b) {
  return b == BiasKind::none ? ", no bias" : b == BiasKind::location ? ", bias per location" : "";
}

std::string rank_suffix(int rank) { return rank ? cat(rank, "d") : ""; }

std::vector<int64_t> spatial_of(const Shape& x) { return {x.begin() + 1, x.end()}; }

int64_t max_partials(int64_t partial_size, int64_t max_batch) {
  const int64_t by_memory = std::max<int64_t>(1, kPartialBytes / 4 / std::max<int64_t>(partial_size, 1));
  return std::max<int64_t>(1, std::min({kMaxPartials, by_memory, max_batch}));
}

int64_t sample_grain(int64_t flops_per_sample) { return grain_for(flops_per_sample, int64_t{1} << 21); }

int64_t block_ld(int64_t columns) {
  const int64_t panel = std::max<int64_t>(kernel_panel(), 1);
  return (columns + panel - 1) / panel * panel;
}

int64_t block_samples(int64_t floats_per_sample) {
  return std::max<int64_t>(kBlockFloats / std::max<int64_t>(floats_per_sample, 1), 1);
}

void zero_columns(float* m, int64_t rows, int64_t from, int64_t ld) {
  if (from < ld)
    for (int64_t r = 0; r < rows; ++r) std::fill(m + r * ld + from, m + (r + 1) * ld, 0.0f);
}

void add_bias(BiasKind kind, const float* b, int64_t K, int64_t V, float* y) {
  if (kind == BiasKind::channel) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t q = 0; q < V; ++q) y[k * V + q] += b[k];
  } else if (kind == BiasKind::location) {
    for (int64_t q = 0; q < K * V; ++q) y[q] += b[q];
  }
}

void bias_gradient(BiasKind kind, const float* dy, int64_t K, int64_t V, bool first, float* db) {
  if (kind == BiasKind::channel) {
    for (int64_t k = 0; k < K; ++k) {
      // 16 running sums (one vector register), added at the end in a fixed order.
      float lane[16] = {};
      const float* d = dy + k * V;
      int64_t q = 0;
      for (; q + 16 <= V; q += 16)
        for (int l = 0; l < 16; ++l) lane[l] += d[q + l];
      float s = 0;
      for (int l = 0; l < 16; ++l) s += lane[l];
      for (; q < V; ++q) s += d[q];
      db[k] = first ? s : db[k] + s;
    }
  } else if (kind == BiasKind::location) {
    for (int64_t q = 0; q < K * V; ++q) db[q] = first ? dy[q] : db[q] + dy[q];
  }
}

void bias_gradient_rows(BiasKind kind, const float* d, int64_t ldk, int64_t rows, int64_t row_stride, int64_t OW,
                        int64_t K, bool first, float* db) {
  if (kind == BiasKind::channel) {
    // 16 lanes, lane l summing values q = l (mod 16) of every row in row order; each row's
    // last OW % 16 values go to the first lanes too: no serial chain of adds (LeNet's
    // 10-wide rows were all tail). Then the lanes in order.
    const int64_t tail = OW % 16, whole = OW - tail;
#if defined(__AVX2__)
    // (the tail by masked loads: +0 added to the other lanes, which are never -0 as
    // they start at +0, so the scalar loop's bits)
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(tail, 8))), lanes);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::max<int64_t>(tail - 8, 0))), lanes);
#endif
    for (int64_t k = 0; k < K; ++k) {
      float lane[16] = {};
#if defined(__AVX2__)
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = d + k * ldk + r * row_stride;
        for (int64_t q = 0; q < whole; q += 16) {
          a0 = _mm256_add_ps(a0, _mm256_loadu_ps(row + q));
          a1 = _mm256_add_ps(a1, _mm256_loadu_ps(row + q + 8));
        }
        if (tail) {
          a0 = _mm256_add_ps(a0, _mm256_maskload_ps(row + whole, m0));
          a1 = _mm256_add_ps(a1, _mm256_maskload_ps(row + whole + 8, m1));
        }
      }
      _mm256_storeu_ps(lane, a0);
      _mm256_storeu_ps(lane + 8, a1);
#else
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = d + k * ldk + r * row_stride;
        for (int64_t q = 0; q < whole; q += 16)
          for (int l = 0; l < 16; ++l) lane[l] += row[q + l];
        for (int64_t l = 0; l < tail; ++l) lane[l] += row[whole + l];
      }
#endif
      float s = 0;
      for (int l = 0; l < 16; ++l) s += lane[l];
      db[k] = first ? s : db[k] + s;
    }
  } else if (kind == BiasKind::location) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = d + k * ldk + r * row_stride;
        float* out = db + (k * rows + r) * OW;
        for (int64_t q = 0; q < OW; ++q) out[q] = first ? row[q] : out[q] + row[q];
      }
  }
}

void apply_relu(float* y, int64_t n) {
  parallel_chunks(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = y[i] > 0 ? y[i] : 0.0f;
  });
}

void mask_by_output(const float* y, const float* dy, int64_t n, float* out) {
  parallel_chunks(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = dy[i];  // read unconditionally: a select, not a masked load
      out[i] = y[i] > 0 ? v : 0.0f;
    }
  });
}

void store_output(const ConvProblem& p, const float* bias, const float* src, int64_t ldk, int64_t row_stride,
                  float* yi) {
  const int64_t K = p.g.K, P = p.g.P(), OW = p.g.w.out[2], rows = P / OW;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = src + k * ldk + r * row_stride;
      float* dst = yi + k * P + r * OW;
      // One pass: the bias, then the ReLU on the sum in a register.
      auto row = [&](auto bias_at) {
        if (p.relu)
          for (int64_t q = 0; q < OW; ++q) {
            const float v = s[q] + bias_at(q);
            dst[q] = v > 0 ? v : 0.0f;
          }
        else
          for (int64_t q = 0; q < OW; ++q) dst[q] = s[q] + bias_at(q);
      };
      if (p.bias == BiasKind::location) {
        const float* b = bias + k * P + r * OW;
        row([b](int64_t q) { return b[q]; });
      } else {
        const float b = bias ? bias[k] : 0.0f;
        row([b](int64_t) { return b; });
      }
    }
}

void load_gradient(const ConvProblem& p, const FusedPool& pool, ConstTensorView dy, ConstTensorView y, int64_t i,
                   float* dst, int64_t ldk, int64_t row_stride, int64_t width) {
  const int64_t K = p.g.K, P = p.g.P(), OW = p.g.w.out[2], rows = P / OW;
  for (int64_t k = 0; k < K; ++k) {
    float* d = dst + k * ldk;
    if (pool.w) {
      const int64_t at = (i * K + k) * pool.w->out_vol();
      pool_fast::max_2x2_backward_plane(*pool.w, pool.dy + at, pool.argmax + at, d, row_stride);
    } else {
      const float* src = dy.data() + (i * K + k) * P;
      const float* yk = y.data() + (i * K + k) * P;
      for (int64_t r = 0; r < rows; ++r) {
        float* dr = d + r * row_stride;
        const float* sr = src + r * OW;
        if (p.relu) {
          const float* yr = yk + r * OW;
          for (int64_t q = 0; q < OW; ++q) {
            const float v = sr[q];  // read unconditionally: a select, not a masked load
            dr[q] = yr[q] > 0 ? v : 0.0f;
          }
        } else {
          for (int64_t q = 0; q < OW; ++q) dr[q] = sr[q];  // short rows: no call per row
        }
      }
    }
    if (row_stride > OW)  // the wide positions
      for (int64_t r = 0; r < rows; ++r) std::fill(d + r * row_stride + OW, d + (r + 1) * row_stride, 0.0f);
    if (width > rows * row_stride) std::fill(d + rows * row_stride, d + width, 0.0f);
  }
}

void pool_output(const ConvProblem& p, const FusedPool& pool, ConstTensorView y, int64_t i) {
  if (!pool.w) return;
  const int64_t K = p.g.K, P = p.g.P(), PP = pool.w->out_vol();
  for (int64_t k = 0; k < K; ++k) {
    const int64_t at = (i * K + k) * PP;
    int32_t* a = pool.argmax ? pool.argmax + at : nullptr;
    const float* m = pool.y + at;
    pool_fast::max_2x2_plane(*pool.w, y.data() + (i * K + k) * P, pool.y + at, a);
    // The ReLU's gradient is 0 where the maximum is not positive (y > 0 at the maximum).
    if (a && p.relu)
      for (int64_t q = 0; q < PP; ++q) a[q] = m[q] > 0 ? a[q] : -1;
  }
}

// ---------------------------------------------------------------------------------------
// WideImage

bool WideImage::applies(const Window& w) {
  const bool strided_dilated = (w.s[1] > 1 && w.d[1] > 1) || (w.s[2] > 1 && w.d[2] > 1);
  // A 1x1 kernel reads the input itself (stride 1) or one phase of it (strided): im2col's
  // columns are that, with no padded copy to make.
  return w.value == PadValue::zero && w.in[0] == 1 && w.out[0] == 1 && w.k[0] == 1 && !strided_dilated && w.k_vol() > 1;
}

PaddedGradient::PaddedGradient(const Window& w, int64_t planes) {
  if (!WideImage::strided(w)) {
    Wq = w.in[2] + (w.k[2] - 1) * w.d[2];
    Hq = w.in[1] + (w.k[1] - 1) * w.d[1];
    top = (w.k[1] - 1) * w.d[1] - w.lo[1];
    left = (w.k[2] - 1) * w.d[2] - w.lo[2];
    c0 = std::max<int64_t>(0, -left);
    c1 = std::min(w.out[2], Wq - left);
    Pq = block_ld(w.in[1] * Wq);
    const int64_t kv = w.k[1] * w.k[2];
    Phase f;
    for (int64_t t = 0; t < kv; ++t) f.kernel.push_back(kv - 1 - t);
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw) f.taps.push_back((p * Hq + kh * w.d[1]) * Wq + kw * w.d[2]);
    phases.push_back(std::move(f));
    size = planes * Hq * Wq + (w.k[2] - 1) * w.d[2] + Pq - w.in[1] * Wq;
    return;
  }
  // Strided (dilation 1): M = ceil(k / s) taps of the largest phase along each dimension;
  // a phase plane has Hp = OH + (k - 1) / s rows, as WideImage's.
  const int64_t sh = w.s[1], sw = w.s[2], Mh = (w.k[1] + sh - 1) / sh, Mw = (w.k[2] + sw - 1) / sw;
  const int64_t Hp = w.out[1] + (w.k[1] - 1) / sh, Wp = w.out[2] + (w.k[2] - 1) / sw;
  top = Mh - 1;
  left = Mw - 1;
  Hq = Hp + Mh - 1;
  Wq = Wp + Mw - 1;
  c0 = 0;
  c1 = w.out[2];
  Pq = block_ld(Hp * Wq);
  for (int64_t a = 0; a < std::min(sh, w.k[1]); ++a)
    for (int64_t b = 0; b < std::min(sw, w.k[2]); ++b) {
      // dx(s i + a, s j + b) = sum over u, v of dY(i - u, j - v) W(a + s u, b + s v): in the
      // padded dY, row i + (Mh - 1 - u), column j + (Mw - 1 - v).
      Phase f;
      for (int64_t u = 0; a + sh * u < w.k[1]; ++u)
        for (int64_t v = 0; b + sw * v < w.k[2]; ++v) f.kernel.push_back((a + sh * u) * w.k[2] + b + sw * v);
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t u = 0; a + sh * u < w.k[1]; ++u)
          for (int64_t v = 0; b + sw * v < w.k[2]; ++v) f.taps.push_back((p * Hq + Mh - 1 - u) * Wq + Mw - 1 - v);
      phases.push_back(std::move(f));
    }
  size = planes * Hq * Wq + (Mw - 1) + Pq - Hp * Wq;
}

void PaddedGradient::crop(const Window& w, const WideImage& wide, int64_t C, const float* dxw, float* dxi) const {
  const int64_t H = w.in[1], Wd = w.in[2];
  if (!WideImage::strided(w)) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(dxi + (c * H + h) * Wd, dxw + c * Pq + h * Wq, static_cast<size_t>(Wd) * sizeof(float));
    return;
  }
  // Padded position (r, q) of channel c is phase f's wide position (i, j): at
  // dxw + (f C + c) Pq + i Wq + j. Positions no phase holds have no tap: zero.
  const int64_t sh = w.s[1], sw = w.s[2], pw = wide.pw, phase_floats = C * Pq;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t r = h + w.lo[1], a = r % sh, i = r / sh;
    const bool row = a < wide.ph && i < wide.Hp;
    for (int64_t c = 0; c < C; ++c) {
      float* out = dxi + (c * H + h) * Wd;
      if (!row) {
        std::fill(out, out + Wd, 0.0f);
        continue;
      }
      const float* src = dxw + (a * pw * C + c) * Pq + i * Wq;
      const auto one = [&](int64_t x) {
        const int64_t q = x + w.lo[2], b = q % sw, j = q / sw;
        out[x] = b < pw && j < wide.Wp ? src[b * phase_floats + j] : 0.0f;
      };
      int64_t x = 0;
      if (sw == 2 && pw == 2) {  // the pairs (x, x + 1) of phases 0 and 1, one vector each
        if (w.lo[2] % 2) one(x++);
        const int64_t j0 = (x + w.lo[2]) / 2, pairs = std::max<int64_t>(0, std::min((Wd - x) / 2, wide.Wp - j0));
        interleave(src + j0, src + phase_floats + j0, pairs, out + x);
        x += 2 * pairs;
      }
      for (; x < Wd; ++x) one(x);
    }
  }
}

WideImage::WideImage(const Conv::Geometry& g, int64_t panel) {
  const Window& w = g.w;
  const int64_t sh = w.s[1], sw = w.s[2];
  Hp = w.out[1] + (w.k[1] - 1) * w.d[1] / sh;
  Wp = w.out[2] + (w.k[2] - 1) * w.d[2] / sw;
  ph = std::min(sh, w.k[1]);
  pw = std::min(sw, w.k[2]);
  plane = ph * pw * Hp * Wp;
  Pc = w.out[1] * Wp;
  Pcp = panel > 0 ? (Pc + panel - 1) / panel * panel : Pc;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < w.k[1]; ++kh)
      for (int64_t kw = 0; kw < w.k[2]; ++kw) {
        const int64_t r = kh * w.d[1], q = kw * w.d[2];
        taps.push_back(c * plane + (((r % sh) * pw + q % sw) * Hp + r / sh) * Wp + q / sw);
      }
  // The last runs reach past the last plane: (k - 1) d at stride 1, and, read in place, up
  // to a panel further (the columns that round Pc up).
  int64_t end = g.C * plane;
  for (const int64_t t : taps) end = std::max(end, t + Pcp);
  floats = align_floats(end);
}

void WideImage::pad(const Conv::Geometry& g, const float* xi, float* xp) const {
  const Window& w = g.w;
  const int64_t H = w.in[1], Wd = w.in[2];
  std::fill(xp, xp + floats, 0.0f);
  if (!strided(w)) {
    const int64_t cols = std::min(Wd, Wp - w.lo[2]);
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t h = 0; h < H && h + w.lo[1] < Hp; ++h)
        std::memcpy(xp + (c * Hp + h + w.lo[1]) * Wp + w.lo[2], xi + (c * H + h) * Wd,
                    static_cast<size_t>(std::max<int64_t>(cols, 0)) * sizeof(float));
    return;
  }
  // Each input row into its phase rows: positions lo + x, every s_w-th to one phase.
  const int64_t sw = w.s[2];
  for (int64_t h = 0; h < H; ++h) {
    const int64_t row = at(h + w.lo[1], 0, w);
    if (row < 0) continue;  // a row no tap reads
    if (sw == 2 && pw == 2) {
      // x even and odd into their two phases: the pairs both of whose columns are inside
      // the phases (the odd one's column, (lo + 1) / 2 + m, is the later) in one pass, the
      // rest one by one.
      const int64_t r = h + w.lo[1], pairs = std::max<int64_t>(0, std::min(Wd / 2, Wp - (w.lo[2] + 1) / 2));
      for (int64_t c = 0; c < g.C; ++c) {
        const float* src = xi + (c * H + h) * Wd;
        float* xc = xp + c * plane;
        if (pairs > 0) deinterleave(src, pairs, xc + at(r, w.lo[2], w), xc + at(r, w.lo[2] + 1, w));
        for (int64_t x = 2 * pairs; x < Wd; ++x) {
          const int64_t to = at(r, x + w.lo[2], w);
          if (to >= 0) xc[to] = src[x];
        }
      }
      continue;
    }
    for (int64_t b = 0; b < pw; ++b) {
      // x = s_w j + b - lo for j from the first x >= 0 to the phase's end.
      int64_t j = b >= w.lo[2] ? 0 : (w.lo[2] - b + sw - 1) / sw;
      const int64_t x0 = sw * j + b - w.lo[2];
      const int64_t n = std::min(Wp - j, (Wd - x0 + sw - 1) / sw);
      if (n <= 0) continue;
      for (int64_t c = 0; c < g.C; ++c) {
        const float* src = xi + (c * H + h) * Wd + x0;
        float* dst = xp + c * plane + row + b * Hp * Wp + j;
        if (sw == 2)
          copy_even(src, 0, n, Wd - x0, dst);
        else
          for (int64_t m = 0; m < n; ++m) dst[m] = src[m * sw];
      }
    }
  }
}

void WideImage::columns(const Conv::Geometry& g, const float* xi, float* xp, float* cols, int64_t ld) const {
  pad(g, xi, xp);
  for (size_t row = 0; row < taps.size(); ++row)
    std::memcpy(cols + static_cast<int64_t>(row) * ld, xp + taps[row], static_cast<size_t>(Pc) * sizeof(float));
}

void WideImage::add_back(const Conv::Geometry& g, const float* dcols, int64_t ld, int64_t run, float* xp,
                         float* dxi) const {
  const Window& w = g.w;
  std::fill(xp, xp + floats, 0.0f);
  for (size_t row = 0; row < taps.size(); ++row) {
    float* d = xp + taps[row];
    const float* s = dcols + static_cast<int64_t>(row) * ld;
    if (run != Wp)  // output rows `run` apart in dcols, Wp apart in the image
      for (int64_t r = 0; r < w.out[1]; ++r)
        for (int64_t q = 0; q < w.out[2]; ++q) d[r * Wp + q] += s[r * run + q];
    else
      for (int64_t q = 0; q < Pc; ++q) d[q] += s[q];
  }
  // Crop the padding off (elements the windows never cover get zero).
  const int64_t H = w.in[1], Wd = w.in[2];
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < H; ++h) {
      float* out = dxi + (c * H + h) * Wd;
      for (int64_t x = 0; x < Wd; ++x) {
        const int64_t p = at(h + w.lo[1], x + w.lo[2], w);
        out[x] = p >= 0 ? xp[c * plane + p] : 0.0f;
      }
    }
}

// ---------------------------------------------------------------------------------------
// ChunkedConv

ChunkedConv::ChunkedConv(ConvProblem p) : p_(std::move(p)) {
  const int64_t dense = dense_size();
  if (p_.g.table) w_dense_ = AlignedBuffer(dense);
  partial_size_ = align_floats(dense + bias_size(p_));
  slots_ = p_.inference ? 0 : max_partials(partial_size_, p_.max_batch);
  if (slots_) partials_ = AlignedBuffer(slots_ * partial_size_);
}

void ChunkedConv::size_scratch(int64_t floats) {
  scratch_ = tbb::enumerable_thread_specific<AlignedBuffer>(
      [floats] { return AlignedBuffer(floats, AlignedBuffer::Uninitialized{}); });
}

const float* ChunkedConv::dense_weights(const ConvParams& p) {
  const Conv::Geometry& g = p_.g;
  if (!g.table) return p.w;
  const int64_t kvol = g.kvol(), C = g.C, K = g.K;
  float* d = w_dense_.data();
  for (int64_t t = 0; t < g.T; ++t)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = g.first_block[k]; j < g.first_block[k + 1]; ++j) {
        const int64_t c = p_.connections[static_cast<size_t>(k)][static_cast<size_t>(j - g.first_block[k])];
        std::memcpy(d + ((t * K + k) * C + c) * kvol, p.w + (t * g.blocks + j) * kvol,
                    static_cast<size_t>(kvol) * sizeof(float));
      }
  return d;
}

ChunkPlan ChunkedConv::chunks(const StepContext& ctx, int64_t n, int64_t grain) {
  const ChunkPlan plan = chunks_for(ctx, n, std::max(grain, (n + slots_ - 1) / slots_));
  if (plan.count > slots_) {  // an exact run's chunks: more partials, allocated once
    slots_ = plan.count;
    partials_ = AlignedBuffer(slots_ * partial_size_);
  }
  return plan;
}

void ChunkedConv::finish_gradients(const ConvParams& p, int64_t chunks, bool transposed) {
  const Conv::Geometry& g = p_.g;
  const int64_t dense = dense_size(), bias = bias_size(p_);
  // A table's dense gradient is summed into the first partial (each element read before
  // it is written), then scattered into the table's layout.
  float* dw_dense = g.table ? partials_.data() : p.dw;
  if (transposed) {
    if (sum_.size() < dense) sum_ = AlignedBuffer(dense, AlignedBuffer::Uninitialized{});
    float* t = sum_.data();
    tree_sum(partials_.data(), chunks, partial_size_, dense, t);
    const int64_t Kg = g.Kg, CgK = g.Cg * g.kvol();
    for (int64_t gr = 0; gr < g.groups; ++gr)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t q = 0; q < CgK; ++q) dw_dense[(gr * Kg + k) * CgK + q] = t[(gr * CgK + q) * Kg + k];
  } else {
    tree_sum(partials_.data(), chunks, partial_size_, dense, dw_dense);
  }
  if (bias) tree_sum(partials_.data() + dense, chunks, partial_size_, bias, p.db);
  if (!g.table) return;
  const int64_t kvol = g.kvol(), K = g.K;
  for (int64_t t = 0; t < g.T; ++t)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = g.first_block[k]; j < g.first_block[k + 1]; ++j) {
        const int64_t ch = p_.connections[static_cast<size_t>(k)][static_cast<size_t>(j - g.first_block[k])];
        std::memcpy(p.dw + (t * g.blocks + j) * kvol, dw_dense + ((t * K + k) * g.C + ch) * kvol,
                    static_cast<size_t>(kvol) * sizeof(float));
      }
}

}  // namespace hubel::layers::conv_detail
