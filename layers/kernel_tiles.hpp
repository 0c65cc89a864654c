// The register-blocked product kernels' building blocks, shared by the plain products of
// gemm_kernels.hpp (gemm_kernels.cpp) and the convolution's implicit-im2col products
// (conv_products.cpp): vector operations of each width, the nn and nt tiles and their
// drivers, over IndirectRows (a matrix whose rows may lie anywhere: the indirect GEMM of
// XNNPACK). Internal to layers/; include it only from those two files.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#if defined(__AVX2__) && defined(__FMA__)
#include <cpuid.h>
#include <immintrin.h>
#define HUBEL_GEMM_KERNELS 1
#endif

namespace hubel::layers::kernels {

// The rows of a matrix a kernel reads: row r starts at base + off[r], or at base + r * ld
// when off is null. For B of the nn kernel, when group > 0 (a multiple of the panel), the
// columns come in groups of that many whose starts lie group_stride apart: column j is
// read at (j / group) * group_stride + j % group.
struct IndirectRows {
  const float* base;
  int64_t ld = 0;
  const int64_t* off = nullptr;
  int64_t group = 0, group_stride = 0;
};

// Where the segments of an nt product lie: C = sum over count segments of A's columns
// [s * a, s * a + k) against B's [s * b, s * b + k).
struct Segments {
  int64_t count, a, b;
};

#ifdef HUBEL_GEMM_KERNELS

// The vector operations of one width, and its tile sizes.
struct V256 {
  using Vec = __m256;
  static constexpr int kW = 8;
  // nn: 6 x 16 (12 accumulators); nt: 2 x 5 (10): with 16 registers, enough independent
  // accumulators to cover the FMA latency without spilling.
  static constexpr int kMR = 6, kTR = 2, kTS = 5;
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static float sum(__m256 v) {  // a fixed tree
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#if defined(__AVX512F__)
struct V512 {
  using Vec = __m512;
  static constexpr int kW = 16;
  // nn tile: kMR rows x 2 vectors (16 accumulators); nt tile: kTR x kTS dot products.
  static constexpr int kMR = 8, kTR = 4, kTS = 4;
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static float sum(Vec v) {  // halves, then the 256-bit tree
    // through memory: GCC 12's intrinsics for the halves warn of an uninitialized operand
    alignas(64) float f[16];
    _mm512_store_ps(f, v);
    return V256::sum(_mm256_add_ps(_mm256_load_ps(f), _mm256_load_ps(f + 8)));
  }
};
#endif

// Keeps v in a register: without it GCC folds the load into every FMA that uses v, and a
// vector used R times is loaded R times (the nt tile then waits on loads, not FMAs).
template <class Vec>
inline void in_register(Vec& v) {
  asm("" : "+x"(v));
}
// Columns of the nn kernel's panel: two vectors.
template <class V>
constexpr int kPanel = 2 * V::kW;
// IndirectRows of B per pass of the nn kernel: the [kKc, kNR] panel (32 KiB) stays near the core
// while every row tile of A passes over it (a convolution's products take one pass).
template <class V>
constexpr int64_t kPass = 8192 / kPanel<V>;
// Row r of an IndirectRows map.
template <bool Off>
inline const float* row(const IndirectRows& m, int64_t r) {
  return Off ? m.base + m.off[r] : m.base + r * m.ld;
}

// A of the nn kernel: strided, A(i, p) = a[i * rs + p * cs] (A or A^T), or by rows,
// A(i, p) = row[i][p] (row pointers from a IndirectRows map).
struct ATile {
  const float* a;
  int64_t rs, cs;
  const float* const* row;
  const int64_t* map;  // by rows with a column map: A(i, p) = row[i][map[p]]
};
enum AMode { kStrided, kByRow, kByRowMapped };

// C[R, kNR] = alpha * sum_p A(r, p) B[p, :] + beta * C for the tile's A; B's rows from p0
// on, shifted by j columns. Strided A keeps GCC's addressing of the broadcasts simple (a
// pointer array costs A^T products a fifth of their speed).
template <class V, int R, bool Off, int Mode>
void nn_tile(int64_t k, const ATile& at, const IndirectRows& b, int64_t p0, int64_t j, float* c, int64_t ldc,
             float alpha, float beta) {
  using Vec = typename V::Vec;
  constexpr int kW = V::kW;
  Vec lo[R], hi[R];
  const float* ar[R];
  for (int r = 0; r < R; ++r) {
    lo[r] = hi[r] = V::zero();
    if constexpr (Mode != kStrided) ar[r] = at.row[r];
  }
  const int64_t ars = at.rs, acs = at.cs;
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = row<Off>(b, p0 + p) + j;
    const Vec b0 = V::load(bp), b1 = V::load(bp + kW);
    const float* ap = at.a + p * acs;
    const int64_t mp = Mode == kByRowMapped ? at.map[p] : p;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Vec av = V::set1(Mode == kStrided ? ap[r * ars] : ar[r][mp]);
      lo[r] = V::fma(av, b0, lo[r]);
      hi[r] = V::fma(av, b1, hi[r]);
    }
  }
  const Vec va = V::set1(alpha), vb = V::set1(beta);
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (beta == 0.0f) {  // C is not read: it may hold anything
      V::store(cr, V::mul(va, lo[r]));
      V::store(cr + kW, V::mul(va, hi[r]));
    } else {
      V::store(cr, V::fma(va, lo[r], V::mul(vb, V::load(cr))));
      V::store(cr + kW, V::fma(va, hi[r], V::mul(vb, V::load(cr + kW))));
    }
  }
}

