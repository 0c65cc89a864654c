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
// Conv chooses a plan once, in bind, and dispatches to the algorithm that computes it
// (conv_algorithm.hpp: each in its own file, each tested against the reference).
#pragma once

#include <tbb/enumerable_thread_specific.h>

#include <memory>
#include <optional>
#include <vector>

#include "framework/layer.hpp"
#include "framework/tensor.hpp"
#include "layers/window.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

enum class BiasKind { none, channel, location };

class ConvAlgorithm;  // layers/conv_algorithm.hpp
struct FusedPool;     // layers/conv_algorithm.hpp

class Conv : public UnaryLayer {
 public:
  // How the layer computes, chosen once in bind from the shapes, or named by impl (for
  // tests and benchmarks), and shown by --profile through plan(). conv_algorithm.hpp
  // says which file holds each.
  enum class Plan {
    reference,     // the definition, loop by loop (impl: reference)
    tiled,         // a product per sample and tile (the plan for several weight sets)
    im2col,        // an explicit column matrix per block of samples
    wide_im2col,   // the same, stride 1 and zero padding: column rows copied as runs of the padded image
    implicit,      // the column matrix read in place by the kernels (implicit im2col)
    compact_rows,  // implicit, output rows of whole kernel panels: no wide positions
    positions,     // implicit, the output positions as the product's rows: y^T = cols^T W^T
    bf16,          // implicit, bf16 products with fp32 sums (train.precision: bf16, AVX512_BF16)
    bf16_im2col,   // im2col, bf16 products with fp32 sums: where bf16 does not apply (strides, 1x1)
  };
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
    bool relu = false;         // activation: relu, fused into the copies of the fast path
    bool flip = false;         // the kernel flipped: true convolution instead of cross-correlation
    std::optional<Plan> impl;  // unset (impl: fast): the fastest plan for the shapes
  };
  explicit Conv(Options o);
  ~Conv() override;
  // {type: conv2d, filters: 16, kernel: 5, stride: 1, dilation: 1, padding: same,
  //  padding_value: zero, rounding: exact, groups: 1, connections: [[0, 1, 2], ...],
  //  tiles: 1 | [2, 2] | all, bias: channel | location | none, init, bias_init,
  //  activation: none | relu, flip: false, impl: fast | reference | tiled | im2col | wide_im2col |
  //  implicit | compact_rows | positions}. rank 0 ("conv") takes the rank from the input.
  static std::unique_ptr<Layer> from_config(const Config& c, int rank);

  std::string type() const override;
  std::string plan() const override;
  bool spatial() const override { return true; }
  bool has_filters() const override { return true; }
  std::string describe() const override;
  std::string inexact_reason() const override {
    return o_.impl == Plan::reference ? "runs the reference kernel (impl: reference), which sums in its own order" : "";
  }
  Shape output_shape(const Shape& x) const override;
  std::vector<ParamSpec> param_specs(const Shape& x) const override;
  int64_t flops(std::span<const Shape> x, const Shape& y) const override;
  void bind(const Binding& b) override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;
  // A 2x2 max pooling at stride 2 (Pool's max_2x2 plan) that reads this layer's output:
  // computed in the fast algorithms' own passes (conv_algorithm.hpp, FusedPool).
  bool fuse(const Layer& next) override;
  void forward_fused(ConstTensorView x, TensorView y, TensorView next_y, const StepContext& ctx) override;
  void backward_fused(ConstTensorView x, ConstTensorView y, ConstTensorView next_dy, TensorView dx,
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
  // Why `plan` cannot compute a layer of geometry g on this CPU (empty: it can).
  static std::string unsupported(Plan plan, const Geometry& g);
  static const char* plan_name(Plan plan);

 private:
  Plan choose_plan() const;
  void run_forward(ConstTensorView x, TensorView y, const StepContext& ctx, const FusedPool& pool);
  void run_backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext& ctx,
                    const FusedPool& pool);

  Options o_;
  Geometry g_;
  Plan plan_ = Plan::im2col;
  bool bf16_ = false;  // the net's precision is bf16: the bf16 plan where it applies
  std::unique_ptr<ConvAlgorithm> algorithm_;
  const Window* pool_ = nullptr;      // the fused pooling's window (Conv::fuse), else null
  std::vector<int32_t> pool_argmax_;  // where its maxima are (training)
  int64_t max_batch_ = 0;
  bool inference_ = false;
  AlignedBuffer w_flipped_, dw_flipped_;  // flip: the kernels reversed, and their gradient
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
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
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
