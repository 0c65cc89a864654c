// The convolution by an explicit column matrix (im2col) and the BLAS. A block of samples
// shares one product per group: their columns lie side by side in one matrix (nb * Pc
// columns), so LeNet-sized layers make products large enough for the BLAS to run near its
// peak. Wide: stride 1 and zero padding, the column rows copied as runs from the padded
// image (conv_algorithm.hpp, WideImage) instead of window by window. bf16 (the plan for
// train.precision: bf16 where the bf16 implicit plan does not apply: strides, 1x1): the
// same column matrices, their products on bf16 operands with fp32 sums (bf16_products.hpp),
// the columns and the weights in pairs of consecutive taps, dY in pairs of filters.
#include <algorithm>
#include <optional>

#include "framework/parallel.hpp"
#include "layers/bf16_products.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/gemm.hpp"

namespace hubel::layers {

namespace {

using namespace conv_detail;

class Im2colConv final : public ChunkedConv {
 public:
  Im2colConv(ConvProblem p, bool wide, bool bf16) : ChunkedConv(std::move(p)), bf16_(bf16) {
    const Conv::Geometry& g = p_.g;
    if (wide) wide_.emplace(g, 0);
    sc_ = wide ? wide_->Pc : g.P();
    const int64_t CK = g.C * g.kvol();
    nb_ = block_samples(CK * sc_);
    block_max_ = std::min(nb_, std::max<int64_t>(p_.max_batch, 1));
    const int64_t ld = block_ld(sc_ * block_max_);
    cols_floats_ = align_floats(CK * ld);
    // cols and dcols [CK, ld], y or dy of the block [K, ld], the padded image; bf16: the
    // columns (their pairs in dcols' room), dy and dy's pairs.
    bf16_floats_ = bf16 ? room(CK * ld, 2) + room(g.K * ld, 2) + room((g.K + 1) / 2 * ld, 4) : 0;
    size_scratch(2 * cols_floats_ + align_floats(g.K * ld) + (wide ? wide_->floats : 0) + bf16_floats_);
    if (bf16) {
      w2_ = AlignedBuffer(room((CK + 1) / 2 * g.K, 4), AlignedBuffer::Uninitialized{});
      if (!p_.inference) wt2_ = AlignedBuffer(room(CK * ((g.K + 1) / 2), 4), AlignedBuffer::Uninitialized{});
    }
  }

  std::string detail() const override { return bf16_ ? "bf16 products, fp32 sums" : ""; }

  bool fuses_pool() const override { return true; }

  void forward(const ConvParams& prm, ConstTensorView x, TensorView y, const StepContext& ctx,
               const FusedPool& pool) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
    const int64_t in_stride = g.C * g.w.in_vol(), sc = sc_;
    const float* W = dense_weights(prm);
    if (bf16_) {  // W in pairs of consecutive taps: each row's bf16 values, a zero after an odd one
      const int64_t CK2 = (CK + 1) / 2;
      uint16_t* w16 = reinterpret_cast<uint16_t*>(w2_.data());
      for (int64_t k = 0; k < K; ++k) {
        to_bf16(W + k * CK, CK, w16 + 2 * k * CK2);
        if (CK % 2) w16[2 * k * CK2 + CK] = 0;
      }
    }
    for_each_piece(ctx, n, std::max(nb_, sample_grain(2 * g.blocks * g.kvol() * P)), [&](int64_t n0, int64_t n1) {
      float* cols = scratch_.local().data();
      float* yb = cols + 2 * cols_floats_;
      float* xp = yb + align_floats(K * block_ld(sc * block_max_));
      for (int64_t b0 = n0; b0 < n1; b0 += nb_) {
        const int64_t nb = std::min(nb_, n1 - b0);
        // One sample in the plain layout: straight into y. Otherwise [K, L], then each
        // sample's planes.
        const bool direct = nb_ == 1 && !wide_ && !bf16_;
        const int64_t L = direct ? P : block_ld(nb * sc);
        float* Y = direct ? y.data() + b0 * K * P : yb;
        for (int64_t j = 0; j < nb; ++j) to_columns(x.data() + (b0 + j) * in_stride, xp, cols + j * sc, L);
        zero_columns(cols, CK, nb * sc, L);
        if (bf16_) {  // the columns in pairs of taps (in dcols' room)
          const int64_t CK2 = (CK + 1) / 2;
          uint32_t* c2 = reinterpret_cast<uint32_t*>(cols + cols_floats_);
          for (int64_t t2 = 0; t2 < CK2; ++t2)
            to_bf16_pairs(cols + 2 * t2 * L, 2 * t2 + 1 < CK ? cols + (2 * t2 + 1) * L : nullptr, L, c2 + t2 * L);
          bf16_nn(K, L, CK2, reinterpret_cast<const uint32_t*>(w2_.data()), CK2, c2, nullptr, L, Y, L);
        } else {
          for (int64_t gr = 0; gr < g.groups; ++gr)
            gemm(false, false, Kg, L, CgK, 1.0f, W + gr * Kg * CgK, CgK, cols + gr * CgK * L, L, 0.0f, Y + gr * Kg * L,
                 L);
        }
        for (int64_t j = 0; j < nb; ++j) {
          float* yi = y.data() + (b0 + j) * K * P;
          if (direct) {
            add_bias(p_.bias, prm.b, K, P, yi);
            if (p_.relu) apply_relu(yi, K * P);
          } else {
            store_output(p_, prm.b, yb + j * sc, L, row_stride(), yi);
          }
          pool_output(p_, pool, y, b0 + j);
        }
      }
    });
  }

