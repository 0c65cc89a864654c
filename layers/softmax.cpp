// Softmax layer.
#include "layers/softmax.hpp"

#include <algorithm>
#include <cmath>

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
