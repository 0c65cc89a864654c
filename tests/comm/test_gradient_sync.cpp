// GradientSync's communication thread without MPI: a fake two-rank communicator whose
// allreduce doubles the data (two identical ranks) after a pause, so buckets are still in
// flight while the main thread issues more and asks for side reductions. Built also under
// ThreadSanitizer by the test command.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "comm/gradient_sync.hpp"

namespace hubel::comm {

namespace {

class TwinCommunicator final : public Communicator {
 public:
  std::unique_ptr<Exchanger> exchanger(bool) override { throw Error("no exchanger"); }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::unique_ptr<GradientExchange> gradient_exchange(int64_t arena, int64_t bucket) override {
    return std::make_unique<GradientSync>(*this, arena, bucket);
  }
  void allreduce_sum(std::span<float> data) override {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    for (auto& v : data) v *= 2;
    calls.fetch_add(1);
  }
  void allreduce_sum(std::span<double> data) override {
    for (auto& v : data) v *= 2;
    side_calls.fetch_add(1);
  }
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<double>, int) override {}
  void barrier() override {}
  Request start_allreduce_sum(std::span<float> data) override {
    allreduce_sum(data);
    return 0;
  }
  bool test(Request) override { return true; }
  bool allows_worker_thread() const override { return worker; }
  bool worker = true;
  std::atomic<int> calls{0}, side_calls{0};
};

}  // namespace

TEST(GradientSyncThread, BucketsAndSideReductionsInterleaveCorrectly) {
  for (bool worker : {true, false}) {
    TwinCommunicator comm;
    comm.worker = worker;
    const int64_t P = GradientSync::kPiece, size = 5 * P + 123;
    std::vector<float> grads(static_cast<size_t>(size));
    GradientSync sync(comm, size, P);  // one piece per bucket: six buckets
    for (int step = 0; step < 5; ++step) {
      for (int64_t i = 0; i < size; ++i) grads[static_cast<size_t>(i)] = static_cast<float>(i % 1000 + step);
      sync.begin(grads, step);
      std::vector<double> stats{1.0, 2.0};
      for (int64_t prefix = 0; prefix <= size; prefix += P / 2) {
        sync.ready(prefix);
        sync.reduce(stats);  // while earlier buckets may still be in flight
      }
      sync.finish();
      for (int64_t i = 0; i < size; i += 997)
        ASSERT_EQ(grads[static_cast<size_t>(i)], 2.0f * static_cast<float>(i % 1000 + step)) << i;
      ASSERT_EQ(grads.back(), 2.0f * static_cast<float>((size - 1) % 1000 + step));
      EXPECT_EQ(stats[0], std::pow(2.0, static_cast<double>((size + P / 2) / (P / 2))));
    }
    EXPECT_EQ(comm.calls.load(), 5 * 6);
  }
}

}  // namespace hubel::comm
