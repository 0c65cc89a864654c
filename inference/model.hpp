// hubel::Model: a trained model for embedding in a program. Loads a checkpoint (or
// exported weights with the experiment that made them), and predicts on batches of
// samples as stored (pixels 0..255, as float or uint8), the experiment's evaluation
// transform applied. Thread-safe: concurrent callers each run on their own activations
// and scratch (a replica of the net reading the one shared copy of the parameters, made
// when a caller finds none free); no MPI, no optimizer, no gradients. Threads: each call
// runs in a TBB arena of Options::threads threads of its own (over TBB's one pool).
//
//   hubel::Model m = hubel::Model::load("runs/lenet/checkpoints");
//   std::vector<float> logits(n * m.outputs());
//   m.predict(pixels, n, logits.data());        // pixels: n x C x H x W uint8
//   auto top = m.classify(pixels, n);           // top class and its probability per sample
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/precision.hpp"
#include "framework/shape.hpp"

namespace hubel {

class Model {
 public:
  struct Options {
    // An experiment file; empty: the one the checkpoint holds (exported weights hold none).
    std::string experiment;
    std::vector<std::string> sets;  // overrides, as --set path.key=value
    int64_t max_batch = 64;         // rows per forward pass; larger calls go in pieces
    int threads = 0;                // threads of one call (0: the cores this process may use)
    // bf16: the stride-1 convolutions' products on bf16 operands with fp32 sums, where the
    // CPU has AVX512_BF16 (elsewhere fp32); outputs then differ from fp32 by bf16's precision.
    Precision precision = Precision::fp32;
  };
  // `path`: a checkpoint file, a checkpoint directory (its latest whole checkpoint) or
  // exported weights (hubel inspect --export-weights). The experiment's data file is read
  // for its statistics and class names (normalize: file), never for its samples. Throws
  // hubel::Error subclasses naming the file and what is wrong.
  static Model load(const std::string& path, const Options& options);
  static Model load(const std::string& path) { return load(path, Options{}); }

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  // One sample as predict() reads it, e.g. [1, 28, 28]: the stored samples' shape (for a
  // model trained on encoded images, the image resized and cropped to data.size).
  const Shape& input_shape() const;
  // The network's output per sample, e.g. [10].
  const Shape& output_shape() const;
  int64_t outputs() const { return output_shape().numel(); }
  // Class names from the data file (empty when it names none).
  const std::vector<std::string>& class_names() const;
  int64_t parameters() const;

  // y[i] (outputs() floats each) = the network's output (logits) for sample x[i]
  // (input_shape().numel() values each). n >= 0, any size.
  void predict(const float* x, int64_t n, float* y) const;
  void predict(const uint8_t* x, int64_t n, float* y) const;

  struct Class {
    int64_t label = 0;
    float probability = 0;  // softmax of the outputs
  };
  // The most probable class of each sample.
  std::vector<Class> classify(const uint8_t* x, int64_t n) const;
  std::vector<Class> classify(const float* x, int64_t n) const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hubel
