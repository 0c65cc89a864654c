// Add and concat.
#include "layers/joins.hpp"

#include <cstring>

#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

Add::Add() = default;
Add::~Add() = default;

std::unique_ptr<Layer> Add::from_config(const Config&) { return std::make_unique<Add>(); }

Shape Add::output_shape(std::span<const Shape> x) const {
  if (x.size() < 2) shape_error(cat("adds two or more inputs; got ", x.size(), " (name them with 'inputs: [a, b]')"));
  for (size_t i = 1; i < x.size(); ++i)
    if (x[i] != x[0])
      shape_error(cat("inputs must have equal shapes; input 0 is ", x[0].str(), ", input ", i, " is ", x[i].str(),
                      x.size() == 2 ? " (project: auto adds a 1x1 convolution on the shortcut)" : ""));
  return x[0];
}

int64_t Add::flops(std::span<const Shape> x, const Shape& y) const {
  return y.numel() * static_cast<int64_t>(x.size() - 1);
}

void Add::forward(std::span<const ConstTensorView> x, TensorView y, const StepContext&) {
  float* yp = y.data();
  parallel_chunks(y.numel(), 16384, [&](int64_t b, int64_t e) {
    // The first two in one pass (the residual add), then any others in order.
    const float *x0 = x[0].data(), *x1 = x[1].data();
    for (int64_t j = b; j < e; ++j) yp[j] = x0[j] + x1[j];
    for (size_t i = 2; i < x.size(); ++i) {
      const float* xi = x[i].data();
      for (int64_t j = b; j < e; ++j) yp[j] += xi[j];
    }
  });
}

// Each input's gradient is dy: copied by the threads in pieces (one thread's copy of a
// stage-1 ResNet gradient, 8 MB, had taken 1.3 ms, and longer with a second thread idle).
void Add::backward(std::span<const ConstTensorView>, ConstTensorView, ConstTensorView dy,
                   std::span<const TensorView> dx, const StepContext&) {
  // (An input whose dx the Net made dy's own buffer, passes_gradient, needs nothing.)
  parallel_chunks(dy.numel(), 16384, [&](int64_t b, int64_t e) {
    for (const auto& d : dx)
      if (!d.empty() && d.data() != dy.data())
        std::memcpy(d.data() + b, dy.data() + b, static_cast<size_t>(e - b) * sizeof(float));
  });
}

std::unique_ptr<Layer> Concat::from_config(const Config&) { return std::make_unique<Concat>(); }

Shape Concat::output_shape(std::span<const Shape> x) const {
  if (x.size() < 2)
    shape_error(cat("concatenates two or more inputs; got ", x.size(), " (name them with 'inputs: [a, b]')"));
  Shape out = x[0];
  for (size_t i = 1; i < x.size(); ++i) {
    bool ok = x[i].rank() == x[0].rank();
    for (int d = 1; ok && d < x[0].rank(); ++d) ok = x[i][d] == x[0][d];
    if (!ok)
      shape_error(cat("inputs must agree in every dimension but the first (channels); input 0 is ", x[0].str(),
                      ", input ", i, " is ", x[i].str()));
    out[0] += x[i][0];
  }
  return out;
}

// Each sample of y is the inputs' samples one after the other.
void Concat::forward(std::span<const ConstTensorView> x, TensorView y, const StepContext&) {
  const int64_t ys = y.stride0();
  parallel_chunks(y.batch(), grain_for(ys), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* dst = y.data() + r * ys;
      for (const auto& xi : x) {
        const int64_t s = xi.stride0();
        std::memcpy(dst, xi.data() + r * s, s * sizeof(float));
        dst += s;
      }
    }
  });
}

void Concat::backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                      std::span<const TensorView> dx, const StepContext&) {
  const int64_t ys = y.stride0();
  parallel_chunks(y.batch(), grain_for(ys), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = dy.data() + r * ys;
      for (size_t i = 0; i < dx.size(); ++i) {
        const int64_t s = x[i].stride0();
        if (!dx[i].empty()) std::memcpy(dx[i].data() + r * s, src, s * sizeof(float));
        src += s;
      }
    }
  });
}

}  // namespace hubel::layers

namespace hubel::layers {

void Add::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>, const std::string& y) const {
  g.node("Sum", {x.begin(), x.end()}, {y});
}

void Concat::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                     const std::string& y) const {
  g.node("Concat", {x.begin(), x.end()}, {y}, {onnx::attr("axis", int64_t{1})});
}

}  // namespace hubel::layers
