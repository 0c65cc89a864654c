// Register-blocked products for the shapes a BLAS runs far below its peak: one side of
// the product is small (a convolution with few channels: 6 or 16 filters, a 5x5 window on
// 6 channels), the other long (the columns of a block of samples). OpenBLAS packs both
// operands for every call and its kernels are tuned for large squares; here the small
// operand is read in place (it stays in the L1 cache) and the long one streams once per
// tile row, with no packing at all.
//
// Two forms, both row-major with the contract of gemm() (C = alpha op(A) op(B) + beta C):
//   nn:  op(B) = B, a wide [k, n] matrix read in panels of kernel_panel() columns; op(A)
//        is A or A^T (read by scalar broadcasts, so either costs the same).
//   nt:  C[i][j] = sum_p A[i][p] B[j][p], long k: dot products kept in vector lanes and
//        summed in a fixed order at the end.
// The tiles themselves are in kernel_tiles.hpp (internal).
// Each result depends only on the shapes and the data, never on threads or alignment.
#pragma once

#include <cstdint>
#include <vector>

namespace hubel::layers {

// The vector width, in bits, of the kernels this process uses: 256 (AVX2 with FMA) or 512
// (AVX-512, where the build targets it), 0 when the build has neither. Chosen once, at
// first use: 512 where the CPU runs 512-bit operations whole, 256 elsewhere, including
// AMD's Zen 4, which splits them in two (there the 256-bit tiles are faster). The
// environment variable HUBEL_VECTOR_WIDTH=256 or 512 overrides the choice. Results
// depend on the width (tile sizes and dot-product lanes differ), never on threads.
int kernel_width();
// The widths this build can run on this CPU (tests and benchmarks run each).
std::vector<int> kernel_widths();
// Uses the kernels of that width from now on (one of kernel_widths(); std::invalid_argument
// otherwise). A convolution lays out its buffers for the panel when it is built: build
// layers after this call, and do not run those built before it.
void use_kernel_width(int bits);

// Columns per panel of the nn kernel (two vectors: 16 floats at 256 bits, 32 at 512),
// 0 when this build has no vector kernels (the BLAS then does everything). Callers that
// control their leading dimension round n up to it, so no column is left to a tail.
int64_t kernel_panel();

// Whether gemm() hands this product to the kernels below (a rule on the shapes alone).
bool kernel_takes(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k);

// C[m, n] = alpha op(A) B + beta C, row-major as gemm(). n is a multiple of
// kernel_panel() (callers give the rest to the BLAS).
void kernel_gemm_nn(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// C[m, n] = alpha A B^T + beta C: long dot products, any m, n, k.
void kernel_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc);

// (The convolution's products over rows read in place from its padded image, built on the
// same kernels, are in conv_products.hpp.)

}  // namespace hubel::layers
