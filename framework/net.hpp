// Net: a directed acyclic graph of named layers. A plain list of layers is the common
// case (each layer feeds the next); a layer may instead name its inputs. Shapes are
// inferred as layers are added, so every configuration error appears before anything is
// allocated. build() then allocates, once, the activations, their gradients and the flat
// parameter and gradient arenas, and initializes the parameters.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "framework/layer.hpp"
#include "framework/tensor.hpp"

namespace hubel {

class Config;
class LayerRegistry;

// Where a parameter lives in the flat arenas.
struct ParamInfo {
  std::string layer, name;  // "fc1", "w"
  Shape shape;
  int64_t offset = 0;  // in floats, 64-byte aligned
  int64_t size = 0;
  bool decay = true;
  bool trainable = true;  // false for buffers and for parameters of frozen layers
  bool buffer = false;    // see ParamSpec::buffer
  bool average_over_ranks = false;
  int node = 0;  // the layer's position in the model (for model-order listings)
  std::string full_name() const { return layer + "/" + name; }
};

class Net {
 public:
  // The name of the network's input in `inputs` lists.
  static constexpr const char* kInput = "input";

  explicit Net(const Shape& input_sample_shape);
  // Reads model.input and model.layers; checks each layer's keys.
  static Net from_config(const Config& model, const LayerRegistry& registry);

  Net(Net&&) noexcept;
  Net& operator=(Net&&) noexcept;
  ~Net();

  // Adds a layer fed by the named nodes (empty: the previously added node, or the input).
  // Infers its output shape now; throws ShapeError or ConfigError naming the layer.
  Layer& add(std::unique_ptr<Layer> layer, const std::vector<std::string>& inputs = {});
  // The output shape of the node named `name` ("input" for the net's input); ConfigError
  // if there is none.
  const Shape& shape_of(const std::string& name) const;
  // The name an unnamed layer of this type gets ("conv3"), taken now.
  std::string unique_name(const std::string& type);

  // Freezes a layer (before build): its parameters are neither updated nor, when nothing
  // before it is trainable, given a gradient. ConfigError if there is no such layer.
  void freeze(const std::string& layer);
  bool frozen(const std::string& layer) const;
  // The layers' arithmetic (before build; fp32 unless set): bf16 gives the layers that
  // have a bf16 plan (the stride-1 convolutions, where the CPU has AVX512_BF16) bf16
  // operands with fp32 sums; the parameters and everything else stay fp32.
  void set_precision(Precision p);
  Precision precision() const;
  // Fusion (before build; on unless set off): a layer whose output only the next layer
  // reads may compute that layer's work in its own passes (Layer::fuse: a convolution and
  // the 2x2 max pooling after it), with the same results. Off: every layer runs alone.
  void set_fusion(bool on);
  bool fusion() const;

  // Allocates everything for minibatches of up to max_batch rows and initializes the
  // parameters from `seed` (each parameter's stream depends on its layer and name, so
  // adding a layer does not change the initialization of the others).
  void build(int64_t max_batch, uint64_t seed);
  bool built() const;
  // Inference only (hubel::Model): activations for max_batch rows in buffers shared by
  // outputs whose lifetimes do not overlap, the parameter arena laid out as build() lays
  // it (uninitialized: load a checkpoint into state()), or, with `shared`, the parameters
  // of that net (built from the same model; it must outlive this one) read in place; no
  // gradients, no backward. forward() with ctx.training false is all such a net runs.
  void build_inference(int64_t max_batch, const Net* shared = nullptr);
  bool inference_only() const;
  // Bytes build(max_batch) allocates for parameters, gradients and activations (a lower
  // bound: layers' scratch comes on top); saturates instead of overflowing.
  int64_t memory_bytes(int64_t max_batch) const;
  // After build: bytes of the input, the layers' outputs and the gradient buffers (shared
  // between layers whose gradients are not needed at the same time).
  int64_t activation_bytes() const;

  const Shape& input_shape() const;
  const Shape& output_shape() const;
  int64_t max_batch() const;
  size_t size() const;  // number of layers
  Layer& layer(size_t i);
  const Layer& layer(size_t i) const;
  const Layer* find(const std::string& name) const;

  // The input buffer, n rows: write a minibatch here, then call forward(n).
  TensorView input(int64_t n);
  ConstTensorView forward(int64_t n, const StepContext& ctx);
  // Where the loss writes d(loss)/d(output) for the n rows of the last forward.
  TensorView output_grad(int64_t n);
  // Back-propagates output_grad into every parameter gradient.
  void backward(int64_t n, const StepContext& ctx);
  // The same, calling on_progress(p) whenever gradients [0, p) of the arena are final (the
  // arena is filled from offset 0), so their allreduce can start while backward goes on.
  void backward(int64_t n, const StepContext& ctx, const std::function<void(int64_t)>& on_progress);
  // Diagnosis of a diverged step: the first layer (in model order) whose output of the
  // last forward holds a non-finite value, or whose parameter gradient does. nullopt
  // when all are finite.
  struct NonFinite {
    std::string layer;
    std::string what;  // "the output of layer 'fc2'", "the gradient of fc1/w"
  };
  std::optional<NonFinite> first_nonfinite_output(int64_t n) const;
  std::optional<NonFinite> first_nonfinite_gradient() const;
  // The output of a named layer from the last forward.
  ConstTensorView activation(const std::string& layer, int64_t n) const;

  // The flat arenas (same layout). The trainable parameters come first, in reverse layer
  // order, so backward fills the gradient arena from offset 0 upwards; frozen parameters
  // and buffers follow. params() and grads() are the trainable prefix (what the optimizer
  // and the allreduce see); state() is everything a checkpoint holds.
  std::span<float> params();
  std::span<const float> params() const;
  std::span<float> grads();
  std::span<const float> grads() const;
  std::span<float> state();
  std::span<const float> state() const;
  // Every parameter and buffer: trainable ones in arena order, then the others.
  const std::vector<ParamInfo>& param_info() const;
  int64_t num_params() const;     // parameter values, frozen included, buffers not
  int64_t num_trainable() const;  // of which trainable
  int64_t num_buffer_values() const;

  // ONNX export, after build (framework/onnx.hpp): reserves the layers' names as values,
  // calls preprocess(input) for the value the first layers read (the evaluation
  // transform's nodes; none: the input itself), adds every layer's nodes in model order
  // and returns the name of the output value. A layer ONNX cannot express stops it,
  // named (ConfigError).
  std::string to_onnx(onnx::Graph& g, const std::string& input,
                      const std::function<std::string(const std::string&)>& preprocess = {}) const;

  // A table: layer, type, inputs, output shape, parameters, configuration.
  void summary(std::ostream& os) const;

  // Profiling: when on, training forward and backward passes time each layer (two clock
  // reads per layer and pass). Seconds per layer since profiling was turned on, in layer
  // order.
  void set_profiling(bool on);
  struct LayerTime {
    std::string name, type;
    double forward = 0, backward = 0;  // seconds
    int64_t calls = 0;                 // forward passes
    int64_t flops = 0;                 // forward FLOPs per sample
    std::string plan;                  // Layer::plan(): the algorithm chosen for its shapes
  };
  std::vector<LayerTime> layer_times() const;

 private:
  // Refuses, before anything is allocated, a model that cannot fit in this machine's memory.
  void check_memory(int64_t max_batch) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hubel
