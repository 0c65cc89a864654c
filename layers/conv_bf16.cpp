// The convolution's bf16 plan (train.precision: bf16, on a CPU with AVX512_BF16): the
// implicit-im2col products of conv_implicit.cpp, their operands rounded to bf16 and their
// sums kept in fp32 (bf16_products.hpp), twice the fp32 FMA rate. The weights stay fp32
// (the optimizer's master copy) and are rounded once per pass; activations, bias, the
// fused activation and every gradient the layer writes are fp32.
//
//   forward   y = W cols: the padded image is converted to pairs of channels (2c, 2c+1),
//             so that a tap of the pair image is a row of words, and W to the same pairs
//             (an odd count's last channel to pairs of neighbouring taps of a row);
//   weights   dW = dY cols^T: one dot product per weight over the block's positions, dY
//             and the padded image each converted to bf16 once;
//   input     dx = the correlation of the zero-padded dY with the flipped kernels, as one
//             product like the forward's: the padded dY in pairs of filters, the flipped
//             W^T in the same pairs, each sample's wide dx cropped into place.
//
// Zero padding, 1-D or 2-D, a kernel larger than 1, one weight set, one group (a connection
// table is expanded to dense weights). The wide layout of WideImage: Wp - OW extra
// positions per output row, computed and dropped, except where the output rows are whole
// kernel panels (the forward's product then writes y in place). Strided, the image is its
// phases (WideImage: each tap a stride-1 run of one phase), built in fp32 and converted,
// and the input gradient one product per phase. conv_im2col.cpp has the bf16 plan for the
// other convolutions (1x1, 3-D).
#include <algorithm>
#include <cstring>

#include "framework/parallel.hpp"
#include "layers/bf16_products.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/gemm_kernels.hpp"

namespace hubel::layers {

namespace {

using namespace conv_detail;

// Elements of type T in `floats` floats' room.
template <class T>
T* as(float* p) {
  return reinterpret_cast<T*>(p);
}

class Bf16Conv final : public ChunkedConv {
 public:
  explicit Bf16Conv(ConvProblem p)
      : ChunkedConv(std::move(p)), wide_(p_.g, kernel_panel()), q_(p_.g.w, (p_.g.K + 1) / 2) {
    const Conv::Geometry& g = p_.g;
    const int64_t kv = g.kvol(), plane = wide_.plane;
    C2_ = (g.C + 1) / 2;
    compact_ = g.w.out[2] % kernel_panel() == 0;
    K2_ = (g.K + 1) / 2;
    // An odd number of channels: the last one's taps are paired along the row instead,
    // the pair image's last plane holding (x[p], x[p + 1]) against (W[t], W[t + 1]) (a
    // channel paired with zeros would waste half of each product): a 5x5 kernel on one
    // channel is 15 products, not 25.
    tail_ = g.C % 2 == 1 && g.w.d[2] == 1 && g.w.s[2] == 1 && g.w.k[2] >= 2;
    full_ = tail_ ? g.C / 2 : C2_;
    for (int64_t c2 = 0; c2 < full_; ++c2)
      for (int64_t t = 0; t < kv; ++t) taps2_.push_back(c2 * plane + wide_.taps[static_cast<size_t>(t)]);
    if (tail_)
      for (int64_t kh = 0; kh < g.w.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.w.k[2]; kw += 2) taps2_.push_back(full_ * plane + kh * g.w.d[1] * wide_.Wp + kw);
    // The pair image: C2 planes of words, and the slack after the last plane that the
    // runs of the last taps read.
    pair_words_ = C2_ * plane + (wide_.floats - g.C * plane);
    // A block's samples share the weight gradient's dot products (one segment each): as
    // many as keep their padded images and dy in the L2 cache (no column matrix is built).
    nb_ = block_samples(g.C * plane + g.K * wide_.Pcp);
    const bool strided = WideImage::strided(g.w);
    block_max_ = std::min(nb_, std::max<int64_t>(p_.max_batch, 1));
    ld_max_ = block_ld(wide_.Pcp * block_max_);
    const int64_t image16 = room(wide_.floats, 2);
    // Per thread: the padded images of a block (bf16), one pair image, the block's y or dy
    // (fp32, bf16), the padded dY in pairs, a sample's wide dx and, strided, its fp32 phases.
    offsets_[0] = 0;                                                                     // bf16 images
    offsets_[1] = offsets_[0] + image16 * block_max_;                                    // pair image
    offsets_[2] = offsets_[1] + room(pair_words_, 4);                                    // y or dy, fp32 [K, L]
    offsets_[3] = offsets_[2] + align_floats(g.K * ld_max_);                             // dy bf16 [K, L]
    offsets_[4] = offsets_[3] + room(g.K * ld_max_, 2);                                  // padded dY pairs
    offsets_[5] = offsets_[4] + room(q_.size, 4);                                        // wide dx [phases, C, Pq]
    offsets_[6] = offsets_[5] + (p_.inference ? 0 : align_floats(q_.wide_floats(g.C)));  // fp32 phases
    size_scratch(offsets_[6] + (strided ? wide_.floats : 0));
    w2_ = AlignedBuffer(room(g.K * C2_ * kv, 4), AlignedBuffer::Uninitialized{});
    wt_rows_ = AlignedBuffer(2 * kv, AlignedBuffer::Uninitialized{});
    if (!p_.inference) wf2_ = AlignedBuffer(room(g.C * kv * K2_, 4), AlignedBuffer::Uninitialized{});
  }

