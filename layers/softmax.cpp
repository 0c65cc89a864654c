// Softmax layer.
#include "layers/softmax.hpp"

#include <algorithm>
#include <cmath>

#include "framework/onnx.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

std::unique_ptr<Layer> Softmax::from_config(const Config&) { return std::make_unique<Softmax>(); }

void Softmax::forward(ConstTensorView x, TensorView y, const StepContext&) {
  const int64_t k = x.stride0();
  parallel_chunks(x.batch(), grain_for(k * 8), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.data() + r * k;
      float* yr = y.data() + r * k;
      const float m = *std::max_element(xr, xr + k);
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += yr[j] = std::exp(xr[j] - m);
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < k; ++j) yr[j] *= inv;
    }
  });
}

void Softmax::backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (dx.empty()) return;
  const int64_t k = x.stride0();
  parallel_chunks(x.batch(), grain_for(k * 4), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float *yr = y.data() + r * k, *dyr = dy.data() + r * k;
      float* dxr = dx.data() + r * k;
      double dot = 0;
      for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(dyr[j]) * yr[j];
      for (int64_t j = 0; j < k; ++j) dxr[j] = yr[j] * (dyr[j] - static_cast<float>(dot));
    }
  });
}

}  // namespace hubel::layers

namespace hubel::layers {

// Over each sample's values: samples of rank above 1 are flattened and shaped back.
void Softmax::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
                      const std::string& y) const {
  const onnx::Attr axis = onnx::attr("axis", int64_t{1});
  if (xs[0].rank() == 1) {
    g.node("Softmax", {x[0]}, {y}, {axis});
    return;
  }
  const std::string flat = g.op("Flatten", {x[0]}, name() + "_flat", {axis});
  const std::string s = g.op("Softmax", {flat}, name() + "_flat_softmax", {axis});
  const auto d = onnx::dims(xs[0]);
  std::vector<int64_t> shape{0};
  shape.insert(shape.end(), d.begin(), d.end());
  g.node("Reshape", {s, g.constant_i64(name() + "_shape", {static_cast<int64_t>(shape.size())}, shape)}, {y});
}

}  // namespace hubel::layers
