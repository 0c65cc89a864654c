// The bf16 products of bf16_products.hpp: register tiles like those of kernel_tiles.hpp,
// with vdpbf16ps in place of the FMA (each instruction two products per fp32 lane), at
// 256 or 512 bits as kernel_width() says. Built where the compiler targets AVX512_BF16
// (HUBEL_NATIVE on such a CPU); elsewhere bf16_kernels() is false and the convolution keeps
// its fp32 plans.
#include "layers/bf16_products.hpp"

#include <array>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "layers/gemm_kernels.hpp"

#if defined(__AVX512BF16__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#include <immintrin.h>
#define HUBEL_BF16_KERNELS 1
#endif

namespace hubel::layers {

#ifdef HUBEL_BF16_KERNELS
namespace {

struct B256 {
  using F = __m256;
  using I = __m256i;
  static constexpr int kW = 8;  // fp32 lanes: 16 bf16 per vector
  // AVX-512 gives the 256-bit operations 32 registers: nn 8 x 2 vectors, nt 4 x 5
  static constexpr int kMR = 8, kTR = 4, kTS = 5;
  static F zero() { return _mm256_setzero_ps(); }
  static F dp(F acc, I a, I b) { return _mm256_dpbf16_ps(acc, (__m256bh)a, (__m256bh)b); }
  static I load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static I load_first(const uint16_t* p, int64_t count) {  // count < 16 elements, zeros after
    return _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << count) - 1), p);
  }
  static I broadcast(uint32_t w) { return _mm256_set1_epi32(static_cast<int>(w)); }
  static F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static float sum(F v) {  // a fixed tree
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

struct B512 {
  using F = __m512;
  using I = __m512i;
  static constexpr int kW = 16;  // 32 bf16 per vector
  static constexpr int kMR = 8, kTR = 4, kTS = 4;
  static F zero() { return _mm512_setzero_ps(); }
  static F dp(F acc, I a, I b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static I load(const void* p) { return _mm512_loadu_si512(p); }
  static I load_first(const uint16_t* p, int64_t count) {  // count < 32
    return _mm512_maskz_loadu_epi16(static_cast<__mmask32>((1u << count) - 1), p);
  }
  static I broadcast(uint32_t w) { return _mm512_set1_epi32(static_cast<int>(w)); }
  static F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static float sum(F v) {  // halves, then the 256-bit tree
    // through memory: GCC 12's intrinsics for the halves warn of an uninitialized operand
    alignas(64) float f[16];
    _mm512_store_ps(f, v);
    return B256::sum(_mm256_add_ps(_mm256_load_ps(f), _mm256_load_ps(f + 8)));
  }
};

template <class I>
inline void in_register(I& v) {
  asm("" : "+x"(v));
}

// Pairs of B's rows per pass of the nn driver: the panel (32 KiB) stays in the L1 cache
// while every row tile of A passes over it.
template <class V>
constexpr int64_t kPass = 8192 / (2 * V::kW);

// C[R, panel] (= or +=) sum_{p < kc} A(r, p0 + p) B[p0 + p, j..]: A at a (row 0, column p0).
template <class V, int R>
void nn_tile(int64_t kc, const uint32_t* a, int64_t lda, const uint32_t* b, const int64_t* off, int64_t ldb, int64_t p0,
             int64_t j, float* c, int64_t ldc, bool add) {
  using F = typename V::F;
  using I = typename V::I;
  F lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = V::zero();
  for (int64_t p = 0; p < kc; ++p) {
    const uint32_t* bp = (off ? b + off[p0 + p] : b + (p0 + p) * ldb) + j;
    const I b0 = V::load(bp), b1 = V::load(bp + V::kW);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const I av = V::broadcast(a[r * lda + p]);
      lo[r] = V::dp(lo[r], av, b0);
      hi[r] = V::dp(hi[r], av, b1);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (add) {
      lo[r] = V::add(V::loadf(cr), lo[r]);
      hi[r] = V::add(V::loadf(cr + V::kW), hi[r]);
    }
    V::store(cr, lo[r]);
    V::store(cr + V::kW, hi[r]);
  }
}

using NnTile = void (*)(int64_t, const uint32_t*, int64_t, const uint32_t*, const int64_t*, int64_t, int64_t, int64_t,
                        float*, int64_t, bool);
template <class V, int... R>
constexpr std::array<NnTile, sizeof...(R)> nn_tiles(std::integer_sequence<int, R...>) {
  return {&nn_tile<V, R + 1>...};
}

template <class V>
void nn(int64_t m, int64_t n, int64_t k2, const uint32_t* a, int64_t lda, const uint32_t* b, const int64_t* off,
        int64_t ldb, float* c, int64_t ldc, int64_t group, int64_t group_stride) {
  static constexpr auto tiles = nn_tiles<V>(std::make_integer_sequence<int, V::kMR>{});
  constexpr int64_t panel = 2 * V::kW;
  if (k2 <= 0) {
    for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  for (int64_t p0 = 0; p0 < k2; p0 += kPass<V>) {
    const int64_t kc = std::min(kPass<V>, k2 - p0);
    for (int64_t j = 0; j + panel <= n; j += panel) {
      const int64_t bj = group ? j / group * group_stride + j % group : j;
      for (int64_t i = 0; i < m; i += V::kMR) {
        const int64_t r = std::min<int64_t>(V::kMR, m - i);
        tiles[static_cast<size_t>(r - 1)](kc, a + i * lda + p0, lda, b, off, ldb, p0, bj, c + i * ldc + j, ldc, p0 > 0);
      }
    }
  }
}

// C[R, S] dot products over k elements per segment, in vector lanes, a masked vector for
// the last k % (2 kW) of each segment.
// (Rest: whether segments end in a part vector; without one, the accumulators stay in
// registers across segments, where the branch had GCC spill them at every segment.)
template <class V, int R, int S, bool Rest>
void nt_tile(int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, const int64_t* off, int64_t ldb, int64_t j,
             float* c, int64_t ldc, float beta, int64_t segments, int64_t a_step, int64_t b_step) {
  using F = typename V::F;
  using I = typename V::I;
  constexpr int64_t E = 2 * V::kW;
  F acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = V::zero();
  const uint16_t* br[S];
  for (int s = 0; s < S; ++s) br[s] = off ? b + off[j + s] : b + (j + s) * ldb;
  const int64_t kv = k - k % E, rest = k % E;
  for (int64_t g = 0; g < segments; ++g) {
    const uint16_t* ag = a + g * a_step;
    const int64_t bg = g * b_step;
    for (int64_t p = 0; p < kv; p += E) {
      I av[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) av[r] = V::load(ag + r * lda + p);
#pragma GCC unroll 16
      for (int s = 0; s < S; ++s) {
        I bv = V::load(br[s] + bg + p);
        in_register(bv);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r][s] = V::dp(acc[r][s], av[r], bv);
      }
    }
    if constexpr (Rest) {
      I av[R];
      for (int r = 0; r < R; ++r) av[r] = V::load_first(ag + r * lda + kv, rest);
      for (int s = 0; s < S; ++s) {
        const I bv = V::load_first(br[s] + bg + kv, rest);
        for (int r = 0; r < R; ++r) acc[r][s] = V::dp(acc[r][s], av[r], bv);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) {
      float& out = c[r * ldc + s];
      const float sum = V::sum(acc[r][s]);
      out = beta == 0.0f ? sum : sum + beta * out;
    }
}

using NtTile = void (*)(int64_t, const uint16_t*, int64_t, const uint16_t*, const int64_t*, int64_t, int64_t, float*,
                        int64_t, float, int64_t, int64_t, int64_t);
template <class V, bool Rest, int R, int... S>
constexpr std::array<NtTile, sizeof...(S)> nt_row(std::integer_sequence<int, S...>) {
  return {&nt_tile<V, R, S + 1, Rest>...};
}
template <class V, bool Rest, int... R>
constexpr auto nt_tiles(std::integer_sequence<int, R...>) {
  return std::array<std::array<NtTile, V::kTS>, sizeof...(R)>{
      nt_row<V, Rest, R + 1>(std::make_integer_sequence<int, V::kTS>{})...};
}

template <class V>
void nt(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, const int64_t* off,
        int64_t ldb, float beta, float* c, int64_t ldc, int64_t segments, int64_t a_step, int64_t b_step) {
  static constexpr auto whole = nt_tiles<V, false>(std::make_integer_sequence<int, V::kTR>{});
  static constexpr auto part = nt_tiles<V, true>(std::make_integer_sequence<int, V::kTR>{});
  const auto& tiles = k % (2 * V::kW) ? part : whole;
  for (int64_t j = 0; j < n; j += V::kTS) {
    const int64_t s = std::min<int64_t>(V::kTS, n - j);
    for (int64_t i = 0; i < m; i += V::kTR) {
      const int64_t r = std::min<int64_t>(V::kTR, m - i);
      tiles[static_cast<size_t>(r - 1)][static_cast<size_t>(s - 1)](
          k, a + i * lda, lda, b, off, ldb, j, c + i * ldc + j, ldc, beta, segments, a_step, b_step);
    }
  }
}

bool wide() { return kernel_width() == 512; }

}  // namespace

bool bf16_kernels() {
  static const bool ok =
      __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return ok;
}

void to_bf16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(out + i, mask, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

void to_bf16_pairs(const float* a, const float* b, int64_t n, uint32_t* out) {
  // (the zero-masked forms: GCC 12's unmasked ones warn of an uninitialized operand)
  const auto pair = [](__m512 lo, __m512 hi) {
    const __m512i l = _mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(lo));
    const __m512i h = _mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(hi));
    return _mm512_or_si512(l, _mm512_maskz_slli_epi32(0xffff, h, 16));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_si512(out + i, pair(_mm512_loadu_ps(a + i), b ? _mm512_loadu_ps(b + i) : _mm512_setzero_ps()));
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_epi32(
        out + i, mask,
        pair(_mm512_maskz_loadu_ps(mask, a + i), b ? _mm512_maskz_loadu_ps(mask, b + i) : _mm512_setzero_ps()));
  }
}

void bf16_nn(int64_t m, int64_t n, int64_t k2, const uint32_t* a, int64_t lda, const uint32_t* b, const int64_t* off,
             int64_t ldb, float* c, int64_t ldc, int64_t group, int64_t group_stride) {
  if (wide()) return nn<B512>(m, n, k2, a, lda, b, off, ldb, c, ldc, group, group_stride);
  nn<B256>(m, n, k2, a, lda, b, off, ldb, c, ldc, group, group_stride);
}

void bf16_nt(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, const int64_t* off,
             float beta, float* c, int64_t ldc, int64_t segments, int64_t a_step, int64_t b_step, int64_t ldb) {
  if (wide()) return nt<B512>(m, n, k, a, lda, b, off, ldb, beta, c, ldc, segments, a_step, b_step);
  nt<B256>(m, n, k, a, lda, b, off, ldb, beta, c, ldc, segments, a_step, b_step);
}

#else  // no bf16 products in this build

bool bf16_kernels() { return false; }
namespace {
[[noreturn]] void absent() { throw std::logic_error("bf16 products: not in this build (no AVX512_BF16)"); }
}  // namespace
void to_bf16(const float*, int64_t, uint16_t*) { absent(); }
void to_bf16_pairs(const float*, const float*, int64_t, uint32_t*) { absent(); }
void bf16_nn(int64_t, int64_t, int64_t, const uint32_t*, int64_t, const uint32_t*, const int64_t*, int64_t, float*,
             int64_t, int64_t, int64_t) {
  absent();
}
void bf16_nt(int64_t, int64_t, int64_t, const uint16_t*, int64_t, const uint16_t*, const int64_t*, float, float*,
             int64_t, int64_t, int64_t, int64_t, int64_t) {
  absent();
}

#endif

float from_bf16(uint16_t v) {
  const uint32_t bits = uint32_t{v} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace hubel::layers
