// The register-blocked kernels of gemm_kernels.hpp, written with the vector intrinsics
// of the build's target (AVX-512 or AVX2 with FMA; -march=native picks). Without either
// they are absent and gemm() uses the BLAS for everything.
#include "layers/gemm_kernels.hpp"

#include <algorithm>
#include <array>
#include <utility>


#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define HUBEL_GEMM_KERNELS 1
#endif

namespace hubel::layers {

#ifdef HUBEL_GEMM_KERNELS
namespace {

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kW = 16;
// nn tile: kMR rows x 2 vectors (16 accumulators); nt tile: kTR x kTS dot products.
constexpr int kMR = 8, kTR = 4, kTS = 4;
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec vset1(float x) { return _mm512_set1_ps(x); }
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline float vsum(Vec v) {  // a fixed tree: halves, then the AVX2 tree below
  const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));  // AVX512F only
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), upper);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
using Vec = __m256;
constexpr int kW = 8;
// nn: 6 x 16 (12 accumulators); nt: 2 x 5 (10): with 16 registers, enough independent
// accumulators to cover the FMA latency without spilling.
constexpr int kMR = 6, kTR = 2, kTS = 5;
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec vset1(float x) { return _mm256_set1_ps(x); }
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline float vsum(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

constexpr int kNR = 2 * kW;

// Keeps v in a register: without it GCC folds the load into every FMA that uses v, and a
// vector used R times is loaded R times (the nt tile then waits on loads, not FMAs).
inline void in_register(Vec& v) { asm("" : "+x"(v)); }
// Rows of B per pass of the nn kernel: the [kKc, kNR] panel (32 KiB) stays near the core
// while every row tile of A passes over it (a convolution's products take one pass).
constexpr int64_t kKc = 8192 / kNR;

// Row r of a Rows map.
template <bool Off>
inline const float* row(const Rows& m, int64_t r) {
  return Off ? m.base + m.off[r] : m.base + r * m.ld;
}

// A of the nn kernel: strided, A(i, p) = a[i * rs + p * cs] (A or A^T), or by rows,
// A(i, p) = row[i][p] (row pointers from a Rows map).
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
template <int R, bool Off, int Mode>
void nn_tile(int64_t k, const ATile& at, const Rows& b, int64_t p0, int64_t j, float* c, int64_t ldc, float alpha,
             float beta) {
  Vec lo[R], hi[R];
  const float* ar[R];
  for (int r = 0; r < R; ++r) {
    lo[r] = hi[r] = vzero();
    if constexpr (Mode != kStrided) ar[r] = at.row[r];
  }
  const int64_t ars = at.rs, acs = at.cs;
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = row<Off>(b, p0 + p) + j;
    const Vec b0 = vload(bp), b1 = vload(bp + kW);
    const float* ap = at.a + p * acs;
    const int64_t mp = Mode == kByRowMapped ? at.map[p] : p;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Vec av = vset1(Mode == kStrided ? ap[r * ars] : ar[r][mp]);
      lo[r] = vfma(av, b0, lo[r]);
      hi[r] = vfma(av, b1, hi[r]);
    }
  }
  const Vec va = vset1(alpha), vb = vset1(beta);
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (beta == 0.0f) {  // C is not read: it may hold anything
      vstore(cr, vmul(va, lo[r]));
      vstore(cr + kW, vmul(va, hi[r]));
    } else {
      vstore(cr, vfma(va, lo[r], vmul(vb, vload(cr))));
      vstore(cr + kW, vfma(va, hi[r], vmul(vb, vload(cr + kW))));
    }
  }
}

using NnTile = void (*)(int64_t, const ATile&, const Rows&, int64_t, int64_t, float*, int64_t, float, float);

template <bool Off, int Mode, int... R>
constexpr auto nn_tiles(std::integer_sequence<int, R...>) {
  return std::array<NnTile, sizeof...(R)>{&nn_tile<R + 1, Off, Mode>...};
}
template <int Mode>
constexpr std::array<std::array<NnTile, kMR>, 2> kNnTiles{
    nn_tiles<false, Mode>(std::make_integer_sequence<int, kMR>{}),
    nn_tiles<true, Mode>(std::make_integer_sequence<int, kMR>{})};

