// The register-blocked kernels of gemm_kernels.hpp, written with vector intrinsics: a
// 256-bit set (AVX2 with FMA) and, where the build targets AVX-512, a 512-bit set. Which
// one runs is chosen once per process (kernel_width()). Without AVX2 they are absent and
// gemm() uses the BLAS for everything.
#include "layers/gemm_kernels.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <stdexcept>  // std::invalid_argument
#include <string>
#include <utility>

#include "framework/error.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <cpuid.h>
#include <immintrin.h>
#define HUBEL_GEMM_KERNELS 1
#endif

namespace hubel::layers {

#ifdef HUBEL_GEMM_KERNELS
namespace {

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
// Rows of B per pass of the nn kernel: the [kKc, kNR] panel (32 KiB) stays near the core
// while every row tile of A passes over it (a convolution's products take one pass).
template <class V>
constexpr int64_t kPass = 8192 / kPanel<V>;
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
template <class V, int R, bool Off, int Mode>
void nn_tile(int64_t k, const ATile& at, const Rows& b, int64_t p0, int64_t j, float* c, int64_t ldc, float alpha,
             float beta) {
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

using NnTile = void (*)(int64_t, const ATile&, const Rows&, int64_t, int64_t, float*, int64_t, float, float);

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
             const int64_t* map, const Rows& b, float beta, float* c, int64_t ldc) {
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

// Where the segments of an nt product lie.
struct Segments {
  int64_t count, a, b;
};

// C[R, S] = alpha * sum over segments of A[R, k] B[S, k]^T + beta * C (B's rows from j
// on): R x S dot products in vector lanes, each summed by V::sum's fixed tree, then the last
// k % kW terms (one segment only) in order.
template <class V, int R, int S, bool Off>
void nt_tile(int64_t k, const float* a, int64_t lda, const Rows& b, int64_t j, float* c, int64_t ldc, float alpha,
             float beta, Segments seg) {
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

using NtTile = void (*)(int64_t, const float*, int64_t, const Rows&, int64_t, float*, int64_t, float, float, Segments);

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
  static void nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const Rows& b,
                 float beta, float* c, int64_t ldc) {
    const auto none = [](int64_t) { return static_cast<const float*>(nullptr); };
    gemm_nn<V, kStrided>(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, none, nullptr, b, beta, c, ldc);
  }
  static void nn_rows(int64_t m, int64_t n, int64_t k, float alpha, const Rows& a, const Rows& b, float beta, float* c,
                      int64_t ldc, const int64_t* a_columns) {
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
  static void nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const Rows& b, float beta,
                 float* c, int64_t ldc, Segments seg) {
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

const Kernels* kernels_of(int bits) {
  if (bits == 256) return &kKernels<V256>;
#if defined(__AVX512F__)
  if (bits == 512 && __builtin_cpu_supports("avx512f")) return &kKernels<V512>;
#endif
  return nullptr;
}

// Whether the CPU runs 512-bit operations whole. AMD's cores before Zen 5 (family 19h,
// Zen 4) split each into two 256-bit halves; there the 256-bit kernels, with their
// smaller tiles and fewer columns per panel, are faster (bench_conv on a Zen 4: LeNet's
// layers and the CIFAR net's first layer about a fifth, its second the same). Intel's
// AVX-512 cores and Zen 5 (family 1Ah) run them whole, at twice the 256-bit rate.
bool runs_512_whole() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return true;
  const bool amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;  // "AuthenticAMD"
  if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return true;
  const unsigned base = (eax >> 8) & 0xf, family = base == 0xf ? base + ((eax >> 20) & 0xff) : base;
  return family >= 0x1a;
}

// The process's choice: HUBEL_VECTOR_WIDTH, else the widest this CPU runs whole.
const Kernels* chosen() {
  const char* env = std::getenv("HUBEL_VECTOR_WIDTH");
  if (env && *env) {
    const std::string v = env;
    if (v != "256" && v != "512")
      throw ConfigError("HUBEL_VECTOR_WIDTH=" + v +
                        ": expected 256 or 512 (or unset it, and hubel chooses for this CPU)");
    if (const Kernels* k = kernels_of(std::stoi(v))) return k;
    throw ConfigError("HUBEL_VECTOR_WIDTH=512: this build or this CPU has no AVX-512 kernels; set 256 or unset it");
  }
  const Kernels* wide = runs_512_whole() ? kernels_of(512) : nullptr;
  return wide ? wide : kernels_of(256);
}

std::atomic<const Kernels*> g_selected{nullptr};  // use_kernel_width's choice

const Kernels& active() {
  if (const Kernels* k = g_selected.load(std::memory_order_acquire)) return *k;
  static const Kernels* const k = chosen();
  return *k;
}

}  // namespace

int kernel_width() { return active().bits(); }

std::vector<int> kernel_widths() {
  std::vector<int> out;
  for (const int bits : {256, 512})
    if (kernels_of(bits)) out.push_back(bits);
  return out;
}

void use_kernel_width(int bits) {
  const Kernels* k = kernels_of(bits);
  if (!k)
    throw std::invalid_argument("use_kernel_width: no " + std::to_string(bits) +
                                "-bit kernels in this build on this CPU");
  g_selected.store(k, std::memory_order_release);
}

int64_t kernel_panel() { return active().panel(); }

bool kernel_takes(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k) {
  const Kernels& kn = active();
  if (!trans_b) return n >= 4 * kn.panel() && (m <= 32 || k <= 32);  // a small side against a wide B
  if (trans_a) return false;
  return k >= 4 * kn.lanes && (m <= 32 || n <= 32);  // long dot products with a small side
}

void kernel_gemm_nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, Rows b,
                    float beta, float* c, int64_t ldc) {
  active().nn(trans_a, m, n, k, alpha, a, lda, b, beta, c, ldc);
}

void kernel_gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, Rows a, Rows b, float beta, float* c, int64_t ldc,
                    const int64_t* a_columns) {
  active().nn_rows(m, n, k, alpha, a, b, beta, c, ldc, a_columns);
}

void kernel_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, Rows b, float beta,
                    float* c, int64_t ldc, int64_t segs, int64_t a_seg, int64_t b_seg) {
  active().nt(m, n, k, alpha, a, lda, b, beta, c, ldc, Segments{std::max<int64_t>(segs, 1), a_seg, b_seg});
}

#else  // no vector kernels in this build

int kernel_width() { return 0; }
std::vector<int> kernel_widths() { return {}; }
void use_kernel_width(int bits) {
  throw std::invalid_argument("use_kernel_width: no " + std::to_string(bits) + "-bit kernels in this build (no AVX2)");
}
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
        sum +=
            double{trans_a ? a[p * lda + i] : a[i * lda + p]} *
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
