// The BatchSource interface the Trainer reads minibatches from: this rank's rows of each
// global minibatch of an epoch, in an order that is a pure function of (seed, epoch).
// datasets::Loader implements it (sharding, shuffling, transforms, prefetching). It lives in
// framework/ so that the Trainer depends on an interface it owns, not on datasets/.
#pragma once

#include <cstdint>
#include <string>

#include "framework/shape.hpp"
#include "framework/tensor.hpp"

namespace hubel {

// One rank's share of one global minibatch. Views stay valid until the next call to
// next() or start().
struct Batch {
  ConstTensorView x;                // [rows, sample...]
  const int32_t* labels = nullptr;  // rows labels, or null when the data has target values
  ConstTensorView targets;          // [rows, target...] for regression data
  int64_t rows = 0;                 // this rank's rows (may be 0 in a small last batch)
  int64_t rows_global = 0;          // rows of the global minibatch
  int64_t index = 0;                // the minibatch's number within the epoch
  int64_t first_sample = 0;         // position in the epoch of this rank's first row
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::string name() const = 0;
  // Samples as the network sees them (after transforms).
  virtual Shape sample_shape() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual Shape target_shape() const { return {}; }
  // Samples in the data set, and minibatches in one epoch.
  virtual int64_t size() const = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // The one-time work before the first epoch (a resident split read into memory), so that
  // the epochs' clocks count training only; start() and next() do it when not asked.
  virtual void prepare() {}
  // Positions the source at minibatch `batch` of `epoch` (0, 0 for the start).
  virtual void start(int64_t epoch, int64_t batch = 0) = 0;
  // The next minibatch of the epoch; false when the epoch is done.
  virtual bool next(Batch& b) = 0;
};

}  // namespace hubel