using NnTile = void (*)(int64_t, const ATile&, const IndirectRows&, int64_t, int64_t, float*, int64_t, float, float);

template <class V, bool Off, int Mode, int... R>
constexpr auto nn_tiles(std::integer_sequence<int, R...>) {
  return std::array<NnTile, sizeof...(R)>{&nn_tile<V, R + 1, Off, Mode>...};
}
template <class V, int Mode>
constexpr std::array<std::array<NnTile, V::kMR>, 2> kNnTiles{
    nn_tiles<V, false, Mode>(std::make_integer_sequence<int, V::kMR>{}),
    nn_tiles<V, true, Mode>(std::make_integer_sequence<int, V::kMR>{})};

// The nn driver. Strided A: a, ars, acs; by rows: arow(i) gives row i's start.
template <class V, int Mode, class ARow>
void gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t ars, int64_t acs, ARow arow,
             const int64_t* map, const IndirectRows& b, float beta, float* c, int64_t ldc) {
  constexpr int kMR = V::kMR;
  constexpr int64_t kNR = kPanel<V>, kKc = kPass<V>;
  const auto& tiles = kNnTiles<V, Mode>[b.off ? 1 : 0];
  const float* rows[kMR];
  for (int64_t p0 = 0; p0 < k; p0 += kKc) {
    const int64_t kc = std::min(kKc, k - p0);
    const float bt = p0 == 0 ? beta : 1.0f;
    for (int64_t j = 0; j + kNR <= n; j += kNR)
      for (int64_t i = 0; i < m; i += kMR) {
        const int64_t r = std::min<int64_t>(kMR, m - i);
        if constexpr (Mode == kByRow)
          for (int64_t q = 0; q < r; ++q) rows[q] = arow(i + q) + p0;
        if constexpr (Mode == kByRowMapped)
          for (int64_t q = 0; q < r; ++q) rows[q] = arow(i + q);
        const ATile at{a + i * ars + p0 * acs, ars, acs, rows, Mode == kByRowMapped ? map + p0 : nullptr};
        const int64_t bj = b.group ? j / b.group * b.group_stride + j % b.group : j;
        tiles[static_cast<size_t>(r - 1)](kc, at, b, p0, bj, c + i * ldc + j, ldc, alpha, bt);
      }
  }
}

