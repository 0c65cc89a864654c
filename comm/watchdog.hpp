// The stall watchdog: a thread that watches every wait on other ranks (each blocking
// collective, each loop waiting for requests) and, when one lasts longer than the timeout,
// reports which rank, step and operation waited and stops the job through a callback that
// does not return (MPI_Abort). It needs nothing from the stuck thread: a rank stopped with
// SIGSTOP or a dead link ends the job within the timeout plus a few seconds, instead of a
// destructor joining a thread blocked in MPI forever.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "comm/communicator.hpp"

namespace hubel::comm {

class Watchdog {
 public:
  // on_stall gets the message and must end the process.
  Watchdog(int rank, double timeout_seconds, std::function<void(const std::string&)> on_stall);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_timeout(double seconds) { timeout_ms_.store(static_cast<int64_t>(seconds * 1000)); }
  void note_step(int64_t step) { step_.store(step); }
  // This thread starts (or stops) waiting on the other ranks for t_activity.
  void begin();
  void end();
  // The message for a wait of `waited_ms` on this activity (also used by tests).
  std::string message(const Activity& a, int64_t waited_ms) const;

 private:
  struct Slot {
    std::atomic<int64_t> since_ms{0};  // 0: not waiting
    std::atomic<const char*> what{nullptr};
    std::atomic<int64_t> index{-1}, count{-1};
    std::atomic<int> depth{0};
  };
  Slot* slot();  // this thread's
  void run();

  int rank_;
  std::atomic<int64_t> timeout_ms_, step_{-1};
  std::function<void(const std::string&)> on_stall_;
  std::array<Slot, 8> slots_;
  std::atomic<int> used_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace hubel::comm
