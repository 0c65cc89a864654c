// The Layer interface. A layer validates its input shapes and computes its output shape
// (pure, before any memory exists), declares its parameters, is bound to its slices of
// the Net's flat parameter and gradient arenas, and runs forward and backward on a
// minibatch. Names: x (inputs), y (output), dx, dy, w, dw, b, db.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "framework/error.hpp"
#include "framework/init.hpp"
#include "framework/precision.hpp"
#include "framework/tensor.hpp"

namespace hubel {

namespace onnx {
class Graph;  // framework/onnx.hpp
}

// What a layer asks the Net to allocate for it in the arenas.
struct ParamSpec {
  std::string name;  // "w", "b", ...: unique within the layer
  Shape shape;
  Init init;
  int64_t fan_in = 1, fan_out = 1;  // for the scaled initializers
  bool decay = true;                // does weight decay apply (weights yes, biases no)
  // A buffer is state the layer updates itself in forward (batch norm's running
  // statistics): saved in checkpoints, never touched by the optimizer, no gradient.
  bool buffer = false;
  // For buffers that differ between ranks (per-rank statistics): the Trainer replaces
  // them by their mean over ranks after every step, so every rank evaluates alike.
  bool average_over_ranks = false;
};

// A parameter bound to the arenas: w in the parameter arena, dw at the same offset in
// the gradient arena.
struct Param {
  std::string name;
  Shape shape;
  float* w = nullptr;
  float* dw = nullptr;
  int64_t numel() const { return shape.numel(); }
};

// Everything a layer gets once, when the Net is built.
struct Binding {
  std::span<const Shape> x;       // per-sample input shapes
  Shape y;                        // per-sample output shape
  int64_t max_batch = 0;          // forward/backward never see more rows than this
  std::span<const Param> params;  // in the order of param_specs()
  // Inference only (Net::build_inference): forward in evaluation mode is all that runs;
  // the parameters have no gradient (dw null) and may be shared with other nets.
  bool inference = false;
  Precision precision = Precision::fp32;
};

// Sums over the ranks of a data-parallel run, for layers whose forward or backward needs
// statistics of the global minibatch (synchronized batch norm). Every rank must call it
// the same number of times in the same order.
class Reducer {
 public:
  virtual ~Reducer() = default;
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void sum(std::span<double> data) = 0;
};

// Per-call information: mode and the identity of the step, so stochastic layers can draw
// random numbers that depend on (seed, step, sample) and not on threads or ranks.
struct StepContext {
  bool training = false;
  uint64_t seed = 0;
  uint64_t step = 0;
  int64_t first_sample = 0;  // global index of row 0 of this minibatch shard
  Reducer* ranks = nullptr;  // null: one rank (or no cross-rank statistics wanted)
  // Exact training (framework/chunks.hpp): sums over samples are formed per chunk of
  // `chunk` samples, this rank holding `chunks` of them; 0: the layer chooses its chunks.
  int64_t chunk = 0;
  int64_t chunks = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // The registry's type name ("dense", "relu", ...).
  virtual std::string type() const = 0;
  // What pictures of the layer can show (hubel visualize): its output is feature maps
  // (channels x positions), and its first parameter holds filters [K, C/groups, k...].
  virtual bool spatial() const { return false; }
  // After bind: the algorithm the layer chose for its shapes, for --profile ("" if one).
  virtual std::string plan() const { return ""; }
  virtual bool has_filters() const { return false; }
  // Number of inputs; 0 means "one or more" (joins such as add and concat).
  virtual int arity() const { return 1; }
  // Does training forward/backward call StepContext::ranks (every rank must then run it)?
  virtual bool reduces_across_ranks() const { return false; }
  // Why training with this layer cannot give the same bits on any number of ranks (empty:
  // it can; framework/chunks.hpp), e.g. statistics per rank.
  virtual std::string inexact_reason() const { return {}; }
  // One line describing the configuration, for summaries ("64 units").
  virtual std::string describe() const { return ""; }

