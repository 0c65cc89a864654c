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
#include "layers/kernel_tiles.hpp"

namespace hubel::layers {

#ifdef HUBEL_GEMM_KERNELS
namespace kernels {
namespace {

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

}  // namespace

const Kernels& active() {
  if (const Kernels* k = g_selected.load(std::memory_order_acquire)) return *k;
  static const Kernels* const k = chosen();
  return *k;
}

}  // namespace kernels

using kernels::active;
using kernels::IndirectRows;
using kernels::Kernels;
using kernels::kernels_of;

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
  kernels::g_selected.store(k, std::memory_order_release);
}

int64_t kernel_panel() { return active().panel(); }

bool kernel_takes(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k) {
  const Kernels& kn = active();
  if (!trans_b) return n >= 4 * kn.panel() && (m <= 32 || k <= 32);  // a small side against a wide B
  if (trans_a) return false;
  return k >= 4 * kn.lanes && (m <= 32 || n <= 32);  // long dot products with a small side
}

void kernel_gemm_nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  active().nn(trans_a, m, n, k, alpha, a, lda, IndirectRows{b, ldb}, beta, c, ldc);
}

void kernel_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc) {
  active().nt(m, n, k, alpha, a, lda, IndirectRows{b, ldb}, beta, c, ldc, kernels::Segments{1, 0, 0});
}

#else  // no vector kernels in this build

int kernel_width() { return 0; }
std::vector<int> kernel_widths() { return {}; }
void use_kernel_width(int bits) {
  throw std::invalid_argument("use_kernel_width: no " + std::to_string(bits) + "-bit kernels in this build (no AVX2)");
}
int64_t kernel_panel() { return 0; }
bool kernel_takes(bool, bool, int64_t, int64_t, int64_t) { return false; }
// Never chosen by gemm() here (kernel_panel() is 0); correct, and slow, if called all the same.
void kernel_gemm_nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += double{trans_a ? a[p * lda + i] : a[i * lda + p]} * b[p * ldb + j];
      c[i * ldc + j] = static_cast<float>(alpha * sum + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
}
void kernel_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += double{a[i * lda + p]} * b[j * ldb + p];
      c[i * ldc + j] = static_cast<float>(alpha * sum + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
}

#endif

}  // namespace hubel::layers
