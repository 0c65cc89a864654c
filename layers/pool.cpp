// Pooling: the layers, and window pooling's reference loops (every tap resolved against
// the padding); its fast paths are in pool_fast.cpp. Work is split over (sample, channel) planes in fixed chunks; each
// plane's backward is serial, so overlapping windows add their gradients in a fixed order.
#include "layers/pool.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "framework/chunks.hpp"
#include "framework/config.hpp"
#include "framework/parallel.hpp"
#include "layers/pool_fast.hpp"

namespace hubel::layers {

namespace {

const char* kind_name(PoolKind k) { return k == PoolKind::max ? "maxpool" : k == PoolKind::avg ? "avgpool" : "l2pool"; }
std::string rank_suffix(int rank) { return rank ? cat(rank, "d") : ""; }

void check_input(const Shape& x, const std::function<void(const std::string&)>& fail) {
  if (x.rank() < 2 || x.rank() > 4) fail(cat("expects [C, W], [C, H, W] or [C, D, H, W]; got ", x.str()));
}

Window pool_window(const WindowOptions& o, const Shape& x, const std::function<void(const std::string&)>& fail) {
  check_input(x, fail);
  const std::vector<int64_t> spatial(x.begin() + 1, x.end());
  Window w = resolve_window(o, spatial, fail);
  // Padding wider than the window would make windows of padding only.
  for (int t = 0; t < 3; ++t) {
    const int64_t ke = w.d[t] * (w.k[t] - 1) + 1;
    if (o.pad_mode == PadMode::explicit_pad && (w.lo[t] >= ke || w.hi[t] >= ke))
      fail(cat("padding ", std::max(w.lo[t], w.hi[t]), " must be smaller than the window (", ke, ")"));
  }
  return w;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Pool

std::unique_ptr<Layer> Pool::from_config(const Config& c, PoolKind kind, int rank) {
  Options o;
  o.kind = kind;
  o.window = WindowOptions::parse(c, rank, true);
  if (kind == PoolKind::avg) o.count_padding = c.get<bool>("count_padding", true);
  const std::string impl = c.choice("impl", {"fast", "reference", "offsets", "max_2x2"}, "fast");
  if (impl == "reference") o.impl = Plan::reference;
  if (impl == "offsets") o.impl = Plan::offsets;
  if (impl == "max_2x2") o.impl = Plan::max_2x2;
  return std::make_unique<Pool>(std::move(o));
}

std::string Pool::type() const { return kind_name(o_.kind) + rank_suffix(o_.window.rank); }

std::string Pool::plan() const {
  return plan_ == Plan::reference ? "reference" : plan_ == Plan::offsets ? "offsets" : "max 2x2";
}

Window Pool::window(const Shape& x) const {
  return pool_window(o_.window, x, [this](const std::string& m) { shape_error(m); });
}

Shape Pool::output_shape(const Shape& x) const { return window(x).out_shape(x[0]); }

int64_t Pool::flops(std::span<const Shape> x, const Shape& y) const { return window(x[0]).k_vol() * y.numel(); }

void Pool::bind(const Binding& b) {
  UnaryLayer::bind(b);
  w_ = window(b.x[0]);
  C_ = b.x[0][0];
  // (where the maxima are, for backward: not kept by an inference-only net)
  if (o_.kind == PoolKind::max && !b.inference) argmax_.assign(static_cast<size_t>(b.max_batch * b.y.numel()), -1);
  if (o_.impl) {
    plan_ = *o_.impl;
    if (plan_ == Plan::offsets && !all_inside(w_))
      shape_error("impl: offsets cannot compute this layer: it needs every window inside the input (no padding read)");
    if (plan_ == Plan::max_2x2 && (o_.kind != PoolKind::max || !pool_fast::max_2x2_applies(w_)))
      shape_error(
          "impl: max_2x2 cannot compute this layer: it needs max pooling over 2x2 windows at stride 2, "
          "without padding or dilation");
  } else {
    plan_ = o_.kind == PoolKind::max && pool_fast::max_2x2_applies(w_) ? Plan::max_2x2
            : all_inside(w_)                                           ? Plan::offsets
                                                                       : Plan::reference;
  }
  offsets_ = plan_ == Plan::reference ? WindowOffsets{} : offsets_of(w_);
}

void Pool::forward(ConstTensorView x, TensorView y, const StepContext&) {
  const int64_t planes = x.batch() * C_, IV = w_.in_vol(), P = w_.out_vol(), kvol = w_.k_vol();
  parallel_chunks(planes, grain_for(kvol * P), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* xp = x.data() + pl * IV;
      float* yp = y.data() + pl * P;
      int32_t* am = o_.kind == PoolKind::max && !argmax_.empty() ? argmax_.data() + pl * P : nullptr;
      if (plan_ == Plan::max_2x2) {
        pool_fast::max_2x2_plane(w_, xp, yp, am);
        continue;
      }
      if (plan_ == Plan::offsets) {
        pool_fast::pool_plane(o_.kind, offsets_, xp, yp, am);
        continue;
      }
      switch (o_.kind) {
        case PoolKind::max: {
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            float m = -std::numeric_limits<float>::infinity();
            int64_t arg = -1;
            for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) {
              if (xp[q] > m || arg < 0) m = xp[q], arg = q;
            });
            yp[p] = arg < 0 ? 0.0f : m;
            if (am) am[p] = static_cast<int32_t>(arg);
          });
          break;
        }
        case PoolKind::avg:
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            float s = 0;
            int64_t n = 0;
            for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) { s += xp[q], ++n; });
            const int64_t div = o_.count_padding ? kvol : n;
            yp[p] = div ? s / static_cast<float>(div) : 0.0f;
          });
          break;
        case PoolKind::l2:
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            float s = 0;
            for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) { s += xp[q] * xp[q]; });
            yp[p] = std::sqrt(s);
          });
          break;
      }
    }
  });
}

