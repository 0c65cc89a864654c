// Element-wise activations: sigmoid, tanh, LeNet's scaled tanh 1.7159 tanh(2x/3), ReLU,
// leaky ReLU, ELU. Each is an Op (value and derivative) plugged into one Elementwise
// layer, so a new activation is a few lines.
#pragma once

#include <cmath>
#include <memory>
#include <string>

#include "framework/layer.hpp"
#include "framework/parallel.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

// An Op has: name(), f(x), and df(x, y) = f'(x) given x and y = f(x).
template <class Op>
class Elementwise : public UnaryLayer {
 public:
  explicit Elementwise(Op op = {}) : op_(op) {}
  std::string type() const override { return Op::kType; }
  std::string describe() const override { return op_.describe(); }
  Shape output_shape(const Shape& x) const override { return x; }
  void forward(ConstTensorView x, TensorView y, const StepContext&) override {
    const float* xp = x.data();
    float* yp = y.data();
    parallel_chunks(x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) yp[i] = op_.f(xp[i]);
    });
  }
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext&) override {
    if (dx.empty()) return;
    const float *xp = x.data(), *yp = y.data(), *dyp = dy.data();
    float* dxp = dx.data();
    parallel_chunks(x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dxp[i] = dyp[i] * op_.df(xp[i], yp[i]);
    });
  }
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
               const std::string& y) const override {
    op_.onnx(g, x[0], y);
  }
  const Op& op() const { return op_; }

 private:
  static constexpr int64_t kGrain = 16384;
  Op op_;
};

struct SigmoidOp {
  static constexpr const char* kType = "sigmoid";
  std::string describe() const { return ""; }
  float f(float x) const { return 1.0f / (1.0f + std::exp(-x)); }
  float df(float, float y) const { return y * (1.0f - y); }
  void onnx(onnx::Graph& g, const std::string& x, const std::string& y) const;
};

struct TanhOp {
  static constexpr const char* kType = "tanh";
  std::string describe() const { return ""; }
  float f(float x) const { return std::tanh(x); }
  float df(float, float y) const { return 1.0f - y * y; }
  void onnx(onnx::Graph& g, const std::string& x, const std::string& y) const;
};

// LeCun's scaled tanh: A tanh(S x), A = 1.7159, S = 2/3, so f(+-1) = +-1.
struct ScaledTanhOp {
  static constexpr const char* kType = "scaled_tanh";
  float a = 1.7159f, s = 2.0f / 3.0f;
  std::string describe() const;
  float f(float x) const { return a * std::tanh(s * x); }
  float df(float, float y) const { return s * (a - y * y / a); }
  void onnx(onnx::Graph& g, const std::string& x, const std::string& y) const;
};

struct ReluOp {
  static constexpr const char* kType = "relu";
  std::string describe() const { return ""; }
  float f(float x) const { return x > 0 ? x : 0.0f; }
  float df(float x, float) const { return x > 0 ? 1.0f : 0.0f; }
  void onnx(onnx::Graph& g, const std::string& x, const std::string& y) const;
};

struct LeakyReluOp {
  static constexpr const char* kType = "leaky_relu";
  float slope = 0.01f;
  std::string describe() const;
  float f(float x) const { return x > 0 ? x : slope * x; }
  float df(float x, float) const { return x > 0 ? 1.0f : slope; }
  void onnx(onnx::Graph& g, const std::string& x, const std::string& y) const;
};

struct EluOp {
  static constexpr const char* kType = "elu";
  float alpha = 1.0f;
  std::string describe() const;
  float f(float x) const { return x > 0 ? x : alpha * std::expm1(x); }
  float df(float x, float y) const { return x > 0 ? 1.0f : y + alpha; }
  void onnx(onnx::Graph& g, const std::string& x, const std::string& y) const;
};

using Sigmoid = Elementwise<SigmoidOp>;
using Tanh = Elementwise<TanhOp>;
using ScaledTanh = Elementwise<ScaledTanhOp>;
using Relu = Elementwise<ReluOp>;
using LeakyRelu = Elementwise<LeakyReluOp>;
using Elu = Elementwise<EluOp>;

// Factories reading each activation's keys.
std::unique_ptr<Layer> make_sigmoid(const Config& c);
std::unique_ptr<Layer> make_tanh(const Config& c);
std::unique_ptr<Layer> make_scaled_tanh(const Config& c);
std::unique_ptr<Layer> make_relu(const Config& c);
std::unique_ptr<Layer> make_leaky_relu(const Config& c);
std::unique_ptr<Layer> make_elu(const Config& c);

}  // namespace hubel::layers
