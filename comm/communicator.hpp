// The Communicator interface the Trainer talks to. Only comm/ knows about MPI: every unit
// test and a one-machine run use the single-process implementation.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>

#include "framework/gradient_exchange.hpp"

namespace hubel::comm {

// What this thread is waiting on the other ranks for, named for the stall watchdog's
// message ("gradient allreduce, bucket 3 of 5"). Set around a collective by whoever knows
// what it is for; plain data, no allocation (it is set in every step).
struct Activity {
  const char* what = "a collective operation";
  int64_t index = -1, count = -1;  // "bucket index of count" when count > 0
};
inline thread_local Activity t_activity;

class ScopedActivity {
 public:
  explicit ScopedActivity(const char* what, int64_t index = -1, int64_t count = -1) : saved_(t_activity) {
    t_activity = {what, index, count};
  }
  ~ScopedActivity() { t_activity = saved_; }
  ScopedActivity(const ScopedActivity&) = delete;
  ScopedActivity& operator=(const ScopedActivity&) = delete;

 private:
  Activity saved_;
};

// Rows of bytes sent between every pair of ranks on a channel of its own (a partitioned
// data set's samples, datasets/hdf5_dataset.hpp): one Exchanger per loader, used by one
// thread at a time (the loader's), concurrently with the gradient allreduce on others.
class Exchanger {
 public:
  virtual ~Exchanger() = default;
  // Rank r sends send_rows[d] rows of row_bytes to each rank d (send: rank 0's rows, then
  // rank 1's, ...) and receives recv_rows[s] rows from each rank s into recv, in the same
  // layout. Both arrays have size() entries. Blocking; the watchdog bounds the wait.
  virtual void alltoallv(const uint8_t* send, const int64_t* send_rows, uint8_t* recv, const int64_t* recv_rows,
                         int64_t row_bytes) = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The ranks on this rank's node (sharing its memory).
  virtual int node_size() const { return 1; }
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  // In place: every rank ends with root's data.
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<double> data, int root) = 0;
  virtual void barrier() = 0;
  // Ordered sums (exact training, docs/many-ranks.md): from now on every sum over ranks is
  // grouped in one fixed binary tree over the ranks, ((r0 + r1) + (r2 + r3)) + ..., so
  // the result does not depend on the library's algorithm; needs a power-of-two number
  // of ranks.
  virtual void set_ordered(bool /*on*/) {}

  // Non-blocking allreduce-sum in place. The data must stay untouched until the request
  // completes; requests complete in any order but must be started in the same order on
  // every rank.
  using Request = int64_t;
  virtual Request start_allreduce_sum(std::span<float> data) = 0;
  // Progresses communication; true when the request is complete (it is then released).
  virtual bool test(Request r) = 0;
  // Progresses every pending request once (lets MPI move data while backward computes).
  virtual void progress() {}
  // May one other thread make the blocking calls while this one computes (never both at
  // once)? MPI: when initialized with MPI_THREAD_SERIALIZED or better.
  virtual bool allows_worker_thread() const { return false; }

  // The gradient arena's sum over ranks, overlapped with backward (comm::GradientSync,
  // buckets of about bucket_floats). Every member is pure or inline, so the interface
  // costs its users no link dependency on comm/ (framework/ uses it without linking it).
  virtual std::unique_ptr<GradientExchange> gradient_exchange(int64_t arena_floats, int64_t bucket_floats) = 0;

  // A channel for exchanging rows (collective: every rank creates its exchangers in the
  // same order). Throws when MPI cannot let the loader thread use it (no
  // MPI_THREAD_MULTIPLE); single_thread: it will be used on the main thread only.
  virtual std::unique_ptr<Exchanger> exchanger(bool single_thread) = 0;

  // The stall watchdog: any wait on other ranks longer than `seconds` (0: no limit) prints
  // which rank, step and operation waited and stops the whole job, without needing the
  // waiting code to return. note_step names the step in that message.
  virtual void set_timeout(double /*seconds*/) {}
  virtual void note_step(int64_t /*step*/) {}
  // Marks a wait that is not one blocking call (a loop testing requests) for the watchdog.
  class Wait;
  virtual void begin_wait() {}
  virtual void end_wait() {}
};

// RAII over begin_wait/end_wait.
class Communicator::Wait {
 public:
  explicit Wait(Communicator& c) : c_(c) { c_.begin_wait(); }
  ~Wait() { c_.end_wait(); }
  Wait(const Wait&) = delete;
  Wait& operator=(const Wait&) = delete;

 private:
  Communicator& c_;
};

// One process, no MPI: reductions and broadcasts are identities.
class LocalCommunicator final : public Communicator {
 public:
  // Nothing to exchange with one rank.
  struct NoExchange final : GradientExchange {
    void begin(std::span<float>, int64_t) override {}
    void ready(int64_t) override {}
    void reduce(std::span<double>) override {}
    void finish() override {}
  };
  std::unique_ptr<GradientExchange> gradient_exchange(int64_t, int64_t) override {
    return std::make_unique<NoExchange>();
  }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<double>, int) override {}
  void barrier() override {}
  Request start_allreduce_sum(std::span<float>) override { return 0; }
  bool test(Request) override { return true; }
  // One rank: what it sends itself.
  struct SelfExchanger final : Exchanger {
    void alltoallv(const uint8_t* send, const int64_t* send_rows, uint8_t* recv, const int64_t*,
                   int64_t row_bytes) override {
      if (send_rows[0] > 0) std::copy(send, send + send_rows[0] * row_bytes, recv);
    }
  };
  std::unique_ptr<Exchanger> exchanger(bool) override { return std::make_unique<SelfExchanger>(); }
};

}  // namespace hubel::comm
