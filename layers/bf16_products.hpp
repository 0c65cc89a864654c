// Products with bf16 operands and fp32 sums, for the convolution's bf16 plan
// (train.precision: bf16). They run on AVX512_BF16's dot product (vdpbf16ps: each 32-bit
// lane adds a[2i] b[2i] + a[2i+1] b[2i+1] to an fp32 sum), twice the fp32 FMA rate.
//
// A bf16 value is the upper half of a float's bits, rounded to nearest even (the CPU's
// conversion; it treats subnormal floats as zero), stored as uint16_t. A pair is a uint32_t
// word holding two of them, the first in its low half: the products of the nn form run
// over pairs of the sum's index (two channels, two filters), those of the nt form over
// consecutive elements.
//
// Like gemm_kernels.hpp, each result depends only on the shapes and the data, never on
// threads; the width (256 or 512 bits) follows kernel_width(), and n of the nn form is a
// multiple of kernel_panel().
#pragma once

#include <cstdint>

namespace hubel::layers {

// Whether this build and this CPU have the bf16 products (AVX512_BF16 with AVX512VL).
bool bf16_kernels();

// out[i] = bf16(x[i]).
void to_bf16(const float* x, int64_t n, uint16_t* out);
// out[i] = the pair (bf16(a[i]), bf16(b[i])), or (bf16(a[i]), 0) when b is null.
void to_bf16_pairs(const float* a, const float* b, int64_t n, uint32_t* out);
// The float a bf16 value stands for.
float from_bf16(uint16_t v);

// nn: C[m, n] = A B, summed over k2 pairs: A(i, p) = a[i * lda + p], B's row p at
// b + off[p] (or b + p * ldb when off is null), in words. C is written, not read. With
// group > 0 (a multiple of kernel_panel()), B's columns come in groups of that many whose
// starts lie group_stride apart: column j is read at (j / group) * group_stride + j % group.
void bf16_nn(int64_t m, int64_t n, int64_t k2, const uint32_t* a, int64_t lda, const uint32_t* b, const int64_t* off,
             int64_t ldb, float* c, int64_t ldc, int64_t group = 0, int64_t group_stride = 0);

// nt: C[i][j] = beta C[i][j] + sum over segments s of sum_{p < k} A[i][s * a_step + p] *
// B_j[s * b_step + p], where A's row i is at a + i * lda and B_j at b + off[j] (or at
// b + j * ldb when off is null); long dot products kept in vector lanes and summed in a
// fixed order. beta is 0 or 1.
void bf16_nt(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, const int64_t* off,
             float beta, float* c, int64_t ldc, int64_t segments = 1, int64_t a_step = 0, int64_t b_step = 0,
             int64_t ldb = 0);

}  // namespace hubel::layers
