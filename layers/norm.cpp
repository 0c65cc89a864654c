// Batch and layer normalization. Sums are taken in double, per channel in a fixed order
// (sample, then position), with channels split among tasks: the results do not depend on
// the number of threads.
#include "layers/norm.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>

#include "framework/chunks.hpp"
#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

namespace {

// Channels (first per-sample dimension) and positions per channel of a sample.
void split_channels(const Shape& x, int64_t& channels, int64_t& spatial) {
  channels = x[0];
  spatial = x.numel() / channels;
}

std::vector<ParamSpec> affine_specs(int64_t channels) {
  return {{"gamma", {channels}, Init::constant(1), 1, 1, false}, {"beta", {channels}, Init::zeros(), 1, 1, false}};
}

// Per channel (channels split among tasks), by chunks of samples (framework/chunks.hpp):
// f(chunk, channel, offset of the sample's channel) for the rows of each chunk in order.
template <class F>
void per_chunk_channel(const ChunkPlan& plan, int64_t n, int64_t channels, int64_t spatial, F&& f) {
  parallel_chunks(channels, std::max<int64_t>(1, grain_for(n * spatial)), [&](int64_t c0, int64_t c1) {
    for (int64_t k = 0; k < plan.count; ++k)
      for (int64_t r = plan.begin(k); r < plan.end(k, n); ++r)
        for (int64_t c = c0; c < c1; ++c) f(k, c, (r * channels + c) * spatial);
  });
}

}  // namespace

// ---- batch normalization ----

std::unique_ptr<Layer> BatchNorm::from_config(const Config& c) {
  Options o;
  o.momentum = c.get<double>("momentum", o.momentum);
  o.eps = c.get<double>("eps", o.eps);
  o.sync = c.get<bool>("sync", o.sync);
  if (!(o.momentum > 0 && o.momentum <= 1)) c.at("momentum").fail(cat("momentum must be in (0, 1]; got ", o.momentum));
  if (!(o.eps > 0)) c.at("eps").fail(cat("eps must be positive; got ", o.eps));
  return std::make_unique<BatchNorm>(o);
}

std::string BatchNorm::describe() const {
  return cat("momentum ", o_.momentum, ", eps ", o_.eps, o_.sync ? ", synchronized" : ", per-rank statistics");
}

std::vector<ParamSpec> BatchNorm::param_specs(const Shape& x) const {
  int64_t channels = 0, spatial = 0;
  split_channels(x, channels, spatial);
  auto specs = affine_specs(channels);
  ParamSpec mean{"running_mean", {channels}, Init::zeros(), 1, 1, false, true, !o_.sync};
  ParamSpec var{"running_var", {channels}, Init::constant(1), 1, 1, false, true, !o_.sync};
  specs.push_back(mean);
  specs.push_back(var);
  return specs;
}

void BatchNorm::bind(const Binding& b) {
  UnaryLayer::bind(b);
  split_channels(b.x[0], channels_, spatial_);
  mean_.assign(static_cast<size_t>(channels_), 0.0);
  invstd_.assign(static_cast<size_t>(channels_), 1.0);
  sums_.assign(static_cast<size_t>(2 * channels_ + 1), 0.0);
}

