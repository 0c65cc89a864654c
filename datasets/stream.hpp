// Streaming a split too large for the ranks' memory: whole runs of storage read in
// sequence and a shuffle buffer, in place of the exact global permutation.
//
// The split is cut into runs of whole HDF5 chunks (about 4 MiB each). Epoch e deals the
// runs, in an order drawn from (seed, e), to the ranks in turn; each rank reads its runs
// one after the other and draws its rows of each minibatch from a buffer of `buffer`
// samples (take a random one, put the next sample read in its place), as tf.data's and
// WebDataset's shuffle buffers do. The order is a pure function of (seed, epoch, rank,
// ranks): a resumed run draws the same samples, but another number of ranks draws
// others. Every rank draws the same number of minibatches, those its smallest share of an
// epoch fills; the rest of a share is left for that epoch.
#pragma once

#include <cstdint>
#include <vector>

#include "datasets/dataset.hpp"
#include "framework/random.hpp"

namespace hubel::datasets {

class ShuffleStream {
 public:
  struct Options {
    int64_t buffer = 10000;  // samples in the shuffle buffer
    int64_t rows = 1;        // this rank's rows of each minibatch
    uint64_t seed = 42;
    int rank = 0, world = 1;
    int64_t run_bytes = int64_t{4} << 20;  // the size of a run (rounded to whole chunks)
  };
  // data must give its samples as stored (Dataset::stored_bytes) and outlive the stream.
  ShuffleStream(const Dataset& data, const Options& o);
  int64_t batches_per_epoch() const { return batches_; }
  int64_t buffer_samples() const { return buffer_; }
  int64_t run_rows() const { return run_; }
  // Positions the stream after `skip` draws of epoch `epoch` (reading what the buffer
  // holds then).
  void start(int64_t epoch, int64_t skip);
  // The next `count` draws: the samples as floats (stored values), indices and labels.
  void next(int64_t count, float* x, int64_t* ids, int32_t* labels);
  // Bytes read from the file since construction.
  int64_t bytes_read() const { return bytes_read_; }

 private:
  int64_t stream_id(int64_t pos);  // the sample at position pos of this rank's stream
  void load_run(size_t r);

  const Dataset& data_;
  Options o_;
  int64_t n_ = 0, row_bytes_ = 0, run_ = 0, runs_ = 0, batches_ = 0, buffer_ = 0;
  // This epoch: this rank's runs and where each starts in its stream.
  std::vector<int64_t> my_runs_, starts_;
  int64_t length_ = 0, pos_ = 0, size_ = 0;
  size_t run_at_ = 0;
  int64_t loaded_ = -1;  // the run in run_bytes_/run_labels_
  Rng rng_{0};
  std::vector<int64_t> slot_ids_, run_ids_;
  std::vector<int32_t> slot_labels_, run_labels_;
  std::vector<uint8_t> slots_, run_data_;
  int64_t bytes_read_ = 0;
};

}  // namespace hubel::datasets
