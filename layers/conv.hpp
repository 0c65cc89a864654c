// Convolution layers, 1-D to 3-D from one implementation: Conv (cross-correlation with
// groups, an input-to-output connection table, tiling from ordinary convolution to
// locally connected, padding by zeros, reflection or replication) and ConvTranspose (the
// multiplication by the transposed convolution matrix); and `convolve`, the true
// convolution (flipped kernel) of numpy's convolve and scipy's convolve2d.
//
// Layouts (N is the batch): x [N, C, (D,) (H,) W]; y [N, K, out...]. Weights
// [K, C/groups, k...]; with a connection table [connections, k...] (one kernel per
// connected pair, filter by filter); tiled with T weight sets [T, K, C/groups * k_vol].
// A transposed convolution's weights are [C, K/groups, k...], as in PyTorch.
//
// The fast path is im2col + BLAS, TBB-parallel over fixed chunks of samples. Without
// tiling, a block of samples shares one product per group: their columns lie side by
// side in one matrix (nb * P columns), so LeNet-sized layers make products large enough
// for the BLAS to run near its peak. Tiled layers make one product per sample and tile; weight gradients are summed per
// chunk and the chunk partials added in chunk order, so results do not depend on the thread count. A naive reference
// path (impl: reference) is kept for tests and debugging.
#pragma once

#include <tbb/enumerable_thread_specific.h>

#include <memory>
#include <vector>

#include "framework/layer.hpp"
#include "framework/tensor.hpp"
#include "layers/window.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

enum class BiasKind { none, channel, location };

class Conv : public UnaryLayer {
 public:
  struct Options {
    int64_t filters = 0;  // K; with a connection table, 0 means "as many as the table has rows"
    WindowOptions window;
    int64_t groups = 1;
    // connections[k] = the input channels filter k reads (LeNet-5's C3 table). Empty: all.
    std::vector<std::vector<int64_t>> connections;
    std::vector<int64_t> tiles{1};   // period of the weight sharing per dimension
    bool locally_connected = false;  // tiles: all (one weight set per output position)
    BiasKind bias = BiasKind::channel;
    Init w_init = Init::scaled(Init::Kind::HeUniform);
    Init b_init = Init::zeros();
    bool relu = false;  // activation: relu, fused into the copies of the fast path
    bool reference = false;
  };
  explicit Conv(Options o);
  // {type: conv2d, filters: 16, kernel: 5, stride: 1, dilation: 1, padding: same,
  //  padding_value: zero, rounding: exact, groups: 1, connections: [[0, 1, 2], ...],
  //  tiles: 1 | [2, 2] | all, bias: channel | location | none, init, bias_init,
  //  activation: none | relu, impl: fast | reference}. rank 0 ("conv") takes the rank from the input.
  static std::unique_ptr<Layer> from_config(const Config& c, int rank);