void Pool::backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (dx.empty()) return;
  const int64_t planes = x.batch() * C_, IV = w_.in_vol(), P = w_.out_vol(), kvol = w_.k_vol();
  parallel_chunks(planes, grain_for(kvol * P), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* xp = x.data() + pl * IV;
      const float* yp = y.data() + pl * P;
      const float* dyp = dy.data() + pl * P;
      float* dxp = dx.data() + pl * IV;
      if (plan_ == Plan::max_2x2) {
        pool_fast::max_2x2_backward_plane(w_, dyp, argmax_.data() + pl * P, dxp);
        continue;
      }
      std::fill(dxp, dxp + IV, 0.0f);
      switch (o_.kind) {
        case PoolKind::max: {
          const int32_t* am = argmax_.data() + pl * P;
          for (int64_t p = 0; p < P; ++p)
            if (am[p] >= 0) dxp[am[p]] += dyp[p];
          break;
        }
        case PoolKind::avg:
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            int64_t div = kvol;
            if (!o_.count_padding) {
              div = 0;
              for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t) { ++div; });
            }
            if (!div) return;
            const float g = dyp[p] / static_cast<float>(div);
            for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) { dxp[q] += g; });
          });
          break;
        case PoolKind::l2:
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            if (yp[p] <= 0) return;  // all zeros: the subgradient 0
            const float g = dyp[p] / yp[p];
            for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) { dxp[q] += g * xp[q]; });
          });
          break;
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Subsample

std::unique_ptr<Layer> Subsample::from_config(const Config& c, int rank) {
  Options o;
  o.window = WindowOptions::parse(c, rank, true);
  if (auto i = c.find("init")) o.w_init = Init::parse(*i);
  if (auto i = c.find("bias_init")) o.b_init = Init::parse(*i);
  return std::make_unique<Subsample>(std::move(o));
}

std::string Subsample::type() const { return "subsample" + rank_suffix(o_.window.rank); }

Window Subsample::window(const Shape& x) const {
  return pool_window(o_.window, x, [this](const std::string& m) { shape_error(m); });
}

Shape Subsample::output_shape(const Shape& x) const { return window(x).out_shape(x[0]); }

std::vector<ParamSpec> Subsample::param_specs(const Shape& x) const {
  const int64_t kvol = window(x).k_vol();
  return {{"w", {x[0]}, o_.w_init, kvol, 1, true}, {"b", {x[0]}, o_.b_init, kvol, 1, false}};
}

int64_t Subsample::flops(std::span<const Shape> x, const Shape& y) const {
  return (window(x[0]).k_vol() + 2) * y.numel();
}

void Subsample::bind(const Binding& b) {
  UnaryLayer::bind(b);
  w_ = window(b.x[0]);
  C_ = b.x[0][0];
}

void Subsample::forward(ConstTensorView x, TensorView y, const StepContext&) {
  const int64_t planes = x.batch() * C_, IV = w_.in_vol(), P = w_.out_vol();
  const float* wt = params_[0].w;
  const float* bias = params_[1].w;
  parallel_chunks(planes, grain_for(w_.k_vol() * P), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const int64_t c = pl % C_;
      const float* xp = x.data() + pl * IV;
      float* yp = y.data() + pl * P;
      for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
        float s = 0;
        for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) { s += xp[q]; });
        yp[p] = wt[c] * s + bias[c];
      });
    }
  });
}

