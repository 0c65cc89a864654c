// The Communicator interface the Trainer talks to. Only comm/ knows about MPI: every unit
// test and a one-machine run use the single-process implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace hubel::comm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  // In place: every rank ends with root's data.
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<double> data, int root) = 0;
  virtual void barrier() = 0;

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
};

// One process, no MPI: reductions and broadcasts are identities.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<double>, int) override {}
  void barrier() override {}
  Request start_allreduce_sum(std::span<float>) override { return 0; }
  bool test(Request) override { return true; }
};

}  // namespace hubel::comm
