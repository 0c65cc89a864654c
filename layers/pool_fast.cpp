// The fast paths of window pooling: taps by precomputed offsets, and the 2x2 max.
#include "layers/pool_fast.hpp"

#include <algorithm>
#include <cmath>

namespace hubel::layers::pool_fast {

void pool_plane(PoolKind kind, const WindowOffsets& o, const float* x, float* y, int32_t* argmax) {
  const auto P = static_cast<int64_t>(o.starts.size()), kvol = static_cast<int64_t>(o.taps.size());
  const int32_t* t = o.taps.data();
  for (int64_t p = 0; p < P; ++p) {
    const float* xw = x + o.starts[static_cast<size_t>(p)];
    switch (kind) {
      case PoolKind::max: {
        float m = xw[t[0]];
        int32_t arg = t[0];
        for (int64_t j = 1; j < kvol; ++j)
          if (xw[t[j]] > m) m = xw[t[j]], arg = t[j];
        y[p] = m;
        if (argmax) argmax[p] = o.starts[static_cast<size_t>(p)] + arg;
        break;
      }
      case PoolKind::avg: {
        float s = 0;
        for (int64_t j = 0; j < kvol; ++j) s += xw[t[j]];
        y[p] = s / static_cast<float>(kvol);
        break;
      }
      case PoolKind::l2: {
        float s = 0;
        for (int64_t j = 0; j < kvol; ++j) s += xw[t[j]] * xw[t[j]];
        y[p] = std::sqrt(s);
        break;
      }
    }
  }
}

bool max_2x2_applies(const Window& w) {
  return all_inside(w) && w.rank == 2 && w.k[1] == 2 && w.k[2] == 2 && w.s[1] == 2 && w.s[2] == 2 && w.d[1] == 1 &&
         w.d[2] == 1;
}

void max_2x2_plane(const Window& w, const float* x, float* y, int32_t* argmax) {
  const int64_t W = w.in[2], OH = w.out[1], OW = w.out[2];
  const auto Wi = static_cast<int32_t>(W);
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* r0 = x + 2 * oh * W;
    const float* r1 = r0 + W;
    float* yr = y + oh * OW;
    int32_t* a = argmax ? argmax + oh * OW : nullptr;
    const auto base = static_cast<int32_t>(2 * oh * W);
    // Tap t replaces the maximum when it is strictly greater (NaN never is), as in the
    // reference.
    for (int64_t ow = 0; ow < OW; ++ow) {
      const float v0 = r0[2 * ow], v1 = r0[2 * ow + 1], v2 = r1[2 * ow], v3 = r1[2 * ow + 1];
      const auto q = base + static_cast<int32_t>(2 * ow);
      float m = v0;
      int32_t arg = q;
      int32_t take = -static_cast<int32_t>(v1 > m);
      arg = (arg & ~take) | ((q + 1) & take);
      m = std::max(m, v1);
      take = -static_cast<int32_t>(v2 > m);
      arg = (arg & ~take) | ((q + Wi) & take);
      m = std::max(m, v2);
      take = -static_cast<int32_t>(v3 > m);
      arg = (arg & ~take) | ((q + Wi + 1) & take);
      m = std::max(m, v3);
      yr[ow] = m;
      if (a) a[ow] = arg;
    }
  }
}

}  // namespace hubel::layers::pool_fast