// The nn driver. Strided A: a, ars, acs; by rows: arow(i) gives row i's start.
template <int Mode, class ARow>
void gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t ars, int64_t acs, ARow arow,
             const int64_t* map, const Rows& b, float beta, float* c, int64_t ldc) {
  const auto& tiles = kNnTiles<Mode>[b.off ? 1 : 0];
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

// Where the segments of an nt product lie.
struct Segments {
  int64_t count, a, b;
};

// C[R, S] = alpha * sum over segments of A[R, k] B[S, k]^T + beta * C (B's rows from j
// on): R x S dot products in vector lanes, each summed by vsum's fixed tree, then the last
// k % kW terms (one segment only) in order.
template <int R, int S, bool Off>
void nt_tile(int64_t k, const float* a, int64_t lda, const Rows& b, int64_t j, float* c, int64_t ldc, float alpha,
             float beta, Segments seg) {
  Vec acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = vzero();
  const float* brow[S];
  for (int s = 0; s < S; ++s) brow[s] = row<Off>(b, j + s);
  const int64_t kv = k - k % kW;
  for (int64_t g = 0; g < seg.count; ++g) {
    const float* ag = a + g * seg.a;
    const int64_t bg = g * seg.b;
    for (int64_t p = 0; p < kv; p += kW) {
      Vec av[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) av[r] = vload(ag + r * lda + p);
#pragma GCC unroll 16
      for (int s = 0; s < S; ++s) {
        Vec bv = vload(brow[s] + bg + p);
        in_register(bv);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r][s] = vfma(av[r], bv, acc[r][s]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) {
      float sum = vsum(acc[r][s]);
      for (int64_t q = kv; q < k; ++q) sum += a[r * lda + q] * brow[s][q];
      float& out = c[r * ldc + s];
      out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out;
    }
}

using NtTile = void (*)(int64_t, const float*, int64_t, const Rows&, int64_t, float*, int64_t, float, float, Segments);

template <int R, bool Off, int... S>
constexpr std::array<NtTile, sizeof...(S)> nt_row(std::integer_sequence<int, S...>) {
  return {&nt_tile<R, S + 1, Off>...};
}
template <bool Off, int... R>
constexpr auto nt_tiles(std::integer_sequence<int, R...>) {
  return std::array<std::array<NtTile, kTS>, sizeof...(R)>{
      nt_row<R + 1, Off>(std::make_integer_sequence<int, kTS>{})...};
}
constexpr std::array<std::array<std::array<NtTile, kTS>, kTR>, 2> kNtTiles{
    nt_tiles<false>(std::make_integer_sequence<int, kTR>{}), nt_tiles<true>(std::make_integer_sequence<int, kTR>{})};

}  // namespace

int64_t kernel_panel() { return kNR; }

bool kernel_takes(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k) {
  if (!trans_b) return n >= 4 * kNR && (m <= 32 || k <= 32);  // a small side against a wide B
  if (trans_a) return false;
  return k >= 4 * kW && (m <= 32 || n <= 32);  // long dot products with a small side
}

void kernel_gemm_nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, Rows b,
                    float beta, float* c, int64_t ldc) {
  const auto none = [](int64_t) { return static_cast<const float*>(nullptr); };
  gemm_nn<kStrided>(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, none, nullptr, b, beta, c, ldc);
}

void kernel_gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, Rows a, Rows b, float beta, float* c, int64_t ldc,
                    const int64_t* a_columns) {
  const auto none = [](int64_t) { return static_cast<const float*>(nullptr); };
  const auto by_offset = [&](int64_t i) { return a.base + a.off[i]; };
  const auto by_ld = [&](int64_t i) { return a.base + i * a.ld; };
  if (a_columns && a.off) gemm_nn<kByRowMapped>(m, n, k, alpha, a.base, 0, 1, by_offset, a_columns, b, beta, c, ldc);
  else if (a_columns) gemm_nn<kByRowMapped>(m, n, k, alpha, a.base, 0, 1, by_ld, a_columns, b, beta, c, ldc);
  else if (a.off) gemm_nn<kByRow>(m, n, k, alpha, a.base, 0, 1, by_offset, nullptr, b, beta, c, ldc);
  else gemm_nn<kStrided>(m, n, k, alpha, a.base, a.ld, 1, none, nullptr, b, beta, c, ldc);
}

void kernel_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, Rows b, float beta,
                    float* c, int64_t ldc, int64_t segs, int64_t a_seg, int64_t b_seg) {
  const Segments seg{std::max<int64_t>(segs, 1), a_seg, b_seg};
  const auto& tiles = kNtTiles[b.off ? 1 : 0];
  for (int64_t j = 0; j < n; j += kTS) {
    const int64_t s = std::min<int64_t>(kTS, n - j);
    for (int64_t i = 0; i < m; i += kTR) {
      const int64_t r = std::min<int64_t>(kTR, m - i);
      tiles[static_cast<size_t>(r - 1)][static_cast<size_t>(s - 1)](k, a + i * lda, lda, b, j, c + i * ldc + j, ldc, alpha,
                                                                    beta, seg);
    }
  }
}

#else  // no vector kernels in this build

int64_t kernel_panel() { return 0; }
bool kernel_takes(bool, bool, int64_t, int64_t, int64_t) { return false; }
// Never chosen by gemm() here (kernel_panel() is 0, so the convolution does not call
// them either); correct, and slow, if called all the same.
void kernel_gemm_nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, Rows b,
                    float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += double{trans_a ? a[p * lda + i] : a[i * lda + p]} *
               (b.off ? b.base + b.off[p] : b.base + p * b.ld)[b.group ? j / b.group * b.group_stride + j % b.group : j];
      c[i * ldc + j] = static_cast<float>(alpha * sum + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
}
void kernel_gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, Rows a, Rows b, float beta, float* c, int64_t ldc,
                    const int64_t* a_columns) {
  for (int64_t i = 0; i < m; ++i) {
    const float* ai = a.off ? a.base + a.off[i] : a.base + i * a.ld;
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += double{ai[a_columns ? a_columns[p] : p]} * (b.off ? b.base + b.off[p] : b.base + p * b.ld)[j];
      c[i * ldc + j] = static_cast<float>(alpha * sum + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
  }
}
void kernel_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, Rows b, float beta,
                    float* c, int64_t ldc, int64_t segs, int64_t a_seg, int64_t b_seg) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float* bj = b.off ? b.base + b.off[j] : b.base + j * b.ld;
      double sum = 0;
      for (int64_t g = 0; g < std::max<int64_t>(segs, 1); ++g)
        for (int64_t p = 0; p < k; ++p) sum += double{a[i * lda + g * a_seg + p]} * bj[g * b_seg + p];
      c[i * ldc + j] = static_cast<float>(alpha * sum + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
}

#endif

}  // namespace hubel::layers