namespace {
// sum of u[s] and of u[s] * v[s] over s < S, in double, in 16 lanes added in a fixed
// tree: vectorized (a single running sum is a chain of dependent additions, 4 cycles
// each; 16 lanes are four independent chains of vectors, so the pass runs at the speed of
// memory), and the same bits whatever the threads. Lane j adds elements j, j + 16, ...
template <bool Square>  // v == u
void lane_sums(const float* u, const float* v, int64_t S, double& su, double& suv) {
  constexpr int kLanes = 16;
  double a[kLanes] = {}, b[kLanes] = {};
  int64_t s = 0;
#if defined(__AVX2__) && defined(__FMA__)
  // The 16 lanes as four vectors of 4 doubles each (GCC leaves the loop below scalar).
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const auto lo = [](__m256 x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); };
  const auto hi = [](__m256 x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); };
  for (; s + kLanes <= S; s += kLanes) {
    const __m256 x = _mm256_loadu_ps(u + s), x8 = _mm256_loadu_ps(u + s + 8);
    const __m256d x0 = lo(x), x1 = hi(x), x2 = lo(x8), x3 = hi(x8);
    a0 = _mm256_add_pd(a0, x0);
    a1 = _mm256_add_pd(a1, x1);
    a2 = _mm256_add_pd(a2, x2);
    a3 = _mm256_add_pd(a3, x3);
    if constexpr (Square) {
      b0 = _mm256_fmadd_pd(x0, x0, b0);
      b1 = _mm256_fmadd_pd(x1, x1, b1);
      b2 = _mm256_fmadd_pd(x2, x2, b2);
      b3 = _mm256_fmadd_pd(x3, x3, b3);
    } else {
      const __m256 y = _mm256_loadu_ps(v + s), y8 = _mm256_loadu_ps(v + s + 8);
      b0 = _mm256_fmadd_pd(x0, lo(y), b0);
      b1 = _mm256_fmadd_pd(x1, hi(y), b1);
      b2 = _mm256_fmadd_pd(x2, lo(y8), b2);
      b3 = _mm256_fmadd_pd(x3, hi(y8), b3);
    }
  }
  _mm256_storeu_pd(a, a0);
  _mm256_storeu_pd(a + 4, a1);
  _mm256_storeu_pd(a + 8, a2);
  _mm256_storeu_pd(a + 12, a3);
  _mm256_storeu_pd(b, b0);
  _mm256_storeu_pd(b + 4, b1);
  _mm256_storeu_pd(b + 8, b2);
  _mm256_storeu_pd(b + 12, b3);
#endif
  for (; s + kLanes <= S; s += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const double x = u[s + j];
      a[j] += x;
      b[j] += x * static_cast<double>(Square ? u[s + j] : v[s + j]);
    }
  for (int j = 0; s < S; ++s, ++j) {
    a[j] += u[s];
    b[j] += static_cast<double>(u[s]) * (Square ? u[s] : v[s]);
  }
  const auto tree = [](const double* t) {
    const auto eight = [](const double* e) {
      return ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
    };
    return eight(t) + eight(t + 8);
  };
  su = tree(a);
  suv = tree(b);
}
}  // namespace

void BatchNorm::forward(ConstTensorView x, TensorView y, const StepContext& ctx) {
  const int64_t n = x.batch(), C = channels_, S = spatial_;
  const float* gamma = params_[0].w;
  const float* beta = params_[1].w;
  float* run_mean = params_[2].w;
  float* run_var = params_[3].w;
  if (ctx.training) {
    double* sum = sums_.data();
    double* sq = sums_.data() + C;
    // Sums per chunk of samples, added in the chunks' tree (one chunk unless exact).
    const ChunkPlan plan = chunks_for(ctx, n, std::max<int64_t>(n, 1));
    chunk_sums_.assign(static_cast<size_t>(plan.count * 2 * C), 0.0);
    per_chunk_channel(plan, n, C, S, [&](int64_t k, int64_t c, int64_t at) {
      double s1 = 0, s2 = 0;
      lane_sums<true>(x.data() + at, nullptr, S, s1, s2);
      chunk_sums_[static_cast<size_t>(k * 2 * C + c)] += s1;
      chunk_sums_[static_cast<size_t>(k * 2 * C + C + c)] += s2;
    });
    tree_sum(chunk_sums_.data(), plan.count, 2 * C, 2 * C, sums_.data());
    sums_[static_cast<size_t>(2 * C)] = static_cast<double>(n * S);
    if (o_.sync && ctx.ranks) ctx.ranks->sum(sums_);
    count_ = sums_[static_cast<size_t>(2 * C)];
    const double unbias = count_ > 1 ? count_ / (count_ - 1) : 1.0;
    for (int64_t c = 0; c < C; ++c) {
      const double mean = sum[c] / count_;
      const double var = std::max(0.0, sq[c] / count_ - mean * mean);
      mean_[c] = mean;
      invstd_[c] = 1.0 / std::sqrt(var + o_.eps);
      run_mean[c] = static_cast<float>((1 - o_.momentum) * run_mean[c] + o_.momentum * mean);
      run_var[c] = static_cast<float>((1 - o_.momentum) * run_var[c] + o_.momentum * var * unbias);
    }
  }
  // y = x * scale + shift per channel.
  parallel_chunks(n * C, grain_for(S), [&](int64_t b, int64_t e) {
    for (int64_t rc = b; rc < e; ++rc) {
      const int64_t c = rc % C;
      const double mean = ctx.training ? mean_[c] : run_mean[c];
      const double invstd = ctx.training ? invstd_[c] : 1.0 / std::sqrt(run_var[c] + o_.eps);
      const auto scale = static_cast<float>(gamma[c] * invstd);
      const auto shift = static_cast<float>(beta[c] - mean * gamma[c] * invstd);
      const float* xp = x.data() + rc * S;
      float* yp = y.data() + rc * S;
      for (int64_t s = 0; s < S; ++s) yp[s] = xp[s] * scale + shift;
    }
  });
}