// C[R, S] = alpha * sum over segments of A[R, k] B[S, k]^T + beta * C (B's rows from j
// on): R x S dot products in vector lanes, each summed by V::sum's fixed tree, then the last
// k % kW terms (one segment only) in order.
template <class V, int R, int S, bool Off>
void nt_tile(int64_t k, const float* a, int64_t lda, const IndirectRows& b, int64_t j, float* c, int64_t ldc,
             float alpha, float beta, Segments seg) {
  using Vec = typename V::Vec;
  constexpr int kW = V::kW;
  Vec acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = V::zero();
  const float* brow[S];
  for (int s = 0; s < S; ++s) brow[s] = row<Off>(b, j + s);
  const int64_t kv = k - k % kW;
  for (int64_t g = 0; g < seg.count; ++g) {
    const float* ag = a + g * seg.a;
    const int64_t bg = g * seg.b;
    for (int64_t p = 0; p < kv; p += kW) {
      Vec av[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) av[r] = V::load(ag + r * lda + p);
#pragma GCC unroll 16
      for (int s = 0; s < S; ++s) {
        Vec bv = V::load(brow[s] + bg + p);
        in_register(bv);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r][s] = V::fma(av[r], bv, acc[r][s]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) {
      float sum = V::sum(acc[r][s]);
      for (int64_t q = kv; q < k; ++q) sum += a[r * lda + q] * brow[s][q];
      float& out = c[r * ldc + s];
      out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out;
    }
}

using NtTile = void (*)(int64_t, const float*, int64_t, const IndirectRows&, int64_t, float*, int64_t, float, float,
                        Segments);

template <class V, int R, bool Off, int... S>
constexpr std::array<NtTile, sizeof...(S)> nt_row(std::integer_sequence<int, S...>) {
  return {&nt_tile<V, R, S + 1, Off>...};
}
template <class V, bool Off, int... R>
constexpr auto nt_tiles(std::integer_sequence<int, R...>) {
  return std::array<std::array<NtTile, V::kTS>, sizeof...(R)>{
      nt_row<V, R + 1, Off>(std::make_integer_sequence<int, V::kTS>{})...};
}
template <class V>
constexpr std::array<std::array<std::array<NtTile, V::kTS>, V::kTR>, 2> kNtTiles{
    nt_tiles<V, false>(std::make_integer_sequence<int, V::kTR>{}),
    nt_tiles<V, true>(std::make_integer_sequence<int, V::kTR>{})};

// The entry points of one width.
template <class V>
struct Impl {
  static void nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const IndirectRows& b, float beta, float* c, int64_t ldc) {
    const auto none = [](int64_t) { return static_cast<const float*>(nullptr); };
    gemm_nn<V, kStrided>(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, none, nullptr, b, beta, c, ldc);
  }
  static void nn_rows(int64_t m, int64_t n, int64_t k, float alpha, const IndirectRows& a, const IndirectRows& b,
                      float beta, float* c, int64_t ldc, const int64_t* a_columns) {
    const auto none = [](int64_t) { return static_cast<const float*>(nullptr); };
    const auto by_offset = [&](int64_t i) { return a.base + a.off[i]; };
    const auto by_ld = [&](int64_t i) { return a.base + i * a.ld; };
    if (a_columns && a.off)
      gemm_nn<V, kByRowMapped>(m, n, k, alpha, a.base, 0, 1, by_offset, a_columns, b, beta, c, ldc);
    else if (a_columns)
      gemm_nn<V, kByRowMapped>(m, n, k, alpha, a.base, 0, 1, by_ld, a_columns, b, beta, c, ldc);
    else if (a.off)
      gemm_nn<V, kByRow>(m, n, k, alpha, a.base, 0, 1, by_offset, nullptr, b, beta, c, ldc);
    else
      gemm_nn<V, kStrided>(m, n, k, alpha, a.base, a.ld, 1, none, nullptr, b, beta, c, ldc);
  }
  static void nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const IndirectRows& b,
                 float beta, float* c, int64_t ldc, Segments seg) {
    const auto& tiles = kNtTiles<V>[b.off ? 1 : 0];
    for (int64_t j = 0; j < n; j += V::kTS) {
      const int64_t s = std::min<int64_t>(V::kTS, n - j);
      for (int64_t i = 0; i < m; i += V::kTR) {
        const int64_t r = std::min<int64_t>(V::kTR, m - i);
        tiles[static_cast<size_t>(r - 1)][static_cast<size_t>(s - 1)](k, a + i * lda, lda, b, j, c + i * ldc + j, ldc,
                                                                      alpha, beta, seg);
      }
    }
  }
};

// One width's kernels, as gemm() and the convolution see them.
struct Kernels {
  int64_t lanes;  // floats per vector: the width is 32 bits a lane, the nn panel two vectors
  decltype(&Impl<V256>::nn) nn;
  decltype(&Impl<V256>::nn_rows) nn_rows;
  decltype(&Impl<V256>::nt) nt;
  int bits() const { return static_cast<int>(32 * lanes); }
  int64_t panel() const { return 2 * lanes; }
};
template <class V>
constexpr Kernels kKernels{V::kW, &Impl<V>::nn, &Impl<V>::nn_rows, &Impl<V>::nt};

// The kernels the process uses (gemm_kernels.cpp chooses them once).
const Kernels& active();
#endif

}  // namespace hubel::layers::kernels
