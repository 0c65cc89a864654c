// The Dataset interface the Trainer reads from: random access to samples by index.
// Implementations: generated sets (spirals) and, in datasets/, the HDF5 reader.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/shape.hpp"
#include "framework/tensor.hpp"

namespace hubel::datasets {

class Dataset {
 public:
  virtual ~Dataset() = default;
  // Names the data in messages: "spirals(train)", "data/fmnist.h5:/train".
  virtual std::string name() const = 0;
  virtual int64_t size() const = 0;
  virtual Shape sample_shape() const = 0;
  // Number of classes of the labels; 0 when samples have target values instead.
  virtual int64_t num_classes() const = 0;
  // Names of the classes (for reports), or empty when the source has none.
  virtual std::vector<std::string> class_names() const { return {}; }
  // Per-sample shape of target values (regression); empty when there are labels.
  virtual Shape target_shape() const { return {}; }
  // Row i of x (and labels[i], or row i of targets) gets sample idx[i]. x has idx.size()
  // rows; labels is null or targets empty when the set has none of that kind.
  virtual void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const = 0;
  // labels[i] = the label of sample idx[i]: a read() without the samples where the set
  // keeps its labels apart.
  virtual void read_labels(std::span<const int64_t> idx, int32_t* labels) const {
    Tensor x(sample_shape().with_batch(static_cast<int64_t>(idx.size())));
    read(idx, x.view(), labels, TensorView());
  }
  // Sets stored as image files (PNG, JPEG; datasets/encoded_images.hpp) say so and give
  // the files' bytes: the loader decodes each at full resolution and transforms it
  // (Transform::apply_image) on TBB threads. bytes[i] (its capacity kept) gets the file of
  // sample idx[i], labels[i] its label.
  virtual bool encoded() const { return false; }
  virtual void read_encoded(std::span<const int64_t>, std::vector<std::vector<uint8_t>>&, int32_t*) const {
    throw std::logic_error(name() + ": not stored encoded");
  }
};

}  // namespace hubel::datasets