void Subsample::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx,
                         const StepContext& ctx) {
  const int64_t n = x.batch(), IV = w_.in_vol(), P = w_.out_vol();
  const float* wt = params_[0].w;
  // By channel: each task owns its channels' parameter gradients and adds samples in
  // order, per chunk of samples (one chunk unless exact), the chunks then added in their
  // tree (framework/chunks.hpp).
  const ChunkPlan plan = chunks_for(ctx, n, std::max<int64_t>(n, 1));
  chunk_grads_.resize(static_cast<size_t>(plan.count * 2 * C_));
  parallel_chunks(C_, grain_for(n * w_.k_vol() * P), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t k = 0; k < plan.count; ++k) {
        float sw = 0, sb = 0;
        for (int64_t i = plan.begin(k); i < plan.end(k, n); ++i) {
          const float* xp = x.data() + (i * C_ + c) * IV;
          const float* dyp = dy.data() + (i * C_ + c) * P;
          float* dxp = dx.empty() ? nullptr : dx.data() + (i * C_ + c) * IV;
          if (dxp) std::fill(dxp, dxp + IV, 0.0f);
          for_each_output(w_, [&](int64_t p, int64_t od, int64_t oh, int64_t ow) {
            float s = 0;
            const float g = dyp[p] * wt[c];
            for_each_tap(w_, od, oh, ow, [&](int64_t, int64_t q) {
              s += xp[q];
              if (dxp) dxp[q] += g;
            });
            sw += dyp[p] * s;
            sb += dyp[p];
          });
        }
        chunk_grads_[static_cast<size_t>(k * 2 * C_ + c)] = sw;
        chunk_grads_[static_cast<size_t>(k * 2 * C_ + C_ + c)] = sb;
      }
  });
  tree_sum(chunk_grads_.data(), plan.count, 2 * C_, C_, params_[0].dw);
  tree_sum(chunk_grads_.data() + C_, plan.count, 2 * C_, C_, params_[1].dw);
}

// ---------------------------------------------------------------------------------------
// GlobalPool

std::unique_ptr<Layer> GlobalPool::from_config(const Config&, PoolKind kind) {
  return std::make_unique<GlobalPool>(kind);
}

Shape GlobalPool::output_shape(const Shape& x) const {
  if (x.rank() < 2) shape_error(cat("expects [C, spatial...]; got ", x.str()));
  return {x[0]};
}

void GlobalPool::bind(const Binding& b) {
  UnaryLayer::bind(b);
  C_ = b.x[0][0];
  P_ = b.x[0].numel() / C_;
  if (kind_ == PoolKind::max && !b.inference) argmax_.assign(static_cast<size_t>(b.max_batch * C_), 0);
}

void GlobalPool::forward(ConstTensorView x, TensorView y, const StepContext&) {
  parallel_chunks(x.batch() * C_, grain_for(P_), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* xp = x.data() + pl * P_;
      if (kind_ == PoolKind::max) {
        int64_t arg = 0;
        for (int64_t q = 1; q < P_; ++q)
          if (xp[q] > xp[arg]) arg = q;
        if (!argmax_.empty()) argmax_[static_cast<size_t>(pl)] = static_cast<int32_t>(arg);
        y.data()[pl] = xp[arg];
      } else {
        float s = 0;
        for (int64_t q = 0; q < P_; ++q) s += xp[q];
        y.data()[pl] = s / static_cast<float>(P_);
      }
    }
  });
}