  void backward(const ConvParams& prm, ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx, const FusedPool& pool) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
    const int64_t in_stride = g.C * g.w.in_vol(), OW = g.w.out[2], rows = P / OW, sc = sc_;
    const float* W = dense_weights(prm);
    if (bf16_ && !dx.empty()) {  // W^T in pairs of filters: wt2[t][k2] = (W[2k2][t], W[2k2 + 1][t])
      const int64_t K2 = (K + 1) / 2;
      uint32_t* wt2 = reinterpret_cast<uint32_t*>(wt2_.data());
      for (int64_t k2 = 0; k2 < K2; ++k2)
        for (int64_t t = 0; t < CK; ++t) {
          const float lo = W[2 * k2 * CK + t], hi = 2 * k2 + 1 < K ? W[(2 * k2 + 1) * CK + t] : 0.0f;
          to_bf16_pairs(&lo, &hi, 1, wt2 + t * K2 + k2);
        }
    }
    const ChunkPlan plan = chunks(ctx, n, std::max(nb_, sample_grain(4 * g.blocks * g.kvol() * P)));
    const int64_t chunks = plan.count;
    for_each_block(plan, n, nb_, [&](const Block& blk, float* s) {
      float* cols = s;
      float* dcols = cols + cols_floats_;
      float* dyb = cols + 2 * cols_floats_;
      float* xp = dyb + align_floats(K * block_ld(sc * block_max_));
      const int64_t b0 = blk.b0, nb = blk.nb;
      const bool first = blk.first, direct = nb_ == 1 && !wide_ && !p_.relu && !bf16_ && !pool.w;
      float* dW = blk.dw;
      float* db = blk.db;
      // The columns past nb * sc are zero in cols and dy: they add nothing.
      const int64_t L = direct ? P : block_ld(nb * sc);
      zero_columns(cols, CK, nb * sc, L);
      if (!direct) zero_columns(dyb, K, nb * sc, L);
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t i = b0 + j;
        to_columns(x.data() + i * in_stride, xp, cols + j * sc, L);
        if (direct) {
          bias_gradient(p_.bias, dy.data() + i * K * P, K, P, first && j == 0, db);
          continue;
        }
        load_gradient(p_, pool, dy, y, i, dyb + j * sc, L, row_stride(), sc);
        bias_gradient_rows(p_.bias, dyb + j * sc, L, rows, row_stride(), OW, K, first && j == 0, db);
      }
      const float* D = direct ? dy.data() + b0 * K * P : dyb;
      if (bf16_) return bf16_backward(s, L, nb, b0, first, dW, dx);
      for (int64_t gr = 0; gr < g.groups; ++gr)
        gemm(false, true, Kg, CgK, L, 1.0f, D + gr * Kg * L, L, cols + gr * CgK * L, L, first ? 0.0f : 1.0f,
             dW + gr * Kg * CgK, CgK);
      if (dx.empty()) return;
      for (int64_t gr = 0; gr < g.groups; ++gr)
        gemm(true, false, CgK, L, Kg, 1.0f, W + gr * Kg * CgK, CgK, D + gr * Kg * L, L, 0.0f, dcols + gr * CgK * L, L);
      for (int64_t j = 0; j < nb; ++j) from_columns(dcols + j * sc, L, xp, dx.data() + (b0 + j) * in_stride);
    });
    finish_gradients(prm, chunks, false);
  }

 private:
  // bf16: the weight gradient and dx of a block from its fp32 columns and dy (scratch s),
  // L columns.
  void bf16_backward(float* s, int64_t L, int64_t nb, int64_t b0, bool first, float* dW, TensorView dx) {
    const Conv::Geometry& g = p_.g;
    const int64_t CK = g.C * g.kvol(), K = g.K, K2 = (K + 1) / 2, sc = sc_, in_stride = g.C * g.w.in_vol();
    float* cols = s;
    float* dcols = cols + cols_floats_;
    float* dyb = cols + 2 * cols_floats_;
    float* xp = dyb + align_floats(K * block_ld(sc * block_max_));
    float* extra = s + 2 * cols_floats_ + align_floats(K * block_ld(sc * block_max_)) + (wide_ ? wide_->floats : 0);
    const int64_t ld = block_ld(sc * block_max_);
    uint16_t* c16 = reinterpret_cast<uint16_t*>(extra);
    uint16_t* dy16 = reinterpret_cast<uint16_t*>(extra + room(CK * ld, 2));
    uint32_t* dy2 = reinterpret_cast<uint32_t*>(extra + room(CK * ld, 2) + room(K * ld, 2));
    to_bf16(cols, CK * L, c16);
    to_bf16(dyb, K * L, dy16);
    bf16_nt(K, CK, L, dy16, L, c16, nullptr, first ? 0.0f : 1.0f, dW, CK, 1, 0, 0, L);
    if (dx.empty()) return;
    for (int64_t k2 = 0; k2 < K2; ++k2)
      to_bf16_pairs(dyb + 2 * k2 * L, 2 * k2 + 1 < K ? dyb + (2 * k2 + 1) * L : nullptr, L, dy2 + k2 * L);
    bf16_nn(CK, L, K2, reinterpret_cast<const uint32_t*>(wt2_.data()), K2, dy2, nullptr, L, dcols, L);
    for (int64_t j = 0; j < nb; ++j) from_columns(dcols + j * sc, L, xp, dx.data() + (b0 + j) * in_stride);
  }

  // The output rows' stride in a block's matrices: Wp in the wide layout, else OW.
  int64_t row_stride() const { return wide_ ? wide_->Wp : p_.g.w.out[2]; }
  void to_columns(const float* xi, float* xp, float* cols, int64_t ld) const {
    if (wide_)
      wide_->columns(p_.g, xi, xp, cols, ld);
    else
      im2col(p_.g.w, p_.g.C, xi, cols, ld);
  }
  void from_columns(const float* dcols, int64_t ld, float* xp, float* dxi) const {
    if (wide_)
      wide_->add_back(p_.g, dcols, ld, wide_->Wp, xp, dxi);
    else
      col2im(p_.g.w, p_.g.C, dcols, dxi, ld);
  }

  std::optional<WideImage> wide_;
  bool bf16_ = false;
  int64_t bf16_floats_ = 0;  // bf16: the scratch of its operands
  AlignedBuffer w2_, wt2_;   // bf16: W in pairs of taps, W^T in pairs of filters
  int64_t sc_ = 0;           // columns per sample in a block's matrices
  int64_t nb_ = 1;           // samples per block
  int64_t block_max_ = 1;    // the most samples a block holds: nb_, or the batch when smaller
  int64_t cols_floats_ = 0;  // of cols (and of dcols)
};

}  // namespace

std::unique_ptr<ConvAlgorithm> make_im2col_conv(const ConvProblem& p, bool wide, bool bf16) {
  return std::make_unique<Im2colConv>(p, wide, bf16);
}

}  // namespace hubel::layers
