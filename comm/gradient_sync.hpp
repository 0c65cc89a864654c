// GradientSync: the gradient arena's allreduce, cut into buckets that start while backward
// is still running. Backward fills the arena from offset 0 (the Net lays out the last
// layer's parameters first); when the filled prefix covers a bucket, that bucket's
// allreduce starts, and the next layers' backward overlaps it. finish() starts what is
// left and waits for everything.
//
// The allreduces run on one communication thread making blocking MPI_Allreduce calls
// (Open MPI's tuned blocking collectives measured twice as fast here as its non-blocking
// MPI_Iallreduce, see bench/bench_allreduce.cpp); if MPI cannot allow that thread, the
// buckets go out as non-blocking requests progressed from the main thread.
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
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "comm/communicator.hpp"
#include "framework/error.hpp"
#include "framework/gradient_exchange.hpp"

namespace hubel::comm {

class GradientSync final : public GradientExchange {
 public:
  static constexpr int64_t kPiece = int64_t{1} << 18;  // floats per allreduce call (1 MiB)
  // bucket_floats is rounded up to whole pieces. A wait that lasts too long is the
  // communicator's watchdog's to end (Communicator::set_timeout): every wait here is
  // labelled with its bucket for that message.
  GradientSync(Communicator& comm, int64_t arena_size, int64_t bucket_floats) : comm_(comm), size_(arena_size) {
    const int64_t pieces_per_bucket = std::max<int64_t>(1, (bucket_floats + kPiece - 1) / kPiece);
    bucket_ = pieces_per_bucket * kPiece;
    requests_.assign(static_cast<size_t>((size_ + kPiece - 1) / kPiece), -1);
    if (comm_.size() > 1 && comm_.allows_worker_thread()) worker_ = std::thread([this] { work(); });
  }
  ~GradientSync() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  int64_t bucket_floats() const { return bucket_; }
  int64_t buckets() const { return (size_ + bucket_ - 1) / bucket_; }

  // A new step over this gradient arena.
  void begin(std::span<float> grads, int64_t step) override {
    if (static_cast<int64_t>(grads.size()) != size_) throw Error("GradientSync: the arena changed size");
    std::lock_guard<std::mutex> lock(mutex_);
    grads_ = grads;
    step_ = step;
    issued_ = done_ = 0;
    error_ = nullptr;
  }
  // Gradients [0, prefix) are final: start every bucket that lies inside.
  void ready(int64_t prefix) override {
    if (comm_.size() == 1) return;
    int64_t inside = std::min(buckets(), prefix >= size_ ? buckets() : prefix / bucket_);
    if (worker_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (inside <= issued_) return;
        issued_ = inside;
      }
      cv_.notify_all();
    } else {
      while (issued_ < inside) start(issued_++);
      comm_.progress();
    }
  }
  // A small blocking allreduce (layer statistics such as synchronized batch norm's) in
  // the middle of a step. It goes through the same thread as the buckets, after those
  // already started, so every rank makes its MPI calls in the same order.
  void reduce(std::span<double> data) override {
    if (comm_.size() == 1) return;
    if (!worker_.joinable()) {
      ScopedActivity act(kStatistics);
      comm_.allreduce_sum(data);
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    side_ = data;
    side_pending_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !side_pending_ || error_; });
    if (error_) std::rethrow_exception(error_);
  }
  // Starts the remaining buckets and waits for all of them.
  void finish() override {
    if (comm_.size() == 1) return;
    ready(size_);
    if (worker_.joinable()) {
      // The worker's MPI calls are the watched waits.
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return done_ >= buckets() || error_; });
      if (error_) std::rethrow_exception(error_);
      return;
    }
    for (size_t p = 0; p < requests_.size(); ++p) {
      ScopedActivity act(kBucket, static_cast<int64_t>(p) * kPiece / bucket_ + 1, buckets());
      Communicator::Wait wait(comm_);
      while (!comm_.test(requests_[p])) {
      }
      requests_[p] = -1;
    }
  }

 private:
  static constexpr const char* kBucket = "the gradient allreduce, bucket";
  static constexpr const char* kStatistics = "a layer's cross-rank statistics (batch norm)";
  std::span<float> piece(int64_t begin) const {
    return grads_.subspan(static_cast<size_t>(begin), static_cast<size_t>(std::min(size_, begin + kPiece) - begin));
  }
  void start(int64_t bucket) {
    const int64_t begin = bucket * bucket_, end = std::min(size_, begin + bucket_);
    for (int64_t b = begin; b < end; b += kPiece)
      requests_[static_cast<size_t>(b / kPiece)] = comm_.start_allreduce_sum(piece(b));
  }
  // The communication thread: reduces issued buckets in order, piece by piece, and a
  // side request once every bucket issued before it is done (the main thread issues
  // nothing while it waits for the side request).
  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    // Runs one job without the lock; an exception is kept for the main thread.
    auto run = [&](auto&& job) {
      lock.unlock();
      try {
        job();
      } catch (...) {
        lock.lock();
        error_ = std::current_exception();
        cv_.notify_all();
        return false;
      }
      lock.lock();
      return true;
    };
    while (true) {
      cv_.wait(lock, [&] { return quit_ || done_ < issued_ || side_pending_; });
      if (quit_) return;
      if (done_ == issued_ && side_pending_) {
        run([&] {
          ScopedActivity act(kStatistics);
          comm_.allreduce_sum(side_);
        });  // done either way: a failure is in error_
        side_pending_ = false;
        cv_.notify_all();
        continue;
      }
      const int64_t bucket = done_;
      const bool ok = run([&] {
        ScopedActivity act(kBucket, bucket + 1, buckets());
        const int64_t begin = bucket * bucket_, end = std::min(size_, begin + bucket_);
        for (int64_t b = begin; b < end; b += kPiece) comm_.allreduce_sum(piece(b));
      });
      if (!ok) continue;
      done_ = bucket + 1;
      cv_.notify_all();
    }
  }

  Communicator& comm_;
  int64_t size_ = 0, bucket_ = kPiece;
  std::span<float> grads_;
  int64_t step_ = 0, issued_ = 0, done_ = 0;
  std::vector<Communicator::Request> requests_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool quit_ = false;
  std::span<double> side_;
  bool side_pending_ = false;
  std::exception_ptr error_;
};

}  // namespace hubel::comm
