// The algorithms a convolution can run (Conv's plans), behind one small interface, and
// the pieces they share. Conv validates, chooses a plan in bind and dispatches; each
// algorithm lives in its own file and is tested against the reference:
//   conv_reference.cpp  the definition, loop by loop (impl: reference)
//   conv_tiled.cpp      several weight sets (tiling, locally connected): a product per sample and tile
//   conv_im2col.cpp     an explicit column matrix per block of samples (im2col, or wide im2col)
//   conv_implicit.cpp   the column matrix read in place from the padded image (implicit im2col,
//                       compact rows, output positions)
//   conv_bf16.cpp       implicit im2col in bf16 products with fp32 sums (train.precision: bf16)
// Every fast algorithm sums its weight gradient per fixed chunk of samples and adds the
// chunks in chunk order, so results do not depend on the thread count.
#pragma once

#include <tbb/enumerable_thread_specific.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "framework/chunks.hpp"
#include "framework/parallel.hpp"
#include "framework/tensor.hpp"
#include "layers/conv.hpp"

namespace hubel::layers {

// What an algorithm computes: the geometry, the bias, the fused activation (relu) and the
// largest batch it will see.
struct ConvProblem {
  Conv::Geometry g;
  std::vector<std::vector<int64_t>> connections;  // the table when g.table
  BiasKind bias = BiasKind::channel;
  bool relu = false;
  int64_t max_batch = 0;
  bool inference = false;  // forward only: no gradient partials
};

// The layer's parameters in their own layout (Conv's header), b and db null without a bias.
struct ConvParams {
  const float* w = nullptr;
  const float* b = nullptr;
  float* dw = nullptr;
  float* db = nullptr;
};

// A 2x2 max pooling at stride 2 that reads y and nothing else, computed in the passes of a
// fast algorithm (Conv::fuse): forward pools each sample's y while it is still in cache
// (pool_fast.hpp's kernels: the pooling's own comparisons), noting where each maximum is,
// or -1 where the fused ReLU cuts it; backward takes the gradient at the pooling's output
// through those positions in place of dy, without reading y. The two layers' bits.
struct FusedPool {
  const Window* w = nullptr;  // the pooling's window over y's planes; null: nothing fused
  float* y = nullptr;         // forward: the pooling's output [n, K, w->out_vol()]
  int32_t* argmax = nullptr;  // [n, K, w->out_vol()]: written by forward (unless null), read by backward
  const float* dy = nullptr;  // backward: the gradient at the pooling's output
};

class ConvAlgorithm {
 public:
  virtual ~ConvAlgorithm() = default;
  // y = the convolution of x with the weights, plus the bias, through the fused activation;
  // and the fused pooling's output, if any. ctx.chunk: an exact run's chunks, which no
  // block of samples may straddle.
  virtual void forward(const ConvParams& p, ConstTensorView x, TensorView y, const StepContext& ctx,
                       const FusedPool& pool) = 0;
  // dy is the gradient at y (with the fused activation, masked here by y > 0); with a fused
  // pooling, pool.dy is read instead. The weight and bias gradients are written (not
  // added); dx too, unless it is empty. ctx.chunk: the chunks of samples the parameter
  // gradient is summed by (framework/chunks.hpp).
  virtual void backward(const ConvParams& p, ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                        const StepContext& ctx, const FusedPool& pool) = 0;
  // Can it compute a FusedPool (the algorithms that write y and read dy a sample at a time)?
  virtual bool fuses_pool() const { return false; }
  // What --profile shows after the plan's name (empty, or e.g. how the weight gradient is made).
  virtual std::string detail() const { return {}; }
};

std::unique_ptr<ConvAlgorithm> make_reference_conv(const ConvProblem& p);
std::unique_ptr<ConvAlgorithm> make_tiled_conv(const ConvProblem& p);
// wide: stride 1 and zero padding; the column rows are copied in runs from the padded image.
// bf16: the products on bf16 operands with fp32 sums (one group).
std::unique_ptr<ConvAlgorithm> make_im2col_conv(const ConvProblem& p, bool wide, bool bf16 = false);
// plan: implicit, compact_rows or positions.
std::unique_ptr<ConvAlgorithm> make_implicit_conv(const ConvProblem& p, Conv::Plan plan);
// Implicit im2col with bf16 products and fp32 sums (conv_bf16.cpp).
std::unique_ptr<ConvAlgorithm> make_bf16_conv(const ConvProblem& p);

namespace conv_detail {

// The configuration and description pieces of the family (conv and conv_transpose).
BiasKind parse_bias(const Config& c, bool location_allowed);
const char* bias_name(BiasKind b);
std::string rank_suffix(int rank);  // "2d" for rank 2; "" for 0 (the rank taken from the input)
std::vector<int64_t> spatial_of(const Shape& x);

// Gradient partials per fixed chunk of samples: at most this many for one layer.
int64_t max_partials(int64_t partial_size, int64_t max_batch);

// Samples per task: enough work (about two million flops) to amortize a task.
int64_t sample_grain(int64_t flops_per_sample);
// A block of samples shares one product: at most this many floats of its columns (256 KiB:
// they stay in the L2 cache while the product packs them).
constexpr int64_t kBlockFloats = int64_t{1} << 16;
// The row stride of a block's matrices: its columns rounded up to whole panels of the
// product kernels, so no column is left to a slower tail (the extra columns are zero).
int64_t block_ld(int64_t columns);
// Samples per block: columns of at most kBlockFloats floats. A function of the shapes
// alone, never of the batch, so that a sample is computed the same way in any batch (on
// any number of ranks): blocks start at the start of a task's (or a chunk's) samples.
int64_t block_samples(int64_t floats_per_sample);
// Floats that hold n elements of `bytes` bytes each (bf16 values, pairs), aligned.
inline int64_t room(int64_t n, int64_t bytes) { return align_floats((n * bytes + 3) / 4); }
// m[r][from, ld) = 0 for rows r < rows.
void zero_columns(float* m, int64_t rows, int64_t from, int64_t ld);
// y[k][q] += b[k] (channel) or b[k][q] (location), for one sample of K planes of V values.
void add_bias(BiasKind kind, const float* b, int64_t K, int64_t V, float* y);
// The bias gradient of one sample, written (first sample of a chunk) or added.
void bias_gradient(BiasKind kind, const float* dy, int64_t K, int64_t V, bool first, float* db);
// The same from K planes of `rows` rows of OW values each, plane k at d + k * ldk, row r at
// + r * row_stride.
void bias_gradient_rows(BiasKind kind, const float* d, int64_t ldk, int64_t rows, int64_t row_stride, int64_t OW,
                        int64_t K, bool first, float* db);
void apply_relu(float* y, int64_t n);
// out = dy where y > 0, else 0 (the fused activation's gradient, for the unfused algorithms).
void mask_by_output(const float* y, const float* dy, int64_t n, float* out);

// One sample's output y [K, P] from a block matrix whose plane k starts at src + k * ldk
// and whose output row r starts at + r * row_stride (row_stride > OW: the wide layout's
// extra positions, dropped), with the bias and the fused activation.
void store_output(const ConvProblem& p, const float* bias, const float* src, int64_t ldk, int64_t row_stride,
                  float* yi);
// The reverse: sample i's gradient at y [K, P] into a block matrix (plane k at dst + k * ldk,
// row r at + r * row_stride): dy masked by y > 0 with the fused activation, or with a fused
// pooling pool.dy at each window's maximum (zero elsewhere); zeros in the extra positions
// of each row and from column rows * row_stride up to `width`.
void load_gradient(const ConvProblem& p, const FusedPool& pool, ConstTensorView dy, ConstTensorView y, int64_t i,
                   float* dst, int64_t ldk, int64_t row_stride, int64_t width);
// With a fused pooling: its output for sample i, from that sample's y (just written).
void pool_output(const ConvProblem& p, const FusedPool& pool, ConstTensorView y, int64_t i);

// The wide layout (zero padding, 1-D or 2-D): the input is copied once into a zero-padded
// image xp (exactly what the windows cover, plus slack), and the column row of (channel c,
// tap kh, kw) is a contiguous run of OH * Wp elements of xp at taps[row]. A product over
// these columns computes Wp - OW extra "wide" positions per output row: forward drops them,
// and backward gives them a zero output gradient, so they add exact zeros to the weight
// and input gradients.
//   stride 1   each channel one plane [Hp, Wp]; tap (kh, kw) at c*plane + kh*dh*Wp + kw*dw.
//   stride s   (dilation 1) each channel split into its phases: phase (a, b) holds the
//              padded positions (s_h i + a, s_w j + b), a plane [Hp, Wp] with Hp = OH +
//              (kh - 1) / s_h. Tap (kh, kw) reads phase (kh % s_h, kw % s_w) shifted by
//              (kh / s_h, kw / s_w): the strided windows become stride-1 runs, each tap
//              one run, no column matrix (the phases no tap reads, as with a 2x2 kernel
//              at stride 3, are not stored).
struct WideImage {
  // applies: zero padding, no depth, a kernel larger than 1, dilation 1 where the stride
  // is above 1.
  static bool applies(const Window& w);
  static bool strided(const Window& w) { return w.s[1] > 1 || w.s[2] > 1; }
  // panel > 0: the columns read in place, each sample's Pc rounded up to whole panels.
  WideImage(const Conv::Geometry& g, int64_t panel);
  int64_t Hp = 0, Wp = 0;  // of a plane (a phase's, when strided)
  int64_t ph = 1, pw = 1;  // the phases stored along H and along W (1, 1 at stride 1)
  int64_t plane = 0;       // floats of one channel's planes: ph * pw * Hp * Wp
  int64_t Pc = 0;          // columns per sample: OH * Wp
  int64_t Pcp = 0;         // Pc rounded up to whole panels (implicit), else Pc
  int64_t floats = 0;      // of one padded image, with the slack the last runs read
  std::vector<int64_t> taps;