  // Validates the per-sample input shapes and returns the output shape. Pure; throws
  // ShapeError naming the layer.
  virtual Shape output_shape(std::span<const Shape> x) const = 0;
  // The parameters this layer needs for these input shapes.
  virtual std::vector<ParamSpec> param_specs(std::span<const Shape> /*x*/) const { return {}; }
  // Floating-point operations of forward for one sample (a multiply-add counts two), for
  // summaries and benchmarks. The default counts one per output element.
  virtual int64_t flops(std::span<const Shape> /*x*/, const Shape& y) const { return y.numel(); }
  // Called once by the Net after allocation: keep what you need, size your scratch here.
  virtual void bind(const Binding& b) { params_.assign(b.params.begin(), b.params.end()); }

  // y = f(x). Rows of x and y: the current minibatch size n <= max_batch.
  virtual void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) = 0;
  // Whether every input's gradient is dy itself (a sum of the inputs). The Net may then hand
  // backward dy's own buffer as an input's dx, which backward leaves as it is; the producer
  // reads dy in place instead of a copy.
  virtual bool passes_gradient() const { return false; }
  // Given dy, writes dx (overwriting; an empty view means that input needs no gradient)
  // and overwrites the parameter gradients dw with this minibatch's gradient.
  virtual void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                        std::span<const TensorView> dx, const StepContext& ctx) = 0;

  // ONNX export (framework/onnx.hpp), after bind: adds the nodes that compute this layer's
  // inference output from the values x (per-sample shapes xs) into the value named y,
  // reading the parameters from the arenas. A layer ONNX cannot express keeps this
  // default, which refuses naming it.
  virtual void to_onnx(onnx::Graph& /*g*/, std::span<const std::string> /*x*/, std::span<const Shape> /*xs*/,
                       const std::string& /*y*/) const {
    onnx_refuse("ONNX has no operator for it");
  }

  // Fusion (Net::build, after bind): `next` reads this layer's output and nothing else, no
  // other layer reads that output, and next has no parameters. A layer that can compute
  // next's work inside its own passes returns true, and from then on the Net calls
  // forward_fused and backward_fused for the pair instead of the four calls. They must give
  // the bits the two layers give. Only a layer with one input is offered a fusion.
  virtual bool fuse(const Layer& /*next*/) { return false; }
  // y and next's output next_y, as forward and then next's forward write them.
  virtual void forward_fused(ConstTensorView /*x*/, TensorView /*y*/, TensorView /*next_y*/,
                             const StepContext& /*ctx*/) {
    throw Error(cat("layer '", name_, "': forward_fused without a fusion"));
  }
  // dx and the parameter gradients from next_dy, the gradient at next's output, as next's
  // backward and then backward compute them.
  virtual void backward_fused(ConstTensorView /*x*/, ConstTensorView /*y*/, ConstTensorView /*next_dy*/,
                              TensorView /*dx*/, const StepContext& /*ctx*/) {
    throw Error(cat("layer '", name_, "': backward_fused without a fusion"));
  }

  const std::vector<Param>& params() const { return params_; }

 protected:
  [[noreturn]] void shape_error(const std::string& msg) const {
    throw ShapeError(cat("layer '", name_, "' (", type(), "): ", msg));
  }
  [[noreturn]] void onnx_refuse(const std::string& why) const {
    throw ConfigError(cat("layer '", name_, "' (", type(), "): ", why, "; the ONNX export is refused"));
  }
  std::vector<Param> params_;

 private:
  std::string name_;
};

// The common case: one input.
class UnaryLayer : public Layer {
 public:
  virtual Shape output_shape(const Shape& x) const = 0;
  virtual std::vector<ParamSpec> param_specs(const Shape& /*x*/) const { return {}; }
  virtual void forward(ConstTensorView x, TensorView y, const StepContext& ctx) = 0;
  // dx.empty(): the input needs no gradient (only parameter gradients are wanted).
  virtual void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                        const StepContext& ctx) = 0;

  Shape output_shape(std::span<const Shape> x) const final {
    if (x.size() != 1) shape_error(cat("takes one input, got ", x.size()));
    return output_shape(x[0]);
  }
  std::vector<ParamSpec> param_specs(std::span<const Shape> x) const final { return param_specs(x[0]); }
  void forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) final {
    forward(x[0], y, ctx);
  }
  void backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                std::span<const TensorView> dx, const StepContext& ctx) final {
    backward(x[0], y, dy, dx[0], ctx);
  }
};

}  // namespace hubel
