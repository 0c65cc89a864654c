// The convolution's implicit-im2col products on the shared kernel tiles (kernel_tiles.hpp),
// and a plain loop for builds without vector kernels (never chosen there: kernel_panel() is 0).
#include "layers/conv_products.hpp"

#include "layers/kernel_tiles.hpp"

namespace hubel::layers {

#ifdef HUBEL_GEMM_KERNELS
using kernels::active;
using kernels::IndirectRows;

void weights_times_columns(int64_t K, int64_t n, int64_t taps, const float* w, int64_t ldw, const ImageColumns& cols,
                           float* y, int64_t ldy) {
  active().nn(false, K, n, taps, 1.0f, w, ldw, IndirectRows{cols.image, 0, cols.taps, cols.run, cols.run_stride}, 0.0f,
              y, ldy);
}

void columns_t_times_weights_t(int64_t P, int64_t K, int64_t taps, const float* image, const int64_t* position_at,
                               const int64_t* tap_offsets, const float* wt, int64_t ldwt, float* yt, int64_t ldyt) {
  active().nn_rows(P, K, taps, 1.0f, IndirectRows{image, 0, position_at}, IndirectRows{wt, ldwt}, 0.0f, yt, ldyt,
                   tap_offsets);
}

void columns_times_grad_t(int64_t taps, int64_t K, int64_t n, const float* image, const int64_t* tap_offsets,
                          const int64_t* position_at, const float* dyt, int64_t lddyt, float beta, float* dwt,
                          int64_t lddwt) {
  active().nn_rows(taps, K, n, 1.0f, IndirectRows{image, 0, tap_offsets}, IndirectRows{dyt, lddyt}, beta, dwt, lddwt,
                   position_at);
}

void grad_times_columns_t(int64_t K, int64_t taps, int64_t n, const float* dy, int64_t lddy, const float* image,
                          const int64_t* tap_offsets, float beta, float* dw, int64_t lddw, int64_t segments,
                          int64_t dy_step, int64_t image_step) {
  active().nt(K, taps, n, 1.0f, dy, lddy, IndirectRows{image, 0, tap_offsets}, beta, dw, lddw,
              kernels::Segments{segments < 1 ? 1 : segments, dy_step, image_step});
}

#else

namespace {
float store(double sum, float beta, float old) {
  return static_cast<float>(sum + (beta == 0 ? 0.0 : double{beta} * old));
}
}  // namespace

void weights_times_columns(int64_t K, int64_t n, int64_t taps, const float* w, int64_t ldw, const ImageColumns& cols,
                           float* y, int64_t ldy) {
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = cols.run ? j / cols.run * cols.run_stride + j % cols.run : j;
      double sum = 0;
      for (int64_t t = 0; t < taps; ++t) sum += double{w[i * ldw + t]} * cols.image[cols.taps[t] + at];
      y[i * ldy + j] = static_cast<float>(sum);
    }
}

void columns_t_times_weights_t(int64_t P, int64_t K, int64_t taps, const float* image, const int64_t* position_at,
                               const int64_t* tap_offsets, const float* wt, int64_t ldwt, float* yt, int64_t ldyt) {
  for (int64_t q = 0; q < P; ++q)
    for (int64_t k = 0; k < K; ++k) {
      double sum = 0;
      for (int64_t t = 0; t < taps; ++t) sum += double{image[position_at[q] + tap_offsets[t]]} * wt[t * ldwt + k];
      yt[q * ldyt + k] = static_cast<float>(sum);
    }
}

void columns_times_grad_t(int64_t taps, int64_t K, int64_t n, const float* image, const int64_t* tap_offsets,
                          const int64_t* position_at, const float* dyt, int64_t lddyt, float beta, float* dwt,
                          int64_t lddwt) {
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t k = 0; k < K; ++k) {
      double sum = 0;
      for (int64_t q = 0; q < n; ++q)
        sum += double{image[tap_offsets[t] + (position_at ? position_at[q] : q)]} * dyt[q * lddyt + k];
      dwt[t * lddwt + k] = store(sum, beta, dwt[t * lddwt + k]);
    }
}

void grad_times_columns_t(int64_t K, int64_t taps, int64_t n, const float* dy, int64_t lddy, const float* image,
                          const int64_t* tap_offsets, float beta, float* dw, int64_t lddw, int64_t segments,
                          int64_t dy_step, int64_t image_step) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t t = 0; t < taps; ++t) {
      double sum = 0;
      for (int64_t s = 0; s < (segments < 1 ? 1 : segments); ++s)
        for (int64_t q = 0; q < n; ++q)
          sum += double{dy[k * lddy + s * dy_step + q]} * image[tap_offsets[t] + s * image_step + q];
      dw[k * lddw + t] = store(sum, beta, dw[k * lddw + t]);
    }
}

#endif

}  // namespace hubel::layers
