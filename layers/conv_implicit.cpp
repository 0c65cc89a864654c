// The convolution with its column matrix read in place (implicit im2col): zero padding, the
// product kernels of conv_products.hpp reading each column row (a tap) from the sample's
// zero-padded image (conv_algorithm.hpp, WideImage; a strided one's phases, where each tap
// is a stride-1 run). Three arrangements:
//   implicit      a block of samples per product, each sample's columns the wide
//                 positions OH * Wp (rounded up to whole kernel panels);
//   compact_rows  output rows of whole kernel panels: each panel's columns read from its
//                 own image row, straight into y, no wide position computed;
//   positions     the filters of a group are whole panels: y^T = cols^T W^T with the output
//                 positions as the product's rows (LeNet's c2: 100 positions a sample
//                 instead of 140).
// The weight gradient is made either by one dot product per weight (dW = dY cols^T) or
// transposed (dW^T = cols dY^T, where the filters of a group are whole panels), and the
// input gradient as the product of the flipped W^T with the zero-padded dY (dx is their
// correlation), like the forward's: one product, or one per phase when strided.
#include <algorithm>
#include <cstring>

#include "framework/parallel.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/conv_products.hpp"
#include "layers/gemm_kernels.hpp"

namespace hubel::layers {

namespace {

using namespace conv_detail;

class ImplicitConv final : public ChunkedConv {
 public:
  ImplicitConv(ConvProblem p, Conv::Plan plan)
      : ChunkedConv(std::move(p)), plan_(plan), wide_(p_.g, kernel_panel()), q_(p_.g.w, p_.g.K) {
    const Conv::Geometry& g = p_.g;
    const int64_t P = g.P(), OW = g.w.out[2], CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), panel = kernel_panel();
    compact_ = plan_ == Conv::Plan::compact_rows || plan_ == Conv::Plan::positions;
    if (compact_)  // output position q's column in the padded image
      for (int64_t q = 0; q < P; ++q) pmap_.push_back(q / OW * wide_.Wp + q % OW);
    // The weight gradient transposed with whole panels of filters, at least two, and many
    // taps (bench_conv: the CIFAR-sized net's c2, 64 filters and 288 taps, is faster so;
    // LeNet's c2, 16 filters, and the CIFAR net's c1, 27 taps, are not). With positions
    // as rows, the dot products in pieces would need rows of half panels: always transposed.
    transposed_ = plan_ == Conv::Plan::positions || (g.Kg % panel == 0 && g.Kg >= 2 * panel && CgK >= 64);
    nb_ = block_samples(CK * wide_.Pc);
    block_max_ = std::min(nb_, std::max<int64_t>(p_.max_batch, 1));
    const int64_t ld = block_ld(wide_.Pcp * block_max_);
    cols_floats_ = transposed_ ? align_floats(g.K * ld) : 0;
    // dy^T (transposed), y or dy of the block [K, ld], one padded image per sample of a block,
    // and the input gradient's padded dY and wide dx.
    size_scratch(cols_floats_ + align_floats(g.K * ld) + wide_.floats * block_max_ +
                 (p_.inference ? 0 : align_floats(q_.size) + align_floats(q_.wide_floats(g.C))));
    if (!p_.inference) wf_ = AlignedBuffer(g.C * g.Kg * g.kvol(), AlignedBuffer::Uninitialized{});
    if (plan_ == Conv::Plan::positions) w_t_ = AlignedBuffer(g.K * CgK, AlignedBuffer::Uninitialized{});
  }

  std::string detail() const override { return transposed_ ? "dW^T" : "dW by dot products"; }

  bool fuses_pool() const override { return true; }