  std::string detail() const override { return "bf16 products, fp32 sums"; }

  bool fuses_pool() const override { return true; }

  void forward(const ConvParams& prm, ConstTensorView x, TensorView y, const StepContext& ctx,
               const FusedPool& pool) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), K = g.K, kv = g.kvol(), OW = g.w.out[2];
    const int64_t in_stride = g.C * g.w.in_vol(), sc = wide_.Pcp, CK2 = static_cast<int64_t>(taps2_.size());
    const float* W = dense_weights(prm);
    // W in pairs of channels: w2[k][c2 kv + t] = (W[k][2c2][t], W[k][2c2 + 1][t]); the
    // tail's in pairs of taps along the row, (W[k][C - 1][t], W[k][C - 1][t + 1]).
    uint32_t* w2 = as<uint32_t>(w2_.data());
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t c2 = 0; c2 < full_; ++c2) {
        const float* lo = W + (k * g.C + 2 * c2) * kv;
        to_bf16_pairs(lo, 2 * c2 + 1 < g.C ? lo + kv : nullptr, kv, w2 + k * CK2 + c2 * kv);
      }
      if (!tail_) continue;
      const float* last = W + (k * g.C + g.C - 1) * kv;
      float* lo = wt_rows_.data();
      float* hi = lo + kv;
      int64_t j = 0;
      for (int64_t kh = 0; kh < g.w.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.w.k[2]; kw += 2, ++j) {
          lo[j] = last[kh * g.w.k[2] + kw];
          hi[j] = kw + 1 < g.w.k[2] ? last[kh * g.w.k[2] + kw + 1] : 0.0f;
        }
      to_bf16_pairs(lo, hi, j, w2 + k * CK2 + full_ * kv);
    }
    for_each_piece(ctx, n, sample_grain(2 * g.blocks * kv * P), [&](int64_t n0, int64_t n1) {
      float* s = scratch_.local().data();
      uint32_t* x2 = as<uint32_t>(s + offsets_[1]);
      float* xf = s + offsets_[6];
      float* yb = s + offsets_[2];
      for (int64_t i = n0; i < n1; ++i) {
        pair_image(x.data() + i * in_stride, x2, xf);
        float* yi = y.data() + i * K * P;
        if (compact_) {  // each panel's columns from its own image row, straight into y
          bf16_nn(K, P, CK2, w2, CK2, x2, taps2_.data(), 0, yi, P, OW, wide_.Wp);
          if (prm.b || p_.relu) store_output(p_, prm.b, yi, P, OW, yi);
        } else {  // the wide positions, dropped by the copy
          bf16_nn(K, sc, CK2, w2, CK2, x2, taps2_.data(), 0, yb, sc);
          store_output(p_, prm.b, yb, sc, wide_.Wp, yi);
        }
        pool_output(p_, pool, y, i);
      }
    });
  }

  void backward(const ConvParams& prm, ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx, const FusedPool& pool) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), K = g.K, kv = g.kvol(), CK = g.C * kv;
    const int64_t in_stride = g.C * g.w.in_vol(), OW = g.w.out[2], rows = P / OW, Wp = wide_.Wp;
    const int64_t sc = wide_.Pcp, image16 = room(wide_.floats, 2) * 2;
    const float* W = dense_weights(prm);
    // Each phase's flipped W^T in pairs of filters (PaddedGradient): wf2[c][k2 nt + t] =
    // (W[2k2][c][kernel[t]], W[2k2+1][c][kernel[t]]); at stride 1, kernel[t] = kv - 1 - t.
    if (!dx.empty()) {
      uint32_t* wf2 = as<uint32_t>(wf2_.data());
      float* lo = wt_rows_.data();
      float* hi = lo + kv;
      for (const PaddedGradient::Phase& f : q_.phases) {
        const int64_t nt = static_cast<int64_t>(f.kernel.size());
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t k2 = 0; k2 < K2_; ++k2, wf2 += nt) {
            const float* a = W + (2 * k2 * g.C + c) * kv;
            const float* b = 2 * k2 + 1 < K ? W + ((2 * k2 + 1) * g.C + c) * kv : nullptr;
            for (int64_t t = 0; t < nt; ++t) {
              lo[t] = a[f.kernel[static_cast<size_t>(t)]];
              hi[t] = b ? b[f.kernel[static_cast<size_t>(t)]] : 0.0f;
            }
            to_bf16_pairs(lo, hi, nt, wf2);
          }
      }
    }
    const ChunkPlan plan = chunks(ctx, n, std::max(nb_, sample_grain(4 * g.blocks * kv * P)));
    const int64_t chunks = plan.count;
    for_each_block(plan, n, nb_, [&](const Block& blk, float* s) {
      uint16_t* xb = as<uint16_t>(s + offsets_[0]);
      float* dyb = s + offsets_[2];
      uint16_t* dy16 = as<uint16_t>(s + offsets_[3]);
      uint32_t* q = as<uint32_t>(s + offsets_[4]);
      float* dxw = s + offsets_[5];
      float* xf = s + offsets_[6];
      const int64_t b0 = blk.b0, nb = blk.nb;
      const bool first = blk.first;
      float* dW = blk.dw;
      float* db = blk.db;
      const int64_t L = block_ld(nb * sc);
      zero_columns(dyb, K, nb * sc, L);
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t i = b0 + j;
        plain_image(x.data() + i * in_stride, xb + j * image16, xf);
        load_gradient(p_, pool, dy, y, i, dyb + j * sc, L, Wp, sc);
        bias_gradient_rows(p_.bias, dyb + j * sc, L, rows, Wp, OW, K, first && j == 0, db);
      }
      // dW[K, C kv] over the block's samples, each in its own image; the wide
      // positions and the columns past each sample's Pc are zero in dy.
      to_bf16(dyb, K * L, dy16);
      bf16_nt(K, CK, sc, dy16, L, xb, wide_.taps.data(), first ? 0.0f : 1.0f, dW, CK, nb, sc, image16);
      if (dx.empty()) return;
      for (int64_t j = 0; j < nb; ++j) input_gradient(dyb + j * sc, L, q, dxw, dx.data() + (b0 + j) * in_stride);
    });
    finish_gradients(prm, chunks, false);
  }

 private:
  // One sample's zero-padded image (WideImage's layout) in bf16: plain, or in pairs of
  // channels (2c2, 2c2 + 1), straight from x at stride 1; strided, through WideImage::pad's
  // fp32 phases in xf.
  template <class T>
  void padded(const float* xi, T* out, int64_t words, bool pairs, float* xf) const {
    const Conv::Geometry& g = p_.g;
    if (WideImage::strided(g.w)) {
      wide_.pad(g, xi, xf);
      const int64_t plane = wide_.plane;
      if constexpr (sizeof(T) == 4) {
        for (int64_t c2 = 0; c2 < C2_; ++c2) {
          const float* lo = xf + 2 * c2 * plane;
          to_bf16_pairs(lo, 2 * c2 + 1 < g.C ? lo + plane : nullptr, plane, out + c2 * plane);
        }
        std::fill(out + C2_ * plane, out + words, T{0});
      } else {
        to_bf16(xf, words, out);
      }
      return;
    }
    const Window& w = g.w;
    const int64_t H = w.in[1], Wd = w.in[2], Hp = wide_.Hp, Wp = wide_.Wp;
    const int64_t cols = std::max<int64_t>(0, std::min(Wd, Wp - w.lo[2]));
    std::fill(out, out + words, T{0});
    for (int64_t c = 0; c < g.C; c += pairs ? 2 : 1) {
      const float* lo = xi + c * H * Wd;
      const float* hi = pairs && c + 1 < g.C ? lo + H * Wd : nullptr;
      T* plane = out + (pairs ? c / 2 : c) * Hp * Wp + w.lo[1] * Wp + w.lo[2];
      for (int64_t h = 0; h < H && h + w.lo[1] < Hp; ++h) {
        if constexpr (sizeof(T) == 4)
          to_bf16_pairs(lo + h * Wd, hi ? hi + h * Wd : nullptr, cols, plane + h * Wp);
        else
          to_bf16(lo + h * Wd, cols, plane + h * Wp);
      }
    }
  }
  void pair_image(const float* xi, uint32_t* x2, float* xf) const {
    padded(xi, x2, pair_words_, true, xf);
    if (!tail_) return;
    // The last plane holds (x[p], 0): make it (x[p], x[p + 1]), the slack included.
    uint32_t* t = x2 + full_ * wide_.plane;
    const int64_t words = pair_words_ - full_ * wide_.plane;
    for (int64_t p = 0; p + 1 < words; ++p) t[p] |= t[p + 1] << 16;
  }
  void plain_image(const float* xi, uint16_t* xb, float* xf) const { padded(xi, xb, wide_.floats, false, xf); }

  // One sample's dx from its dy (plane k at d + k * ldk, output rows Wp apart): dY padded
  // and paired, the product with the flipped weights, the wide positions cropped.
  void input_gradient(const float* d, int64_t ldk, uint32_t* q, float* dxw, float* dxi) {
    const Conv::Geometry& g = p_.g;
    const int64_t OH = g.w.out[1], K = g.K;
    std::fill(q, q + q_.size, 0u);
    for (int64_t k2 = 0; k2 < K2_; ++k2)
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t at = q_.row_at(k2, oh);
        if (at < 0) continue;
        const float* lo = d + 2 * k2 * ldk + oh * wide_.Wp + q_.c0;
        to_bf16_pairs(lo, 2 * k2 + 1 < K ? lo + ldk : nullptr, q_.c1 - q_.c0, q + at);
      }
    const uint32_t* wf2 = as<uint32_t>(wf2_.data());
    float* out = dxw;
    for (const PaddedGradient::Phase& f : q_.phases) {
      const int64_t nt = static_cast<int64_t>(f.kernel.size());
      bf16_nn(g.C, q_.Pq, K2_ * nt, wf2, K2_ * nt, q, f.taps.data(), 0, out, q_.Pq);
      wf2 += g.C * K2_ * nt;
      out += g.C * q_.Pq;
    }
    q_.crop(g.w, wide_, g.C, dxw, dxi);
  }

  WideImage wide_;
  bool compact_ = false;        // output rows of whole panels: y written in place
  int64_t C2_ = 0, K2_ = 0;     // pairs of channels, of filters (the last padded with a zero)
  bool tail_ = false;           // an odd channel count's last channel in pairs of taps
  int64_t full_ = 0;            // the planes of channel pairs (C2_, or C2_ - 1 with a tail)
  std::vector<int64_t> taps2_;  // the taps of the pair image, in words
  int64_t pair_words_ = 0;
  int64_t nb_ = 1, block_max_ = 1, ld_max_ = 0;
  int64_t offsets_[7] = {};  // the parts of a thread's scratch, in floats
  AlignedBuffer w2_, wf2_;   // the weights in pairs of channels; flipped W^T in pairs of filters
  AlignedBuffer wt_rows_;    // one pair's flipped kernels, split into its halves
  PaddedGradient q_;         // the padded dY in pairs of filters, in words
};

}  // namespace

std::unique_ptr<ConvAlgorithm> make_bf16_conv(const ConvProblem& p) { return std::make_unique<Bf16Conv>(p); }

}  // namespace hubel::layers