  // Where padded position (r, q) of a channel lies in its planes, or -1 where no tap reads it.
  int64_t at(int64_t r, int64_t q, const Window& w) const {
    const int64_t a = r % w.s[1], b = q % w.s[2], i = r / w.s[1], j = q / w.s[2];
    return a < ph && b < pw && i < Hp && j < Wp ? ((a * pw + b) * Hp + i) * Wp + j : -1;
  }
  void pad(const Conv::Geometry& g, const float* xi, float* xp) const;
  // One sample's column matrix (rows ld apart), copied from its padded image.
  void columns(const Conv::Geometry& g, const float* xi, float* xp, float* cols, int64_t ld) const;
  // dx of one sample from its column gradient (rows ld apart; in each row the output rows
  // lie `run` apart: Wp in the wide layout, OW when compact), through the padded image xp.
  void add_back(const Conv::Geometry& g, const float* dcols, int64_t ld, int64_t run, float* xp, float* dxi) const;
};

// The input gradient of a WideImage convolution as products like the forward's: dx is the
// correlation of the zero-padded dY with the flipped kernels.
//   stride 1   one product. dY's planes are padded to Hq x Wq, output row oh at row oh +
//              top and column ow at ow + left (clipped where padding past (k - 1) d leaves
//              outputs that no input reaches: columns [c0, c1) of dY are copied); dx's wide
//              positions are H x Wq.
//   stride s   one product per phase of the padded input (WideImage): phase (a, b) is the
//              correlation of dY, padded by (M - 1) on top and left (M = ceil(k / s)), with
//              the kernel's taps (a + s u, b + s v) flipped; its wide positions are the
//              phase's Hp x Wq, cropped into dx through WideImage::at.
// Pq: a phase's wide positions in whole panels. The planes hold one element per position:
// a float, or (bf16) a word of two filters' values.
struct PaddedGradient {
  PaddedGradient(const Window& w, int64_t planes);
  int64_t Hq = 0, Wq = 0, top = 0, left = 0, c0 = 0, c1 = 0, Pq = 0;
  int64_t size = 0;  // elements of the planes and the slack the last runs read
  struct Phase {
    std::vector<int64_t> taps;    // plane p's tap t at taps[p * kernel.size() + t], p-major
    std::vector<int64_t> kernel;  // the weight of tap t: kernel[t] = kh * kw_count + kw
  };
  std::vector<Phase> phases;  // one at stride 1; (a, b) at a * pw + b, WideImage's order
  // Where column c0 of output row oh of plane p goes, or -1 when the row is clipped.
  int64_t row_at(int64_t p, int64_t oh) const {
    const int64_t r = oh + top;
    return r < 0 || r >= Hq || c1 <= c0 ? -1 : (p * Hq + r) * Wq + left + c0;
  }
  // One sample's dx [C, H, W] from the products' wide positions (phase f, channel c at
  // dxw + (f C + c) Pq).
  void crop(const Window& w, const WideImage& wide, int64_t C, const float* dxw, float* dxi) const;
  int64_t wide_floats(int64_t C) const { return static_cast<int64_t>(phases.size()) * C * Pq; }
};

// The base of the fast algorithms: the weights in the dense layout [T, K, Cg * kvol] (a
// connection table expanded), and the gradient partials per fixed chunk of samples.
class ChunkedConv : public ConvAlgorithm {
 protected:
  explicit ChunkedConv(ConvProblem p);
  const float* dense_weights(const ConvParams& p);
  int64_t dense_size() const { return p_.g.T * p_.g.K * p_.g.Cg * p_.g.kvol(); }
  // The chunks of n samples: the exact run's (ctx.chunk), or ones of at least `grain`
  // samples fixed by n and the shapes, never by the thread count.
  ChunkPlan chunks(const StepContext& ctx, int64_t n, int64_t grain);
  float* partial_w(int64_t c) { return partials_.data() + c * partial_size_; }
  float* partial_b(int64_t c) { return partial_w(c) + dense_size(); }
  // An exact run's chunk c past this rank's n rows: its partial is zeroed (a leaf of the
  // tree that adds nothing) and the caller skips it.
  bool empty_chunk(int64_t c, const ChunkPlan& plan, int64_t n) {
    if (plan.begin(c) < n) return false;
    std::fill(partial_w(c), partial_w(c) + partial_size_, 0.0f);
    return true;
  }
  // A block of the backward pass: samples [b0, b0 + nb) of one chunk, whether it is the
  // chunk's first block (its sums are written, the others' added), and the chunk's
  // gradient partials.
  struct Block {
    int64_t b0, nb;
    bool first;
    float* dw;
    float* db;
  };
  // The chunks of `plan` in parallel (an exact run's chunks past n zeroed and skipped), each
  // cut into blocks of at most nb samples, in order: f(block, the thread's scratch).
  template <class F>
  void for_each_block(const ChunkPlan& plan, int64_t n, int64_t nb, F&& f) {
    parallel_chunks(plan.count, 1, [&](int64_t c0, int64_t c1) {
      float* scratch = scratch_.local().data();
      for (int64_t c = c0; c < c1; ++c) {
        if (empty_chunk(c, plan, n)) continue;
        const int64_t begin = c * plan.size, end = std::min(n, begin + plan.size);
        for (int64_t b0 = begin; b0 < end; b0 += nb)
          f(Block{b0, std::min(nb, end - b0), b0 == begin, partial_w(c), partial_b(c)}, scratch);
      }
    });
  }
  // The chunks' partials added in the chunks' tree (framework/chunks.hpp) into p's
  // gradients. transposed: each chunk's weight part is [groups, Cg * kvol, Kg] (turned
  // around after the sum).
  void finish_gradients(const ConvParams& p, int64_t chunks, bool transposed);

  ConvProblem p_;
  tbb::enumerable_thread_specific<AlignedBuffer> scratch_;
  void size_scratch(int64_t floats);

 private:
  AlignedBuffer w_dense_;   // table: the expanded weights
  AlignedBuffer partials_;  // per chunk: [dW (dense layout), db]
  AlignedBuffer sum_;       // transposed: the summed [groups, CgK, Kg]
  int64_t partial_size_ = 0, slots_ = 1;
};

}  // namespace conv_detail
}  // namespace hubel::layers
