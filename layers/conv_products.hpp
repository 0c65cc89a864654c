// The matrix products of a convolution whose column matrix is never built (implicit
// im2col): row t of the column matrix (a tap: an input channel and a kernel offset) is the
// zero-padded image shifted by taps[t], read in place. They run on the register-blocked
// kernels of gemm_kernels.hpp (their tiles read rows wherever they lie), so callers round
// their column counts to whole kernel_panel()s as gemm_kernels.hpp says.
#pragma once

#include <cstdint>

namespace hubel::layers {

// The column matrix of one sample: row t at image + taps[t]. Column j (an output position)
// is at offset j of each row, or, with run > 0, at (j / run) * run_stride + j % run: the
// positions of each output row are read from their own row of the padded image (run: the
// output row width, a multiple of kernel_panel(); run_stride: the padded image's width).
struct ImageColumns {
  const float* image;
  const int64_t* taps;
  int64_t run = 0, run_stride = 0;
};

// Forward: Y[K, n] = W[K, taps] cols[taps, n]; n a multiple of kernel_panel().
void weights_times_columns(int64_t K, int64_t n, int64_t taps, const float* w, int64_t ldw, const ImageColumns& cols,
                           float* y, int64_t ldy);

// Forward by output positions: Y^T[P, K] = cols^T W^T, where position q's column is read
// at image + position_at[q] + taps[t]; W^T is [taps, K] (row stride ldwt). K a multiple of
// kernel_panel().
void columns_t_times_weights_t(int64_t P, int64_t K, int64_t taps, const float* image, const int64_t* position_at,
                               const int64_t* tap_offsets, const float* wt, int64_t ldwt, float* yt, int64_t ldyt);

// Weight gradient, transposed: dW^T[taps, K] = cols[taps, n] dY^T[n, K] + beta dW^T, where
// cols(t, q) = image[taps[t] + (position_at ? position_at[q] : q)]. K a multiple of
// kernel_panel().
void columns_times_grad_t(int64_t taps, int64_t K, int64_t n, const float* image, const int64_t* tap_offsets,
                          const int64_t* position_at, const float* dyt, int64_t lddyt, float beta, float* dwt,
                          int64_t lddwt);

// Weight gradient: dW[K, taps] = sum over `segments` s of dY[:, s * dy_step + (0..n)]
// cols[:, s * image_step + (0..n)]^T + beta dW, one dot product per weight in pieces (a
// piece per output row, or per sample each in its own image). With segments > 1, n is a
// multiple of kernel_panel() / 2.
void grad_times_columns_t(int64_t K, int64_t taps, int64_t n, const float* dy, int64_t lddy, const float* image,
                          const int64_t* tap_offsets, float beta, float* dw, int64_t lddw, int64_t segments = 1,
                          int64_t dy_step = 0, int64_t image_step = 0);

}  // namespace hubel::layers
