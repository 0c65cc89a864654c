// The fast paths of window pooling: taps by precomputed offsets, and the 2x2 max.
#include "layers/pool_fast.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

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
    int64_t ow = 0;
#if defined(__AVX2__)
    // 8 outputs at a time: 16 columns of each row, split into even and odd columns; the
    // same comparisons in the same order, as masks (an ordered > is false for NaN, and
    // blending by it is std::max(m, v)).
    const __m256i lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (; ow + 8 <= OW; ow += 8) {
      auto split = [](const float* r, __m256& even, __m256& odd) {
        const __m256 a = _mm256_loadu_ps(r), b = _mm256_loadu_ps(r + 8);
        even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
        odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
      };
      __m256 v0, v1, v2, v3;
      split(r0 + 2 * ow, v0, v1);
      split(r1 + 2 * ow, v2, v3);
      const __m256i q = _mm256_add_epi32(_mm256_set1_epi32(base + static_cast<int32_t>(2 * ow)), lanes);
      __m256 m = v0;
      __m256i arg = q;
      auto step = [&](__m256 v, int32_t off) {
        const __m256 take = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, v, take);
        arg = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(arg), _mm256_castsi256_ps(_mm256_add_epi32(q, _mm256_set1_epi32(off))), take));
      };
      step(v1, 1);
      step(v2, Wi);
      step(v3, Wi + 1);
      _mm256_storeu_ps(yr + ow, m);
      if (a) _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + ow), arg);
    }
    // 4 more the same way (LeNet's second pooling is 5 wide).
    for (; ow + 4 <= OW; ow += 4) {
      auto split = [](const float* r, __m128& even, __m128& odd) {
        const __m128 a = _mm_loadu_ps(r), b = _mm_loadu_ps(r + 4);
        even = _mm_shuffle_ps(a, b, 0x88);
        odd = _mm_shuffle_ps(a, b, 0xdd);
      };
      __m128 v0, v1, v2, v3;
      split(r0 + 2 * ow, v0, v1);
      split(r1 + 2 * ow, v2, v3);
      const __m128i q = _mm_add_epi32(_mm_set1_epi32(base + static_cast<int32_t>(2 * ow)), _mm_setr_epi32(0, 2, 4, 6));
      __m128 m = v0;
      __m128i arg = q;
      auto step = [&](__m128 v, int32_t off) {
        const __m128 take = _mm_cmp_ps(v, m, _CMP_GT_OQ);
        m = _mm_blendv_ps(m, v, take);
        arg = _mm_castps_si128(
            _mm_blendv_ps(_mm_castsi128_ps(arg), _mm_castsi128_ps(_mm_add_epi32(q, _mm_set1_epi32(off))), take));
      };
      step(v1, 1);
      step(v2, Wi);
      step(v3, Wi + 1);
      _mm_storeu_ps(yr + ow, m);
      if (a) _mm_storeu_si128(reinterpret_cast<__m128i*>(a + ow), arg);
    }
#endif
    for (; ow < OW; ++ow) {
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

void max_2x2_backward_plane(const Window& w, const float* dy, const int32_t* argmax, float* dx, int64_t ld) {
  const int64_t H = w.in[1], W = w.in[2], OH = w.out[1], OW = w.out[2];
  const auto Wi = static_cast<int32_t>(W);
  if (ld == 0) ld = W;
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* d0 = dx + 2 * oh * ld;
    float* d1 = d0 + ld;
    const float* g = dy + oh * OW;
    const int32_t* a = argmax + oh * OW;
    const auto base = static_cast<int32_t>(2 * oh * W);
    // Each input of a window gets its output's gradient where it was the maximum, else 0,
    // as the reference's zeroed plane plus the gradient (0 + g: -0 becomes +0 there too).
    int64_t ow = 0;
#if defined(__AVX2__)
    const __m256i lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256 zero = _mm256_setzero_ps();
    for (; ow + 8 <= OW; ow += 8) {
      const __m256 gv = _mm256_loadu_ps(g + ow);
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + ow));
      const __m256i q = _mm256_add_epi32(_mm256_set1_epi32(base + static_cast<int32_t>(2 * ow)), lanes);
      auto at = [&](int32_t off) {
        const __m256i hit = _mm256_cmpeq_epi32(av, _mm256_add_epi32(q, _mm256_set1_epi32(off)));
        return _mm256_add_ps(zero, _mm256_and_ps(_mm256_castsi256_ps(hit), gv));
      };
      auto put = [](float* d, __m256 even, __m256 odd) {
        const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
        _mm256_storeu_ps(d, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
      };
      put(d0 + 2 * ow, at(0), at(1));
      put(d1 + 2 * ow, at(Wi), at(Wi + 1));
    }
    for (; ow + 4 <= OW; ow += 4) {
      const __m128 gv = _mm_loadu_ps(g + ow);
      const __m128i av = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + ow));
      const __m128i q = _mm_add_epi32(_mm_set1_epi32(base + static_cast<int32_t>(2 * ow)), _mm_setr_epi32(0, 2, 4, 6));
      auto at = [&](int32_t off) {
        const __m128i hit = _mm_cmpeq_epi32(av, _mm_add_epi32(q, _mm_set1_epi32(off)));
        return _mm_add_ps(_mm_setzero_ps(), _mm_and_ps(_mm_castsi128_ps(hit), gv));
      };
      auto put = [](float* d, __m128 even, __m128 odd) {
        _mm_storeu_ps(d, _mm_unpacklo_ps(even, odd));
        _mm_storeu_ps(d + 4, _mm_unpackhi_ps(even, odd));
      };
      put(d0 + 2 * ow, at(0), at(1));
      put(d1 + 2 * ow, at(Wi), at(Wi + 1));
    }
#endif
    // (each tap 0 + g where the maximum was, else 0: no branch on random data)
    for (; ow < OW; ++ow) {
      const auto q = base + static_cast<int32_t>(2 * ow);
      auto at = [&](int32_t off) { return 0.0f + (a[ow] == q + off ? g[ow] : 0.0f); };
      d0[2 * ow] = at(0);
      d0[2 * ow + 1] = at(1);
      d1[2 * ow] = at(Wi);
      d1[2 * ow + 1] = at(Wi + 1);
    }
    // An odd width's last column is in no window.
    for (int64_t c = 2 * OW; c < W; ++c) d0[c] = d1[c] = 0.0f;
  }
  // Nor an odd height's last row.
  for (int64_t h = 2 * OH; h < H; ++h) std::memset(dx + h * ld, 0, static_cast<size_t>(W) * sizeof(float));
}

}  // namespace hubel::layers::pool_fast