void BatchNorm::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx,
                         const StepContext& ctx) {
  const int64_t n = x.batch(), C = channels_, S = spatial_;
  const float* gamma = params_[0].w;
  float* dgamma = params_[0].dw;
  float* dbeta = params_[1].dw;
  // Statistics used by forward: the batch's in training, the running ones in evaluation.
  std::vector<double>& mean = mean_;
  std::vector<double>& invstd = invstd_;
  if (!ctx.training)
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = params_[2].w[c];
      invstd[c] = 1.0 / std::sqrt(params_[3].w[c] + o_.eps);
    }
  // Local sums of dy and dy * x per channel and chunk of samples (one chunk unless exact).
  double* s_dy = sums_.data();
  double* s_dyx = sums_.data() + C;
  const ChunkPlan plan = chunks_for(ctx, n, std::max<int64_t>(n, 1));
  chunk_sums_.assign(static_cast<size_t>(plan.count * 2 * C), 0.0);
  per_chunk_channel(plan, n, C, S, [&](int64_t k, int64_t c, int64_t at) {
    double a = 0, b = 0;
    lane_sums<false>(dy.data() + at, x.data() + at, S, a, b);
    chunk_sums_[static_cast<size_t>(k * 2 * C + c)] += a;
    chunk_sums_[static_cast<size_t>(k * 2 * C + C + c)] += b;
  });
  // d gamma = sum dy * xhat = invstd (sum dy x - mean sum dy); d beta = sum dy: per chunk,
  // then added in the chunks' tree.
  chunk_grads_.resize(static_cast<size_t>(plan.count * 2 * C));
  for (int64_t k = 0; k < plan.count; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const double a = chunk_sums_[static_cast<size_t>(k * 2 * C + c)];
      const double b = chunk_sums_[static_cast<size_t>(k * 2 * C + C + c)];
      chunk_grads_[static_cast<size_t>(k * 2 * C + c)] = static_cast<float>(invstd[c] * (b - mean[c] * a));
      chunk_grads_[static_cast<size_t>(k * 2 * C + C + c)] = static_cast<float>(a);
    }
  tree_sum(chunk_grads_.data(), plan.count, 2 * C, C, dgamma);
  tree_sum(chunk_grads_.data() + C, plan.count, 2 * C, C, dbeta);
  tree_sum(chunk_sums_.data(), plan.count, 2 * C, 2 * C, sums_.data());
  if (dx.empty()) return;
  // dx = gamma invstd (dy - (sum dy + xhat sum dy xhat) / M), sums over the global batch
  // (the raw sums over ranks, then sum dy xhat from them: the same on any number of ranks).
  if (ctx.training && o_.sync && ctx.ranks) ctx.ranks->sum(std::span<double>(sums_.data(), static_cast<size_t>(2 * C)));
  for (int64_t c = 0; c < C; ++c) s_dyx[c] = invstd[c] * (s_dyx[c] - mean[c] * s_dy[c]);
  const double m = ctx.training ? count_ : 0;
  parallel_chunks(n * C, grain_for(S), [&](int64_t b, int64_t e) {
    for (int64_t rc = b; rc < e; ++rc) {
      const int64_t c = rc % C;
      const double k = gamma[c] * invstd[c];
      double a = k, bx = 0, c0 = 0;
      if (m > 0) {
        bx = -k * invstd[c] * s_dyx[c] / m;
        c0 = -k * s_dy[c] / m - bx * mean[c];
      }
      const auto af = static_cast<float>(a), bf = static_cast<float>(bx), cf = static_cast<float>(c0);
      const float* d = dy.data() + rc * S;
      const float* p = x.data() + rc * S;
      float* out = dx.data() + rc * S;
      for (int64_t s = 0; s < S; ++s) out[s] = af * d[s] + bf * p[s] + cf;
    }
  });
}

