// The Loader: splits each global minibatch across ranks, shuffles by (seed, epoch),
// applies the transforms, and reads ahead on one background thread.
//
// Epoch e's order is a permutation drawn from (seed, e), the same on every rank. Global
// minibatch k is the samples at positions [kB, kB + B) of that order; rank r of W takes
// rows [r m / W, (r + 1) m / W) of its m rows (B / W each for a full batch; B must be a
// multiple of W). The last, smaller minibatch is kept or dropped by option. With
// prefetch > 0 a thread reads and transforms the next minibatches into a ring of
// prefetch + 1 buffers allocated once, while the current one trains.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "datasets/dataset.hpp"
#include "datasets/stream.hpp"
#include "datasets/transform.hpp"
#include "framework/batch_source.hpp"

namespace hubel::datasets {

struct LoaderOptions {
  int64_t batch = 32;  // the global minibatch
  int rank = 0, world = 1;
  bool shuffle = true;
  bool drop_last = false;
  bool augment = false;  // apply the transform's random parts (training only)
  uint64_t seed = 42;
  int prefetch = 2;  // minibatches read ahead; 0 reads synchronously in next()
  // Seconds next() waits for the loader thread before it gives up on it (0: for ever): a
  // read stuck in the file system (or a library's lock) ends the run through stall_stop,
  // naming the data set and the batch, instead of hanging it.
  double timeout_seconds = 600;
  // When set (the global batch's rows per rank): rank r takes rows [r * rows_per_rank,
  // (r + 1) * rows_per_rank) of every minibatch, so a final smaller one leaves the last
  // ranks fewer rows or none; else the minibatch is split evenly.
  int64_t rows_per_rank = 0;
  // Sets stored encoded (image files): the threads that decode and transform a batch's
  // images. 0: TBB's pool, shared with training (at most train.threads at once, the
  // loader thread included); 1: the loader thread alone.
  int decode_threads = 0;
  // A partitioned data set (Dataset::collective()) exchanges rows between the ranks
  // through a channel of this communicator; null: one rank, no MPI.
  comm::Communicator* comm = nullptr;
  // > 0: stream the set (datasets/stream.hpp) through a shuffle buffer of this many
  // samples instead of reading the exact permutation's rows (training sets too large for
  // the ranks' memory); every minibatch is then full.
  int64_t shuffle_buffer = 0;
};

class Loader : public BatchSource {
 public:
  // transform may be null (samples are used as stored). Both must outlive the Loader.
  Loader(const Dataset& data, const Transform* transform, const LoaderOptions& o);
  ~Loader() override;

  std::string name() const override { return data_.name(); }
  Shape sample_shape() const override { return transform_ ? transform_->output_shape() : data_.sample_shape(); }
  int64_t num_classes() const override { return data_.num_classes(); }
  Shape target_shape() const override { return data_.target_shape(); }
  int64_t size() const override { return data_.size(); }
  int64_t batches_per_epoch() const override { return batches_; }
  // The data set's prepare(), on a thread of its own bounded by data.timeout like a
  // batch (with prefetching; without, on this one).
  void prepare() override;
  void start(int64_t epoch, int64_t batch = 0) override;
  bool next(Batch& b) override;

  // The order of an epoch (positions -> sample indices), for tests.
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  const LoaderOptions& options() const { return o_; }
  // The stream of a streamed set (null otherwise).
  const ShuffleStream* stream() const { return stream_.get(); }

 private:
  struct Slot {
    Tensor raw, x, targets;
    std::vector<int32_t> labels;
    std::vector<int64_t> ids;
    std::vector<std::vector<uint8_t>> bytes;  // encoded sets: the files, capacity kept
    Batch batch;
    bool ready = false;
  };
  void fill(Slot& s, int64_t k);
  // Minibatch k's rows of this rank, as stored or transformed-to-be, into x (labels,
  // targets): a collective read for a partitioned set.
  void read_rows(int64_t k, TensorView x, int32_t* labels, TensorView targets);
  // Minibatch k's rows in all, rank r's first row of m (r = world: m), and this rank's
  // rows of minibatch k (and its first).
  int64_t rows_in(int64_t k) const;
  int64_t bound(int64_t m, int r) const;
  int64_t rows_of(int64_t k, int64_t* begin) const;
  // Epoch `epoch`'s order of the samples into order (sized to them).
  void permute(int64_t epoch, std::vector<int64_t>& order) const;
  // Encoded sets: decode and transform s.bytes' rows into x.
  void decode(Slot& s, std::span<const int64_t> ids, TensorView x) const;
  void stop();
  void produce(int64_t first, int64_t end);

  const Dataset& data_;
  const Transform* transform_;
  LoaderOptions o_;
  int64_t batches_ = 0, local_max_ = 0;
  int64_t epoch_ = 0, next_ = 0, end_ = 0;
  std::vector<int64_t> order_;
  std::vector<Slot> slots_;
  int64_t held_ = -1;  // the slot the consumer holds
  // Prefetching.
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::exception_ptr error_;
  // Partitioned sets: every rank takes part in the same exchanges, so a loader thread
  // stopped early (a run that ends mid-epoch) first takes part in those of every
  // minibatch before drain_to_, which the other ranks' threads may have reached: the
  // batches a thread can have started, next_ + slots at most, a number every rank agrees on.
  std::unique_ptr<comm::Exchanger> exchanger_;
  ExchangeScratch scratch_;
  std::vector<int64_t> bounds_;
  Tensor drain_x_;
  std::vector<int32_t> drain_labels_;
  int64_t drain_to_ = 0;
  std::unique_ptr<ShuffleStream> stream_;
};

}  // namespace hubel::datasets
