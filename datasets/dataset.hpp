// The Dataset interface the Trainer reads from: random access to samples by index.
// Implementations: generated sets (spirals) and, in datasets/, the HDF5 reader.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "framework/shape.hpp"
#include "framework/tensor.hpp"

namespace hubel::datasets {

// The buffers a collective read reuses (the caller's, one per loader).
struct ExchangeScratch {
  std::vector<uint8_t> send, recv;
  std::vector<int64_t> send_rows, recv_rows, cursor;
  std::vector<int64_t> mapped;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  // Names the data in messages: "spirals(train)", "data/fmnist.h5:/train".
  virtual std::string name() const = 0;
  // The one-time work before the first read, so that an epoch's clock does not count it:
  // a resident split reads itself into memory. Reads do it themselves when not asked.
  virtual void prepare() const {}
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
  // Samples as stored, unconverted (uint8, or float32 when stored_float()), for the data
  // paths that move or buffer them: stored_bytes() per sample, 0 when the set cannot.
  virtual int64_t stored_bytes() const { return 0; }
  virtual bool stored_float() const { return false; }
  virtual void read_stored(std::span<const int64_t>, uint8_t*, int32_t*) const {
    throw std::logic_error(name() + ": cannot give its samples as stored");
  }
  // Samples per unit of storage (an HDF5 chunk): runs of this many read sequentially; 0: any.
  virtual int64_t storage_rows() const { return 0; }
  // A partitioned set (datasets/hdf5_dataset.hpp: each rank holds a part of the split) is
  // read collectively: every rank calls read_global with the same ids (a whole global
  // minibatch) and bounds (size() + 1 offsets: rank r's rows are ids[bounds[r],
  // bounds[r + 1])); x and labels get this rank's rows, the other ranks' rows held here
  // go to them through ex. Other sets read this rank's rows alone.
  virtual bool collective() const { return false; }
  virtual void read_global(std::span<const int64_t> ids, std::span<const int64_t> bounds, int rank,
                           comm::Exchanger* /*ex*/, ExchangeScratch& /*scratch*/, TensorView x, int32_t* labels,
                           TensorView targets) const {
    const auto b = static_cast<size_t>(bounds[static_cast<size_t>(rank)]);
    const auto e = static_cast<size_t>(bounds[static_cast<size_t>(rank) + 1]);
    read(ids.subspan(b, e - b), x, labels, targets);
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
