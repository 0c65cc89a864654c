// The Communicator interface the Trainer talks to. Only comm/ knows about MPI: every unit
// test and a one-machine run use the single-process implementation.
#pragma once

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
  virtual void barrier() = 0;
};

// One process, no MPI: reductions and broadcasts are identities.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void broadcast(std::span<float>, int) override {}
  void barrier() override {}
};

}  // namespace hubel::comm
