// The convolution with several weight sets (tiles: the weights shared only between
// output positions a tile period apart; locally connected: one set per position). The
// output positions are grouped by the weight set they use, and each sample makes one
// product per tile (and group) over its explicit column matrix.
#include <algorithm>

#include "framework/parallel.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/gemm.hpp"

namespace hubel::layers {

namespace {

using namespace conv_detail;

// dst[r][j] = src[r][order[j]] for rows r.
void gather_columns(const float* src, float* dst, int64_t rows, const std::vector<int64_t>& order) {
  const auto P = static_cast<int64_t>(order.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < P; ++j) dst[r * P + j] = src[r * P + order[static_cast<size_t>(j)]];
}
// dst[r][order[j]] = src[r][j].
void scatter_columns(const float* src, float* dst, int64_t rows, const std::vector<int64_t>& order) {
  const auto P = static_cast<int64_t>(order.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < P; ++j) dst[r * P + order[static_cast<size_t>(j)]] = src[r * P + j];
}

class TiledConv final : public ChunkedConv {
 public:
  explicit TiledConv(ConvProblem p) : ChunkedConv(std::move(p)) {
    const Conv::Geometry& g = p_.g;
    const int64_t P = g.P();
    // Output positions grouped by the weight set they use, each group in natural order.
    std::vector<int64_t> tile;
    for (int64_t od = 0; od < g.w.out[0]; ++od)
      for (int64_t oh = 0; oh < g.w.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.w.out[2]; ++ow) tile.push_back(g.tile_of(od, oh, ow));
    tile_begin_.assign(1, 0);
    for (int64_t t = 0; t < g.T; ++t) {
      for (int64_t q = 0; q < P; ++q)
        if (tile[static_cast<size_t>(q)] == t) order_.push_back(q);
      tile_begin_.push_back(static_cast<int64_t>(order_.size()));
    }
    // cols, dcols, the same two in tile order, and y or dy in tile order.
    const int64_t CK = g.C * g.kvol();
    size_scratch(align_floats(CK * P) * 4 + align_floats(g.K * P));
    if (p_.relu) masked_ = AlignedBuffer(p_.max_batch * g.K * P, AlignedBuffer::Uninitialized{});
  }

  void forward(const ConvParams& prm, ConstTensorView x, TensorView y, const StepContext&, const FusedPool&) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
    const int64_t in_stride = g.C * g.w.in_vol();
    const bool pointwise = g.w.is_pointwise();
    const float* W = dense_weights(prm);
    parallel_chunks(n, sample_grain(2 * g.blocks * g.kvol() * P), [&](int64_t n0, int64_t n1) {
      float* cols = scratch_.local().data();
      float* cols_t = cols + 2 * align_floats(CK * P);
      float* y_t = cols + 4 * align_floats(CK * P);
      for (int64_t i = n0; i < n1; ++i) {
        const float* xi = x.data() + i * in_stride;
        float* yi = y.data() + i * K * P;
        const float* c = xi;
        if (!pointwise) {
          im2col(g.w, g.C, xi, cols);
          c = cols;
        }
        gather_columns(c, cols_t, CK, order_);
        for (int64_t t = 0; t < g.T; ++t) {
          const int64_t p0 = tile_begin_[t], pn = tile_begin_[t + 1] - p0;
          for (int64_t gr = 0; gr < g.groups; ++gr)
            gemm(false, false, Kg, pn, CgK, 1.0f, W + (t * K + gr * Kg) * CgK, CgK, cols_t + gr * CgK * P + p0, P, 0.0f,
                 y_t + gr * Kg * P + p0, P);
        }
        scatter_columns(y_t, yi, K, order_);
        add_bias(p_.bias, prm.b, K, P, yi);
      }
    });
    if (p_.relu) apply_relu(y.data(), y.numel());
  }

  void backward(const ConvParams& prm, ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx, const FusedPool&) override {
    const Conv::Geometry& g = p_.g;
    const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
    const int64_t in_stride = g.C * g.w.in_vol();
    const bool pointwise = g.w.is_pointwise();
    const float* W = dense_weights(prm);
    const float* dyd = dy.data();
    if (p_.relu) {
      mask_by_output(y.data(), dy.data(), dy.numel(), masked_.data());
      dyd = masked_.data();
    }
    const ChunkPlan plan = chunks(ctx, n, sample_grain(4 * g.blocks * g.kvol() * P));
    const int64_t chunk = plan.size, chunks = plan.count;
    parallel_chunks(chunks, 1, [&](int64_t c0, int64_t c1) {
      float* cols = scratch_.local().data();
      float* dcols = cols + align_floats(CK * P);
      float* cols_t = cols + 2 * align_floats(CK * P);
      float* dcols_t = cols + 3 * align_floats(CK * P);
      float* dy_t = cols + 4 * align_floats(CK * P);
      for (int64_t c = c0; c < c1; ++c) {
        if (empty_chunk(c, plan, n)) continue;
        float* dW = partial_w(c);
        float* db = partial_b(c);
        for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
          const bool first = i == c * chunk;
          const float* xi = x.data() + i * in_stride;
          const float* dyi = dyd + i * K * P;
          const float* cx = xi;
          if (!pointwise) {
            im2col(g.w, g.C, xi, cols);
            cx = cols;
          }
          gather_columns(cx, cols_t, CK, order_);
          gather_columns(dyi, dy_t, K, order_);
          for (int64_t t = 0; t < g.T; ++t) {
            const int64_t p0 = tile_begin_[t], pn = tile_begin_[t + 1] - p0;
            for (int64_t gr = 0; gr < g.groups; ++gr)
              gemm(false, true, Kg, CgK, pn, 1.0f, dy_t + gr * Kg * P + p0, P, cols_t + gr * CgK * P + p0, P,
                   first ? 0.0f : 1.0f, dW + (t * K + gr * Kg) * CgK, CgK);
          }
          bias_gradient(p_.bias, dyi, K, P, first, db);
          if (dx.empty()) continue;
          float* dxi = dx.data() + i * in_stride;
          for (int64_t t = 0; t < g.T; ++t) {
            const int64_t p0 = tile_begin_[t], pn = tile_begin_[t + 1] - p0;
            for (int64_t gr = 0; gr < g.groups; ++gr)
              gemm(true, false, CgK, pn, Kg, 1.0f, W + (t * K + gr * Kg) * CgK, CgK, dy_t + gr * Kg * P + p0, P, 0.0f,
                   dcols_t + gr * CgK * P + p0, P);
          }
          scatter_columns(dcols_t, pointwise ? dxi : dcols, CK, order_);
          if (!pointwise) col2im(g.w, g.C, dcols, dxi);
        }
      }
    });
    finish_gradients(prm, chunks, false);
  }

 private:
  std::vector<int64_t> order_;       // output positions sorted by tile
  std::vector<int64_t> tile_begin_;  // where each tile's positions start in order_
  AlignedBuffer masked_;             // relu: dy where y > 0
};

}  // namespace

std::unique_ptr<ConvAlgorithm> make_tiled_conv(const ConvProblem& p) { return std::make_unique<TiledConv>(p); }

}  // namespace hubel::layers
