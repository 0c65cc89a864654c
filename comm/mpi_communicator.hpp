// Communicator over MPI (Open MPI). The only place in hubel that includes <mpi.h>.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

namespace hubel::comm {

class MpiCommunicator final : public Communicator {
 public:
  // Initializes MPI asking for MPI_THREAD_SERIALIZED: the gradient sync's communication
  // thread, the main thread and a partitioned data set's loader thread call MPI, one at a
  // time (a lock; only the loader's calls overlap the others', and they never block).
  // (MPI_THREAD_MULTIPLE is not needed for that, nor its cost on every call.)
  MpiCommunicator(int* argc, char*** argv);
  ~MpiCommunicator() override;  // MPI_Finalize
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int node_size() const override { return node_size_; }
  void allreduce_sum(std::span<float> data) override;
  void allreduce_sum(std::span<double> data) override;
  void broadcast(std::span<float> data, int root) override;
  void broadcast(std::span<double> data, int root) override;
  void barrier() override;
  void set_ordered(bool on) override;
  Request start_allreduce_sum(std::span<float> data) override;
  bool test(Request r) override;
  void progress() override;
  bool allows_worker_thread() const override { return serialized_; }
  std::unique_ptr<GradientExchange> gradient_exchange(int64_t arena_floats, int64_t bucket_floats) override;
  void set_timeout(double seconds) override;
  void note_step(int64_t step) override;
  void begin_wait() override;
  void end_wait() override;
  std::unique_ptr<Exchanger> exchanger(bool single_thread) override;
  // Stops every rank (after an error on one, so that the others do not wait forever).
  [[noreturn]] void abort(int code);

 private:
  int rank_ = 0, size_ = 1, node_size_ = 1;
  bool serialized_ = false;
  std::recursive_mutex mutex_;  // held around every MPI call
  bool ordered_ = false;
  std::vector<float> tmp_float_;  // the ordered allreduce's scratch
  std::vector<double> tmp_double_;
  struct Pending;  // the MPI requests in flight
  std::unique_ptr<Pending> pending_;
  std::unique_ptr<class Watchdog> watchdog_;  // with more than one rank
  // Tests only: HUBEL_TEST_STALL=RANK:WHAT:N stops (SIGSTOP) rank RANK before its N-th
  // wait whose activity names WHAT, to show that the others do not hang.
  int stall_rank_ = -1;
  std::string stall_what_;
  int64_t stall_at_ = 0;
  std::atomic<int64_t> stall_seen_{0};
};

// True when this process was started by mpirun/srun (Open MPI, PMI or PMIx variables).
bool launched_by_mpi();

// An MpiCommunicator when launched by mpirun or srun, else a LocalCommunicator: a plain
// `hubel train` needs no MPI initialization.
std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv);

}  // namespace hubel::comm