  void forward(const ConvParams& prm, ConstTensorView x, TensorView y, const StepContext& ctx,
               const FusedPool& pool) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
    const int64_t in_stride = g.C * g.w.in_vol(), OW = g.w.out[2], Wp = wide_.Wp;
    const int64_t sc = wide_.Pcp, image = wide_.floats;
    const int64_t* taps = wide_.taps.data();
    const float* W = dense_weights(prm);
    if (plan_ == Conv::Plan::positions)  // W^T of each group, [CgK, Kg], side by side: [CgK, K]
      for (int64_t k = 0; k < K; ++k)
        for (int64_t q = 0; q < CgK; ++q) w_t_.data()[q * K + k] = W[k * CgK + q];
    for_each_piece(ctx, n, std::max(nb_, sample_grain(2 * g.blocks * g.kvol() * P)), [&](int64_t n0, int64_t n1) {
      float* yb = scratch_.local().data() + cols_floats_;
      float* xp = yb + align_floats(K * block_ld(sc * block_max_));
      for (int64_t b0 = n0; b0 < n1; b0 += nb_) {
        const int64_t nb = std::min(nb_, n1 - b0);
        for (int64_t j = 0; j < nb; ++j) pad(x.data() + (b0 + j) * in_stride, xp + j * image);
        if (plan_ == Conv::Plan::positions) {
          // y^T[P, K] = cols^T W^T, row q of cols^T read at position q's start in the
          // padded image through the tap offsets; then y with bias and activation.
          for (int64_t j = 0; j < nb; ++j) {
            for (int64_t gr = 0; gr < g.groups; ++gr)
              columns_t_times_weights_t(P, Kg, CgK, xp + j * image, pmap_.data(), taps + gr * CgK,
                                        w_t_.data() + gr * Kg, K, yb + gr * Kg, K);
            store_transposed(prm.b, yb, y.data() + (b0 + j) * K * P);
            pool_output(p_, pool, y, b0 + j);
          }
        } else if (compact_) {
          // Each panel's columns from its own image row, the product straight into y, then
          // bias and activation in place.
          for (int64_t j = 0; j < nb; ++j) {
            float* yi = y.data() + (b0 + j) * K * P;
            for (int64_t gr = 0; gr < g.groups; ++gr)
              weights_times_columns(Kg, P, CgK, W + gr * Kg * CgK, CgK,
                                    ImageColumns{xp + j * image, taps + gr * CgK, OW, Wp}, yi + gr * Kg * P, P);
            store_output(p_, prm.b, yi, P, OW, yi);
            pool_output(p_, pool, y, b0 + j);
          }
        } else {
          const int64_t L = block_ld(nb * sc);
          for (int64_t gr = 0; gr < g.groups; ++gr)
            for (int64_t j = 0; j < nb; ++j)
              weights_times_columns(Kg, sc, CgK, W + gr * Kg * CgK, CgK, {xp + j * image, taps + gr * CgK},
                                    yb + gr * Kg * L + j * sc, L);
          // The copy (dropping the wide positions), the bias and the activation in one pass.
          for (int64_t j = 0; j < nb; ++j) {
            store_output(p_, prm.b, yb + j * sc, L, Wp, y.data() + (b0 + j) * K * P);
            pool_output(p_, pool, y, b0 + j);
          }
        }
      }
    });
  }

