// GradientSync: the gradient arena's allreduce, cut into buckets that start while backward
// is still running. Backward fills the arena from offset 0 (the Net lays out the last
// layer's parameters first); when the filled prefix covers a bucket, that bucket's
// non-blocking allreduce starts, and the next layers' backward overlaps it. finish()
// starts what is left and waits for everything.
//
// Every element is reduced by an allreduce call of the same size at the same offset,
// whatever the bucket size: the arena is cut into fixed pieces of kPiece floats and a
// bucket is a run of whole pieces (one call per piece). MPI's reduction order for an
// element then depends only on the number of ranks, so results are bitwise the same for
// any bucket size and any thread count. Buckets start in arena order on every rank.
//
// Header-only over the Communicator interface, so the Trainer can use it without MPI.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.hpp"
#include "framework/error.hpp"

namespace hubel::comm {

class GradientSync {
 public:
  static constexpr int64_t kPiece = 32768;  // floats per allreduce call (128 KiB)
  // bucket_floats is rounded up to whole pieces. timeout_seconds: how long a rank waits for
  // a bucket before it reports which one and gives up (0: forever).
  GradientSync(Communicator& comm, int64_t arena_size, int64_t bucket_floats, double timeout_seconds = 0)
      : comm_(comm), size_(arena_size), timeout_(timeout_seconds) {
    const int64_t pieces_per_bucket = std::max<int64_t>(1, (bucket_floats + kPiece - 1) / kPiece);
    bucket_ = pieces_per_bucket * kPiece;
    const int64_t pieces = (size_ + kPiece - 1) / kPiece;
    requests_.assign(static_cast<size_t>(pieces), -1);
  }
  int64_t bucket_floats() const { return bucket_; }
  int64_t buckets() const { return (size_ + bucket_ - 1) / bucket_; }

  // A new step over this gradient arena.
  void begin(std::span<float> grads, int64_t step) {
    if (static_cast<int64_t>(grads.size()) != size_) throw Error("GradientSync: the arena changed size");
    grads_ = grads;
    step_ = step;
    started_ = 0;
  }
  // Gradients [0, prefix) are final: start every bucket that lies inside.
  void ready(int64_t prefix) {
    if (comm_.size() == 1) return;
    while (started_ < buckets() && std::min(size_, (started_ + 1) * bucket_) <= prefix) start(started_++);
    comm_.progress();
  }
  // Starts the remaining buckets and waits for all of them.
  void finish() {
    if (comm_.size() == 1) return;
    while (started_ < buckets()) start(started_++);
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t p = 0; p < requests_.size(); ++p) {
      while (!comm_.test(requests_[p])) {
        if (timeout_ > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_)
          throw Error(cat("rank ", comm_.rank(), " waited more than ", timeout_, " s for the gradients of step ", step_ + 1,
                          ", bucket ", static_cast<int64_t>(p) * kPiece / bucket_, " of ", buckets(),
                          ": another rank is stuck or dead (train.comm_timeout sets this limit)"));
      }
      requests_[p] = -1;
    }
  }

 private:
  void start(int64_t bucket) {
    const int64_t begin = bucket * bucket_, end = std::min(size_, begin + bucket_);
    for (int64_t b = begin; b < end; b += kPiece) {
      const int64_t e = std::min(end, b + kPiece);
      requests_[static_cast<size_t>(b / kPiece)] = comm_.start_allreduce_sum(grads_.subspan(static_cast<size_t>(b), static_cast<size_t>(e - b)));
    }
  }

  Communicator& comm_;
  int64_t size_ = 0, bucket_ = kPiece;
  double timeout_ = 0;
  std::span<float> grads_;
  int64_t step_ = 0, started_ = 0;
  std::vector<Communicator::Request> requests_;
};

}  // namespace hubel::comm