  std::string type() const override;
  std::string plan() const override;
  bool spatial() const override { return true; }
  bool has_filters() const override { return true; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override;
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

  // Everything derived from the options and the input shape.
  struct Geometry {
    Window w;
    int64_t C = 0, K = 0, groups = 1, Cg = 0, Kg = 0;  // channels per group in and out
    bool table = false;
    std::vector<int64_t> first_block;  // table: filter k's kernels are blocks [first_block[k], first_block[k+1])
    int64_t blocks = 0;                // kernels per weight set: K*Cg, or the connections
    Dims3 tiles{1, 1, 1};
    int64_t T = 1;
    int64_t P() const { return w.out_vol(); }
    int64_t kvol() const { return w.k_vol(); }
    int64_t tile_of(int64_t od, int64_t oh, int64_t ow) const {
      return ((od % tiles[0]) * tiles[1] + oh % tiles[1]) * tiles[2] + ow % tiles[2];
    }
  };
  Geometry geometry(const Shape& x) const;

 private:
  void forward_reference(ConstTensorView x, TensorView y) const;
  void backward_reference(ConstTensorView x, ConstTensorView dy, TensorView dx) const;
  // The untiled fast path, nb_ samples per product.
  void forward_blocks(ConstTensorView x, TensorView y);
  void backward_blocks(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx);
  // The tiled fast path, one product per sample and tile (the activation applied apart).
  void forward_tiled(ConstTensorView x, TensorView y);
  void backward_tiled(ConstTensorView x, ConstTensorView dy, TensorView dx);
  // One sample's columns (Pc of them, row stride ld) and back; xp: the padded-image scratch.
  void to_columns(const float* xi, float* xp, float* cols, int64_t ld) const;
  void from_columns(const float* dcols, int64_t ld, float* xp, float* dxi) const;
  void pad_input(const float* xi, float* xp) const;
  void scatter_table_gradient(const float* dw_dense);  // dense-layout gradient into the table's
  const float* dense_weights();                        // the weights as [T, K, Cg * kvol] (expanding a table)
  int64_t cols_floats() const;                         // untiled: floats of the cols (implicit: dy^T) scratch

  Options o_;
  Geometry g_;
  int64_t max_batch_ = 0;
  // Fast-path state, sized at bind.
  int64_t nb_ = 1;  // untiled: samples per product
  // How this layer computes, chosen once in bind from the shapes (and printed by
  // --profile through plan()):
  enum class Plan {
    reference,     // options.reference: the naive loops
    tiled,         // several weight sets: one product per sample and tile
    im2col,        // an explicit column matrix (strides, 3-D, padding other than zeros)
    wide_im2col,   // stride 1, zero padding: columns copied in runs from the padded image (pad_input)
    implicit,      // the same columns read in place by the kernels (implicit im2col), wide positions computed
    compact_rows,  // implicit, output rows of whole kernel panels: no wide positions
    positions,     // implicit, the output positions as the product's rows: y^T = cols^T W^T
  };
  Plan plan_ = Plan::im2col;
  bool wide() const { return plan_ >= Plan::wide_im2col; }
  bool implicit() const { return plan_ >= Plan::implicit; }
  bool compact() const { return plan_ >= Plan::compact_rows; }
  // The weight gradient of an implicit plan: one dot product per weight, or transposed
  // (dW^T = cols dY^T, where the filters of a group are whole panels).
  bool transposed_grad_ = false;
  struct Wide {              // the wide column layout (conv.cpp, pad_input)
    int64_t Hp = 0, Wp = 0;  // the padded image the windows cover
    int64_t Pc = 0;          // columns per sample: OH * Wp (wide) or P
    int64_t image = 0;       // floats of the padded-image scratch
    // Implicit: no column matrix; the kernels read its rows in place, row (c, kh, kw) at
    // off[row] in the padded image, and each sample takes Pcp columns (Pc rounded up to
    // whole kernel panels) in y and dy.
    std::vector<int64_t> pmap;  // compact: output position q's column in the padded image
    int64_t Pcp = 0;
    std::vector<int64_t> off;
  } wide_;
  std::vector<int64_t> order_;       // tiled: output positions sorted by tile
  std::vector<int64_t> tile_begin_;  // tiled: where each tile's positions start in order_
  AlignedBuffer w_dense_;            // table: expanded weights; gradient partials reduce into it
  AlignedBuffer partials_;           // per chunk of samples: [dW (dense layout), db]
  AlignedBuffer masked_;             // relu, tiled or reference: dy where y > 0
  AlignedBuffer w_t_;                // transposed: the summed weight gradient, [groups, CgK, Kg]
  AlignedBuffer w_fwd_;              // positions: the weights transposed for the forward pass, [CgK, K]
  int64_t partial_size_ = 0;
  int64_t scratch_size_ = 0;
  tbb::enumerable_thread_specific<AlignedBuffer> scratch_;
};

class ConvTranspose : public UnaryLayer {
 public:
  struct Options {
    int64_t filters = 0;  // output channels
    WindowOptions window;
    std::vector<int64_t> output_padding;
    int64_t groups = 1;
    BiasKind bias = BiasKind::channel;
    Init w_init = Init::scaled(Init::Kind::HeUniform);
    Init b_init = Init::zeros();
    bool reference = false;
  };
  explicit ConvTranspose(Options o);
  // {type: conv_transpose2d, filters: 16, kernel: 4, stride: 2, padding: 1,
  //  output_padding: 0, dilation: 1, groups: 1, bias: channel | none, init, bias_init, impl}
  static std::unique_ptr<Layer> from_config(const Config& c, int rank);

  std::string type() const override;
  bool spatial() const override { return true; }
  std::string describe() const override;
  Shape output_shape(const Shape& x) const override;
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;

 private:
  // w.in is this layer's output (the image), w.out its input positions.
  Window window(const Shape& x) const;
  void forward_reference(ConstTensorView x, TensorView y) const;
  void backward_reference(ConstTensorView x, ConstTensorView dy, TensorView dx) const;

  Options o_;
  Window w_;
  int64_t C_ = 0, K_ = 0, Cg_ = 0, Kg_ = 0;
  AlignedBuffer partials_;
  int64_t partial_size_ = 0, scratch_size_ = 0;
  tbb::enumerable_thread_specific<AlignedBuffer> scratch_;
};

// The true convolution (the kernel flipped) of f and g, both of rank 1 to 3, in numpy /
// scipy's modes: full (size m+k-1), same (the size of f, centred), valid (m-k+1; needs
// f at least as large as g in every dimension).
enum class ConvolveMode { full, same, valid };
Tensor convolve(ConstTensorView f, ConstTensorView g, ConvolveMode mode);

}  // namespace hubel::layers