// ---- layer normalization ----

std::unique_ptr<Layer> LayerNorm::from_config(const Config& c) {
  const double eps = c.get<double>("eps", 1e-5);
  if (!(eps > 0)) c.at("eps").fail(cat("eps must be positive; got ", eps));
  return std::make_unique<LayerNorm>(eps);
}

std::string LayerNorm::describe() const { return cat("eps ", eps_); }

std::vector<ParamSpec> LayerNorm::param_specs(const Shape& x) const {
  int64_t channels = 0, spatial = 0;
  split_channels(x, channels, spatial);
  return affine_specs(channels);
}

void LayerNorm::bind(const Binding& b) {
  UnaryLayer::bind(b);
  split_channels(b.x[0], channels_, spatial_);
  mean_.assign(static_cast<size_t>(b.max_batch), 0.0);
  invstd_.assign(static_cast<size_t>(b.max_batch), 1.0);
}

void LayerNorm::forward(ConstTensorView x, TensorView y, const StepContext&) {
  const int64_t n = x.batch(), C = channels_, S = spatial_, D = C * S;
  const float* gamma = params_[0].w;
  const float* beta = params_[1].w;
  parallel_chunks(n, grain_for(D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* p = x.data() + r * D;
      double s1 = 0, s2 = 0;
      for (int64_t j = 0; j < D; ++j) {
        s1 += p[j];
        s2 += static_cast<double>(p[j]) * p[j];
      }
      const double mean = s1 / static_cast<double>(D);
      const double var = std::max(0.0, s2 / static_cast<double>(D) - mean * mean);
      mean_[r] = mean;
      invstd_[r] = 1.0 / std::sqrt(var + eps_);
      float* q = y.data() + r * D;
      for (int64_t c = 0; c < C; ++c) {
        const auto scale = static_cast<float>(gamma[c] * invstd_[r]);
        const auto shift = static_cast<float>(beta[c] - mean * gamma[c] * invstd_[r]);
        for (int64_t s = 0; s < S; ++s) q[c * S + s] = p[c * S + s] * scale + shift;
      }
    }
  });
}