  void backward(const ConvParams& prm, ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx, const FusedPool& pool) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
    const int64_t in_stride = g.C * g.w.in_vol(), OW = g.w.out[2], rows = P / OW, Wp = wide_.Wp;
    // Compact: dy keeps its own layout, P columns per sample, and the products skip the
    // padding between output rows.
    const int64_t row_stride = compact_ ? OW : Wp, sc = compact_ ? P : wide_.Pcp, image = wide_.floats;
    const int64_t* taps = wide_.taps.data();
    const float* W = dense_weights(prm);
    if (!dx.empty()) {  // each phase's flipped W^T of each group: wf[gr][c][k nt + t] = W[gr Kg + k][c][kernel[t]]
      float* wf = wf_.data();
      for (const PaddedGradient::Phase& f : q_.phases) {
        const int64_t nt = static_cast<int64_t>(f.kernel.size());
        for (int64_t gr = 0; gr < g.groups; ++gr)
          for (int64_t c = 0; c < g.Cg; ++c)
            for (int64_t k = 0; k < Kg; ++k, wf += nt) {
              const float* src = W + (gr * Kg + k) * CgK + c * g.kvol();
              for (int64_t t = 0; t < nt; ++t) wf[t] = src[f.kernel[static_cast<size_t>(t)]];
            }
      }
    }
    const ChunkPlan plan = chunks(ctx, n, std::max(nb_, sample_grain(4 * g.blocks * g.kvol() * P)));
    const int64_t chunks = plan.count;
    for_each_block(plan, n, nb_, [&](const Block& blk, float* s) {
      float* dyt = s;  // transposed: dy^T of the block, [nb * sc, K]
      float* dyb = dyt + cols_floats_;
      float* xp = dyb + align_floats(K * block_ld(sc * block_max_));
      const int64_t b0 = blk.b0, nb = blk.nb;
      const bool first = blk.first;
      float* dW = blk.dw;
      float* db = blk.db;
      // The columns past nb * sc are zero in dy (and those past Pc in each sample's
      // part): they add nothing.
      const int64_t L = block_ld(nb * sc);
      zero_columns(dyb, K, nb * sc, L);
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t i = b0 + j;
        pad(x.data() + i * in_stride, xp + j * image);
        load_gradient(p_, pool, dy, y, i, dyb + j * sc, L, row_stride, sc);
        bias_gradient_rows(p_.bias, dyb + j * sc, L, rows, row_stride, OW, K, first && j == 0, db);
        if (transposed_)  // dy^T in tiles of 8 positions: short rows read, a small block written
          for (int64_t q0 = 0; q0 < sc; q0 += 8) {
            float* t = dyt + (j * sc + q0) * K;
            const int64_t qn = std::min<int64_t>(8, sc - q0);  // positions may not be whole 8s
            for (int64_t k = 0; k < K; ++k) {
              const float* src = dyb + k * L + j * sc + q0;
              for (int64_t q = 0; q < qn; ++q) t[q * K + k] = src[q];
            }
          }
      }
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        float* dWg = dW + gr * Kg * CgK;
        if (transposed_)  // [CgK, Kg] per group, accumulated sample by sample
          for (int64_t j = 0; j < nb; ++j)
            columns_times_grad_t(CgK, Kg, sc, xp + j * image, taps + gr * CgK, compact_ ? pmap_.data() : nullptr,
                                 dyt + j * sc * K + gr * Kg, K, first && j == 0 ? 0.0f : 1.0f, dWg, Kg);
        else if (compact_)  // per sample: one piece of each dot product per output row
          for (int64_t j = 0; j < nb; ++j)
            grad_times_columns_t(Kg, CgK, OW, dyb + gr * Kg * L + j * sc, L, xp + j * image, taps + gr * CgK,
                                 first && j == 0 ? 0.0f : 1.0f, dWg, CgK, rows, OW, Wp);
        else  // one dot product per weight over the block's samples, each in its image
          grad_times_columns_t(Kg, CgK, sc, dyb + gr * Kg * L, L, xp, taps + gr * CgK, first ? 0.0f : 1.0f, dWg, CgK,
                               nb, sc, image);
      }
      if (dx.empty()) return;
      float* dq = xp + image * block_max_;
      for (int64_t j = 0; j < nb; ++j)
        input_gradient(dyb + j * sc, L, row_stride, dq, dq + align_floats(q_.size), dx.data() + (b0 + j) * in_stride);
    });
    finish_gradients(prm, chunks, transposed_);
  }

 private:
  void pad(const float* xi, float* xp) const { wide_.pad(p_.g, xi, xp); }
  // One sample's y [K, P] from y^T [P, K], with the bias and the activation.
  void store_transposed(const float* bias, const float* yt, float* yi) const {
    const int64_t K = p_.g.K, P = p_.g.P();
    for (int64_t k = 0; k < K; ++k) {
      const float* bl = p_.bias == BiasKind::location ? bias + k * P : nullptr;
      const float b = p_.bias == BiasKind::channel ? bias[k] : 0.0f;
      for (int64_t q = 0; q < P; ++q) {
        const float v = yt[q * K + k] + (bl ? bl[q] : b);
        yi[k * P + q] = p_.relu && !(v > 0) ? 0.0f : v;
      }
    }
  }

  // One sample's dx from its dy (plane k at d + k * ldk, output rows row_stride apart), as
  // the product of the flipped W^T with the zero-padded dY (PaddedGradient), each group's
  // channels from its filters' planes, the wide positions cropped. (dcols = W^T dY added
  // back into the image, the other way, was twice the forward's time: 9 taps' worth of
  // columns written and read again from a product whose sums are only K long.)
  void input_gradient(const float* d, int64_t ldk, int64_t row_stride, float* dq, float* dxw, float* dxi) const {
    const Conv::Geometry& g = p_.g;
    const int64_t OH = g.w.out[1], Kg = g.Kg;
    std::fill(dq, dq + q_.size, 0.0f);
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t at = q_.row_at(k, oh);
        if (at >= 0)
          std::memcpy(dq + at, d + k * ldk + oh * row_stride + q_.c0,
                      static_cast<size_t>(q_.c1 - q_.c0) * sizeof(float));
      }
    const float* wf = wf_.data();
    float* out = dxw;  // [phases][C][Pq]
    for (const PaddedGradient::Phase& f : q_.phases) {
      const int64_t nt = static_cast<int64_t>(f.kernel.size());
      for (int64_t gr = 0; gr < g.groups; ++gr, wf += g.Cg * Kg * nt, out += g.Cg * q_.Pq)
        weights_times_columns(g.Cg, q_.Pq, Kg * nt, wf, Kg * nt, ImageColumns{dq, f.taps.data() + gr * Kg * nt}, out,
                              q_.Pq);
    }
    q_.crop(g.w, wide_, g.C, dxw, dxi);
  }

  Conv::Plan plan_;
  WideImage wide_;
  PaddedGradient q_;           // the input gradient's padded dY, all K planes
  AlignedBuffer wf_;           // the flipped W^T of each group, [groups][Cg][Kg kv]
  bool compact_ = false;       // compact_rows or positions: no wide positions
  bool transposed_ = false;    // the weight gradient made as dW^T
  std::vector<int64_t> pmap_;  // compact: output position q's column in the padded image
  int64_t nb_ = 1;             // samples per block
  int64_t block_max_ = 1;      // the most samples a block holds: nb_, or the batch when smaller
  int64_t cols_floats_ = 0;    // of dy^T
  AlignedBuffer w_t_;          // positions: the weights transposed for the forward pass, [CgK, K]
};

}  // namespace

std::unique_ptr<ConvAlgorithm> make_implicit_conv(const ConvProblem& p, Conv::Plan plan) {
  return std::make_unique<ImplicitConv>(p, plan);
}

}  // namespace hubel::layers
