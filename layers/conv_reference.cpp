// The convolution's reference algorithm: the definition, loop by loop, in double
// precision, with the weight of each (filter, input channel) pair looked up through the
// connectivity (groups or the connection table) and the weight set of each output
// position through the tiling. The fast algorithms are tested against it.
#include <algorithm>

#include "framework/parallel.hpp"
#include "layers/conv_algorithm.hpp"

namespace hubel::layers {

namespace {

// f(input channel, block) for each input filter k reads; block: the kernel's index within a weight set.
template <class F>
void for_each_input(const ConvProblem& p, int64_t k, F&& f) {
  const Conv::Geometry& g = p.g;
  if (g.table) {
    for (int64_t j = g.first_block[k]; j < g.first_block[k + 1]; ++j)
      f(p.connections[static_cast<size_t>(k)][static_cast<size_t>(j - g.first_block[k])], j);
  } else {
    const int64_t gr = k / g.Kg;
    for (int64_t cl = 0; cl < g.Cg; ++cl) f(gr * g.Cg + cl, k * g.Cg + cl);
  }
}

class ReferenceConv final : public ConvAlgorithm {
 public:
  explicit ReferenceConv(ConvProblem p) : p_(std::move(p)) {
    if (p_.relu) masked_ = AlignedBuffer(p_.max_batch * p_.g.K * p_.g.P(), AlignedBuffer::Uninitialized{});
  }

  void forward(const ConvParams& prm, ConstTensorView x, TensorView y, const StepContext&, const FusedPool&) override {
    const Conv::Geometry& g = p_.g;
    const int64_t P = g.P(), kvol = g.kvol(), iv = g.w.in_vol();
    parallel_chunks(x.batch(), 1, [&](int64_t n0, int64_t n1) {
      for (int64_t i = n0; i < n1; ++i)
        for (int64_t k = 0; k < g.K; ++k) {
          int64_t q = 0;
          for (int64_t od = 0; od < g.w.out[0]; ++od)
            for (int64_t oh = 0; oh < g.w.out[1]; ++oh)
              for (int64_t ow = 0; ow < g.w.out[2]; ++ow, ++q) {
                const int64_t t = g.tile_of(od, oh, ow);
                double acc = !prm.b ? 0.0 : p_.bias == BiasKind::channel ? prm.b[k] : prm.b[k * P + q];
                for_each_input(p_, k, [&](int64_t c, int64_t blk) {
                  const float* wb = prm.w + (t * g.blocks + blk) * kvol;
                  const float* xc = x.data() + (i * g.C + c) * iv;
                  for_each_tap(g.w, od, oh, ow,
                               [&](int64_t kk, int64_t pos) { acc += static_cast<double>(wb[kk]) * xc[pos]; });
                });
                const auto v = static_cast<float>(acc);
                y.data()[(i * g.K + k) * P + q] = p_.relu && !(v > 0) ? 0.0f : v;
              }
        }
    });
  }

  void backward(const ConvParams& prm, ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext&, const FusedPool&) override {
    const Conv::Geometry& g = p_.g;
    const int64_t P = g.P(), kvol = g.kvol(), iv = g.w.in_vol();
    const float* d = dy.data();
    if (p_.relu) {
      conv_detail::mask_by_output(y.data(), dy.data(), dy.numel(), masked_.data());
      d = masked_.data();
    }
    const int64_t weights = g.T * g.blocks * kvol;
    std::fill(prm.dw, prm.dw + weights, 0.0f);
    if (prm.db) std::fill(prm.db, prm.db + (p_.bias == BiasKind::channel ? g.K : g.K * P), 0.0f);
    if (!dx.empty()) std::fill(dx.data(), dx.data() + dx.numel(), 0.0f);
    for (int64_t i = 0; i < x.batch(); ++i)
      for (int64_t k = 0; k < g.K; ++k) {
        int64_t q = 0;
        for (int64_t od = 0; od < g.w.out[0]; ++od)
          for (int64_t oh = 0; oh < g.w.out[1]; ++oh)
            for (int64_t ow = 0; ow < g.w.out[2]; ++ow, ++q) {
              const int64_t t = g.tile_of(od, oh, ow);
              const float dq = d[(i * g.K + k) * P + q];
              if (prm.db) prm.db[p_.bias == BiasKind::channel ? k : k * P + q] += dq;
              for_each_input(p_, k, [&](int64_t c, int64_t blk) {
                const int64_t wo = (t * g.blocks + blk) * kvol;
                const float* xc = x.data() + (i * g.C + c) * iv;
                float* dxc = dx.empty() ? nullptr : dx.data() + (i * g.C + c) * iv;
                for_each_tap(g.w, od, oh, ow, [&](int64_t kk, int64_t pos) {
                  prm.dw[wo + kk] += dq * xc[pos];
                  if (dxc) dxc[pos] += dq * prm.w[wo + kk];
                });
              });
            }
      }
  }

 private:
  ConvProblem p_;
  AlignedBuffer masked_;  // relu: dy where y > 0
};

}  // namespace

std::unique_ptr<ConvAlgorithm> make_reference_conv(const ConvProblem& p) { return std::make_unique<ReferenceConv>(p); }

}  // namespace hubel::layers