void GlobalPool::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (dx.empty()) return;
  parallel_chunks(x.batch() * C_, grain_for(P_), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      float* dxp = dx.data() + pl * P_;
      if (kind_ == PoolKind::max) {
        std::fill(dxp, dxp + P_, 0.0f);
        dxp[argmax_[static_cast<size_t>(pl)]] = dy.data()[pl];
      } else {
        const float g = dy.data()[pl] / static_cast<float>(P_);
        std::fill(dxp, dxp + P_, g);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Maxout

std::unique_ptr<Layer> Maxout::from_config(const Config& c) {
  const auto k = c.get<int64_t>("pieces");
  if (k < 1) c.at("pieces").fail(cat("pieces must be at least 1; got ", k));
  return std::make_unique<Maxout>(k);
}

Shape Maxout::output_shape(const Shape& x) const {
  if (x.rank() < 1) shape_error("expects [C, ...]");
  if (x[0] % k_) shape_error(cat("groups of ", k_, " do not divide the ", x[0], " channels of ", x.str()));
  Shape y = x;
  y[0] = x[0] / k_;
  return y;
}

void Maxout::bind(const Binding& b) {
  UnaryLayer::bind(b);
  groups_ = b.y[0];
  P_ = b.y.numel() / groups_;
  argmax_.assign(static_cast<size_t>(b.max_batch * b.y.numel()), 0);
}

void Maxout::forward(ConstTensorView x, TensorView y, const StepContext&) {
  // Plane (i, j) of y reads channels j*k .. j*k+k-1 of sample i.
  parallel_chunks(x.batch() * groups_, grain_for(k_ * P_), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* xp = x.data() + pl * k_ * P_;
      float* yp = y.data() + pl * P_;
      int32_t* am = argmax_.data() + pl * P_;
      for (int64_t p = 0; p < P_; ++p) {
        yp[p] = xp[p];
        am[p] = 0;
      }
      for (int64_t j = 1; j < k_; ++j)
        for (int64_t p = 0; p < P_; ++p)
          if (xp[j * P_ + p] > yp[p]) yp[p] = xp[j * P_ + p], am[p] = static_cast<int32_t>(j);
    }
  });
}

void Maxout::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (dx.empty()) return;
  parallel_chunks(x.batch() * groups_, grain_for(k_ * P_), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      float* dxp = dx.data() + pl * k_ * P_;
      const float* dyp = dy.data() + pl * P_;
      const int32_t* am = argmax_.data() + pl * P_;
      std::fill(dxp, dxp + k_ * P_, 0.0f);
      for (int64_t p = 0; p < P_; ++p) dxp[am[p] * P_ + p] = dyp[p];
    }
  });
}

}  // namespace hubel::layers

namespace hubel::layers {

void Pool::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>, const std::string& y) const {
  OnnxWindow ow = onnx_window(w_);
  const std::string in = onnx_pad_input(g, x[0], w_, ow, name());
  const bool dilated = std::any_of(ow.dilations.begin(), ow.dilations.end(), [](int64_t d) { return d != 1; });
  switch (o_.kind) {
    case PoolKind::max:
      g.node("MaxPool", {in}, {y}, onnx_window_attrs(ow));
      break;
    case PoolKind::avg: {
      if (dilated) onnx_refuse("ONNX's AveragePool is dilated only from opset 19");
      auto a = onnx_window_attrs(ow, false);
      a.push_back(onnx::attr("count_include_pad", int64_t{o_.count_padding}));
      g.node("AveragePool", {in}, {y}, std::move(a));
      break;
    }
    case PoolKind::l2: {
      if (dilated) onnx_refuse("ONNX's LpPool is dilated only from opset 18");
      auto a = onnx_window_attrs(ow, false);
      a.push_back(onnx::attr("p", int64_t{2}));
      g.node("LpPool", {in}, {y}, std::move(a));
      break;
    }
  }
}

// Decomposed: a depthwise convolution whose kernel holds the channel's weight at every tap.
void Subsample::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                        const std::string& y) const {
  const int64_t kvol = w_.k_vol();
  std::vector<float> w(static_cast<size_t>(C_ * kvol));
  for (int64_t c = 0; c < C_; ++c) std::fill_n(w.begin() + c * kvol, kvol, params_[0].w[c]);
  onnx_depthwise_conv(g, name(), x[0], w_, C_, w, params_[1].w, y);
}

void GlobalPool::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                         const std::string& y) const {
  const std::string p =
      g.op(kind_ == PoolKind::max ? "GlobalMaxPool" : "GlobalAveragePool", {x[0]}, name() + "_pooled");
  g.node("Flatten", {p}, {y}, {onnx::attr("axis", int64_t{1})});
}

// Decomposed: the channels as [C/k, k, ...], reduced over the k.
void Maxout::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
                     const std::string& y) const {
  std::vector<int64_t> grouped{xs[0][0] / k_, k_};
  for (int i = 1; i < xs[0].rank(); ++i) grouped.push_back(xs[0][i]);
  const std::string r = g.reshape(x[0], grouped, name() + "_groups");
  g.node("ReduceMax", {r}, {y}, {onnx::attr("axes", std::vector<int64_t>{2}), onnx::attr("keepdims", int64_t{0})});
}

}  // namespace hubel::layers
