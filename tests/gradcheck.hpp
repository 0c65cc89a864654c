// Finite-difference gradient checks (central differences, error relative to
// max(1, |analytic|, |numeric|)) for layers, losses and whole Nets. Every layer test uses them.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "framework/layer.hpp"
#include "framework/loss.hpp"
#include "framework/net.hpp"
#include "framework/random.hpp"

namespace hubel::test {

struct GradCheckOptions {
  double eps = 1e-3;       // step of the central difference
  double tol = 1e-2;       // allowed |a - n| / max(1, |a|, |n|)
  double kink = 0;         // skip inputs within this distance of 0 (ReLU-like kinks)
  int64_t max_checks = 0;  // check at most this many entries per tensor (random ones); 0: all
  uint64_t seed = 1;
  StepContext ctx{true, 7, 3, 0};
};

// Fills v with N(0, scale) values; with kink > 0, values within kink of 0 are pushed away.
inline void randomize(std::span<float> v, Rng& rng, double scale = 1.0, double kink = 0) {
  for (auto& x : v) {
    double r = scale * rng.normal();
    if (kink > 0 && std::abs(r) < 2 * kink) r = r < 0 ? r - 2 * kink : r + 2 * kink;
    x = static_cast<float>(r);
  }
}

// Compares analytic gradients with central differences of f over the entries of `values`.
// f returns the scalar objective (double); `analytic` holds d f / d values.
inline void compare(const char* what, std::span<float> values, std::span<const float> analytic,
                    const std::function<double()>& f, const GradCheckOptions& o) {
  Rng pick(o.seed + 99);
  const int64_t n = static_cast<int64_t>(values.size());
  const int64_t checks = o.max_checks > 0 ? std::min(o.max_checks, n) : n;
  int failures = 0;
  for (int64_t c = 0; c < checks; ++c) {
    const int64_t i = checks == n ? c : static_cast<int64_t>(pick.below(static_cast<uint64_t>(n)));
    const float saved = values[i];
    values[i] = static_cast<float>(saved + o.eps);
    const double plus = f();
    values[i] = static_cast<float>(saved - o.eps);
    const double minus = f();
    values[i] = saved;
    // The step actually taken in float.
    const double h = static_cast<double>(static_cast<float>(saved + o.eps)) - static_cast<float>(saved - o.eps);
    const double numeric = (plus - minus) / h;
    const double a = analytic[i];
    const double err = std::abs(a - numeric) / std::max({1.0, std::abs(a), std::abs(numeric)});
    if (err > o.tol && ++failures <= 5)
      ADD_FAILURE() << what << "[" << i << "]: analytic " << a << ", numeric " << numeric << ", relative error " << err;
  }
}

// A layer alone, with its own parameters and buffers, checked on a random minibatch
// against the objective sum(r * y) for a fixed random r.
class LayerHarness {
 public:
  LayerHarness(Layer& layer, std::vector<Shape> x_shapes, int64_t batch, uint64_t seed = 1, double kink = 0,
               Precision precision = Precision::fp32)
      : layer_(layer), x_shapes_(std::move(x_shapes)), batch_(batch) {
    y_shape_ = layer.output_shape(x_shapes_);
    auto specs = layer.param_specs(x_shapes_);
    Rng rng(seed);
    for (const auto& s : specs) {
      w_.emplace_back(s.shape);
      dw_.emplace_back(s.shape);
      // Buffers (running statistics) start as the Net would start them; weights random.
      if (s.buffer)
        initialize(w_.back().span(), s.init, s.fan_in, s.fan_out, rng);
      else
        randomize(w_.back().span(), rng, 0.5);
      buffer_.push_back(s.buffer);
      params_.push_back({s.name, s.shape, w_.back().data(), dw_.back().data()});
    }
    for (const auto& s : x_shapes_) {
      x_.emplace_back(s.with_batch(batch));
      dx_.emplace_back(s.with_batch(batch));
      randomize(x_.back().span(), rng, 1.0, kink);
    }
    y_ = Tensor(y_shape_.with_batch(batch));
    r_ = Tensor(y_shape_.with_batch(batch));
    randomize(r_.span(), rng);
    layer.bind(Binding{x_shapes_, y_shape_, batch, params_, false, precision});
  }