void LayerNorm::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx,
                         const StepContext& ctx) {
  const int64_t n = x.batch(), C = channels_, S = spatial_, D = C * S;
  const float* gamma = params_[0].w;
  float* dgamma = params_[0].dw;
  float* dbeta = params_[1].dw;
  // Parameter gradients: per channel and chunk of samples (one chunk unless exact), samples
  // in order, then the chunks added in their tree.
  const ChunkPlan plan = chunks_for(ctx, n, std::max<int64_t>(n, 1));
  chunk_grads_.resize(static_cast<size_t>(plan.count * 2 * C));
  parallel_chunks(C, std::max<int64_t>(1, grain_for(n * S)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t k = 0; k < plan.count; ++k) {
        double g = 0, b = 0;
        for (int64_t r = plan.begin(k); r < plan.end(k, n); ++r) {
          const float* d = dy.data() + r * D + c * S;
          const float* p = x.data() + r * D + c * S;
          double gr = 0, br = 0;
          for (int64_t s = 0; s < S; ++s) {
            br += d[s];
            gr += static_cast<double>(d[s]) * (p[s] - mean_[r]);
          }
          g += gr * invstd_[r];
          b += br;
        }
        chunk_grads_[static_cast<size_t>(k * 2 * C + c)] = static_cast<float>(g);
        chunk_grads_[static_cast<size_t>(k * 2 * C + C + c)] = static_cast<float>(b);
      }
  });
  tree_sum(chunk_grads_.data(), plan.count, 2 * C, C, dgamma);
  tree_sum(chunk_grads_.data() + C, plan.count, 2 * C, C, dbeta);
  if (dx.empty()) return;
  // dx = invstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma.
  parallel_chunks(n, grain_for(D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* d = dy.data() + r * D;
      const float* p = x.data() + r * D;
      const double mean = mean_[r], invstd = invstd_[r];
      double s1 = 0, s2 = 0;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t s = 0; s < S; ++s) {
          const double g = static_cast<double>(d[c * S + s]) * gamma[c];
          s1 += g;
          s2 += g * (p[c * S + s] - mean) * invstd;
        }
      s1 /= static_cast<double>(D);
      s2 /= static_cast<double>(D);
      float* out = dx.data() + r * D;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t s = 0; s < S; ++s) {
          const double xhat = (p[c * S + s] - mean) * invstd;
          out[c * S + s] = static_cast<float>(invstd * (static_cast<double>(d[c * S + s]) * gamma[c] - s1 - xhat * s2));
        }
    }
  });
}

}  // namespace hubel::layers

namespace hubel::layers {

void BatchNorm::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                        const std::string& y) const {
  std::vector<std::string> in{x[0]};
  const char* names[4] = {"_scale", "_bias", "_mean", "_var"};
  for (int i = 0; i < 4; ++i)
    in.push_back(g.constant(name() + names[i], {channels_},
                            std::span<const float>(params_[static_cast<size_t>(i)].w, static_cast<size_t>(channels_))));
  g.node("BatchNormalization", in, {y}, {onnx::attr("epsilon", static_cast<float>(o_.eps))});
}

// Decomposed (ONNX's LayerNormalization scales per normalized element, this layer per
// channel): the mean and variance over each sample, then the channels' affine map.
void LayerNorm::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
                        const std::string& y) const {
  std::vector<int64_t> axes;
  for (int i = 1; i <= xs[0].rank(); ++i) axes.push_back(i);
  const std::string n = name();
  const std::string mean = g.reduce("ReduceMean", x[0], axes, true, n + "_mean");
  const std::string d = g.op("Sub", {x[0], mean}, n + "_centered");
  const std::string var = g.reduce("ReduceMean", g.op("Mul", {d, d}, n + "_squares"), axes, true, n + "_var");
  const std::string sd =
      g.op("Sqrt", {g.op("Add", {var, g.scalar(n + "_eps", static_cast<float>(eps_))}, n + "_vareps")}, n + "_std");
  const std::string z = g.op("Div", {d, sd}, n + "_normalized");
  const auto cd = onnx::channel_dims(channels_, xs[0].rank() - 1);
  const std::string scaled =
      g.op("Mul", {z, g.constant(n + "_gamma", cd, {params_[0].w, static_cast<size_t>(channels_)})}, n + "_scaled");
  g.node("Add", {scaled, g.constant(n + "_beta", cd, {params_[1].w, static_cast<size_t>(channels_)})}, {y});
}

}  // namespace hubel::layers
