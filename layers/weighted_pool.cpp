// Weighted average pooling (weighted_pool.hpp).
#include "layers/weighted_pool.hpp"

#include <algorithm>
#include <cmath>

#include "framework/chunks.hpp"
#include "framework/config.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

std::unique_ptr<Layer> WeightedPool::from_config(const Config& c, int rank) {
  Options o;
  o.window = WindowOptions::parse(c, rank, true);
  o.learned = c.choice("weights", {"gaussian", "learned"}, "gaussian") == "learned";
  if (auto s = c.find("sigma")) {
    if (o.learned) s->fail("sigma shapes the fixed gaussian weights; learned weights have none");
    o.sigma = s->as<double>();
    if (!(o.sigma > 0)) s->fail(cat("sigma must be positive; got ", o.sigma));
  }
  return std::make_unique<WeightedPool>(std::move(o));
}

std::string WeightedPool::type() const { return "weighted_avgpool" + (o_.window.rank ? cat(o_.window.rank, "d") : ""); }

std::string WeightedPool::describe() const {
  return o_.window.describe() + (o_.learned ? ", learned weights" : cat(", gaussian weights, sigma ", o_.sigma));
}

Window WeightedPool::window(const Shape& x) const {
  if (x.rank() < 2 || x.rank() > 4) shape_error(cat("expects [C, W], [C, H, W] or [C, D, H, W]; got ", x.str()));
  const std::vector<int64_t> spatial(x.begin() + 1, x.end());
  return resolve_window(o_.window, spatial, [this](const std::string& m) { shape_error(m); });
}

Shape WeightedPool::output_shape(const Shape& x) const { return window(x).out_shape(x[0]); }

std::vector<ParamSpec> WeightedPool::param_specs(const Shape& x) const {
  if (!o_.learned) return {};
  const Window w = window(x);
  std::array<int64_t, 3> d{};
  for (int i = 0; i < w.rank; ++i) d[i] = w.k[3 - w.rank + i];
  const Shape ws(std::span<const int64_t>(d.data(), static_cast<size_t>(w.rank)));
  return {{"w", ws, Init::constant(1.0 / static_cast<double>(w.k_vol())), w.k_vol(), 1, false}};
}

int64_t WeightedPool::flops(std::span<const Shape> x, const Shape& y) const {
  return 2 * window(x[0]).k_vol() * y.numel();
}

std::vector<float> WeightedPool::gaussian(const Window& w, double sigma) {
  std::vector<double> g;
  double sum = 0;
  for (int64_t a = 0; a < w.k[0]; ++a)
    for (int64_t b = 0; b < w.k[1]; ++b)
      for (int64_t c = 0; c < w.k[2]; ++c) {
        double r2 = 0;
        const int64_t idx[3] = {a, b, c};
        for (int t = 0; t < 3; ++t) {
          const double d = (static_cast<double>(idx[t]) - (w.k[t] - 1) / 2.0) * w.d[t];
          r2 += d * d;
        }
        g.push_back(std::exp(-r2 / (2 * sigma * sigma)));
        sum += g.back();
      }
  std::vector<float> out;
  for (double v : g) out.push_back(static_cast<float>(v / sum));
  return out;
}

void WeightedPool::bind(const Binding& b) {
  UnaryLayer::bind(b);
  w_ = window(b.x[0]);
  C_ = b.x[0][0];
  if (!o_.learned) fixed_ = gaussian(w_, o_.sigma);
}

void WeightedPool::forward(ConstTensorView x, TensorView y, const StepContext&) {
  const int64_t planes = x.batch() * C_, IV = w_.in_vol(), P = w_.out_vol();
  const float* wt = weights();
  parallel_chunks(planes, grain_for(w_.k_vol() * P), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* xp = x.data() + pl * IV;
      float* yp = y.data() + pl * P;
      for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
        float s = 0;
        for_each_tap(w_, od, oh, ow, [&](int64_t kk, int64_t q) { s += wt[kk] * xp[q]; });
        yp[p] = s;
      });
    }
  });
}

void WeightedPool::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx,
                            const StepContext& ctx) {
  const int64_t n = x.batch(), IV = w_.in_vol(), P = w_.out_vol(), kvol = w_.k_vol();
  const float* wt = weights();
  if (!dx.empty())
    parallel_chunks(n * C_, grain_for(kvol * P), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const float* dyp = dy.data() + pl * P;
        float* dxp = dx.data() + pl * IV;
        std::fill(dxp, dxp + IV, 0.0f);
        for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
          for_each_tap(w_, od, oh, ow, [&](int64_t kk, int64_t q) { dxp[q] += dyp[p] * wt[kk]; });
        });
      }
    });
  if (!o_.learned) return;
  // The weights' gradient: per chunk of samples (framework/chunks.hpp), samples and
  // channels in order within it, the chunks added in their tree.
  const ChunkPlan plan = chunks_for(ctx, n, std::max<int64_t>(1, (n + 15) / 16));
  partials_.resize(static_cast<size_t>(plan.count * kvol));
  parallel_chunks(plan.count, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t k = c0; k < c1; ++k) {
      float* g = partials_.data() + k * kvol;
      std::fill(g, g + kvol, 0.0f);
      for (int64_t i = plan.begin(k); i < plan.end(k, n); ++i)
        for (int64_t c = 0; c < C_; ++c) {
          const float* xp = x.data() + (i * C_ + c) * IV;
          const float* dyp = dy.data() + (i * C_ + c) * P;
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            for_each_tap(w_, od, oh, ow, [&](int64_t kk, int64_t q) { g[kk] += dyp[p] * xp[q]; });
          });
        }
    }
  });
  tree_sum(partials_.data(), plan.count, kvol, kvol, params_[0].dw);
}

}  // namespace hubel::layers

namespace hubel::layers {

// Decomposed: a depthwise convolution with the window's weights in every channel.
void WeightedPool::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                           const std::string& y) const {
  const int64_t kvol = w_.k_vol();
  std::vector<float> w(static_cast<size_t>(C_ * kvol));
  for (int64_t c = 0; c < C_; ++c) std::copy_n(weights(), kvol, w.begin() + c * kvol);
  onnx_depthwise_conv(g, name(), x[0], w_, C_, w, nullptr, y);
}

}  // namespace hubel::layers