  Tensor& x(size_t i = 0) { return x_[i]; }
  Tensor& y() { return y_; }
  Tensor& w(size_t i) { return w_[i]; }
  Tensor& dw(size_t i) { return dw_[i]; }
  Tensor& dx(size_t i = 0) { return dx_[i]; }
  // The dy that backward() feeds the layer (the fixed random r of the objective).
  const Tensor& dy() const { return r_; }
  Tensor& dy() { return r_; }
  const Shape& y_shape() const { return y_shape_; }

  void forward(const StepContext& ctx) {
    std::vector<ConstTensorView> xs(x_.begin(), x_.end());
    layer_.forward(xs, y_.view(), ctx);
  }
  // sum(r * y) in double.
  double objective(const StepContext& ctx) {
    forward(ctx);
    double s = 0;
    for (int64_t i = 0; i < y_.numel(); ++i) s += static_cast<double>(r_[i]) * y_[i];
    return s;
  }
  void backward(const StepContext& ctx) {
    forward(ctx);
    std::vector<ConstTensorView> xs(x_.begin(), x_.end());
    std::vector<TensorView> dxs(dx_.begin(), dx_.end());
    layer_.backward(xs, y_.view(), r_.view(), dxs, ctx);
  }

  // Checks every input and parameter gradient.
  void check(const GradCheckOptions& o = {}) {
    backward(o.ctx);
    auto f = [&] { return objective(o.ctx); };
    for (size_t i = 0; i < x_.size(); ++i) {
      Tensor analytic = copy(dx_[i]);
      compare("dx", x_[i].span(), analytic.span(), f, o);
    }
    for (size_t p = 0; p < w_.size(); ++p) {
      if (buffer_[p]) continue;  // no gradient
      Tensor analytic = copy(dw_[p]);
      compare(params_[p].name.c_str(), w_[p].span(), analytic.span(), f, o);
    }
  }

  static Tensor copy(const Tensor& t) {
    Tensor c(t.shape());
    std::copy(t.span().begin(), t.span().end(), c.span().begin());
    return c;
  }

 private:
  Layer& layer_;
  std::vector<Shape> x_shapes_;
  Shape y_shape_;
  int64_t batch_;
  std::vector<Tensor> x_, dx_, w_, dw_;
  std::vector<Param> params_;
  std::vector<bool> buffer_;
  Tensor y_, r_;
};

// d(loss)/dy of a loss, checked on given outputs and targets.
inline void check_loss_gradient(const Loss& loss, Tensor& y, const Targets& t, const GradCheckOptions& o = {}) {
  Tensor dy(y.shape());
  loss.evaluate(y.view(), t, dy.view(), 1.0f);
  auto f = [&] { return loss.evaluate(y.view(), t, TensorView(), 1.0f).loss; };
  compare("dy", y.span(), dy.span(), f, o);
}

// Every parameter gradient of a built Net (and so of its graph wiring), with loss sum as objective.
inline void check_net_gradients(Net& net, const Loss& loss, int64_t n, const Targets& t,
                                const GradCheckOptions& o = {}) {
  auto f = [&] { return loss.evaluate(net.forward(n, o.ctx), t, TensorView(), 1.0f).loss; };
  const auto y = net.forward(n, o.ctx);
  loss.evaluate(y, t, net.output_grad(n), 1.0f);
  net.backward(n, o.ctx);
  std::vector<float> analytic(net.grads().begin(), net.grads().end());
  compare("net params", net.params(), analytic, f, o);
}

}  // namespace hubel::test
