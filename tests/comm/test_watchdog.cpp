// The stall watchdog without MPI: a wait longer than the timeout is reported with the
// rank, the step and the activity, from the watchdog's own thread while the waiting
// thread is still stuck; waits that end in time, and nested waits, are not. Built also
// under ThreadSanitizer by the test command.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "comm/watchdog.hpp"

namespace hubel::comm {

namespace {
struct Seen {
  std::mutex m;
  std::string message;
  std::atomic<int> count{0};
};
}  // namespace

TEST(Watchdog, AWaitPastTheTimeoutIsReportedWhileItIsStillStuck) {
  Seen seen;
  Watchdog w(3, 0.2, [&](const std::string& m) {
    std::lock_guard<std::mutex> g(seen.m);
    if (seen.count++ == 0) seen.message = m;
  });
  w.note_step(7);
  std::atomic<bool> release{false};
  std::thread stuck([&] {
    ScopedActivity act("the gradient allreduce, bucket", 2, 5);
    w.begin();
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a call that does not return
    w.end();
  });
  const auto t0 = std::chrono::steady_clock::now();
  while (seen.count == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  release = true;
  stuck.join();
  ASSERT_GE(seen.count.load(), 1);
  EXPECT_GE(took, 0.2);
  EXPECT_LT(took, 1.0);
  std::lock_guard<std::mutex> g(seen.m);
  EXPECT_NE(seen.message.find("rank 3 waited 0."), std::string::npos) << seen.message;
  EXPECT_NE(
      seen.message.find(" s for the other ranks in the gradient allreduce, bucket 2 of 5 at step 8: a rank is stuck"),
      std::string::npos)
      << seen.message;
  EXPECT_NE(seen.message.find("train.comm_timeout = 0.2 s"), std::string::npos) << seen.message;
}

// Two threads stuck 10 ms apart are, at the first poll past the limit, usually both past
// it: the one that began first is named (the later one waits because of it), not the
// one whose slot comes first.
TEST(Watchdog, OfTwoStuckWaitsTheOneThatBeganFirstIsReported) {
  Seen seen;
  Watchdog w(0, 0.2, [&](const std::string& m) {
    std::lock_guard<std::mutex> g(seen.m);
    if (seen.count++ == 0) seen.message = m;
  });
  std::atomic<bool> release{false}, first_waits{false};
  std::atomic<int> registered{0};
  // "later" takes the first slot (a wait that ends at once), then waits after "first".
  std::thread later([&] {
    w.begin();
    w.end();
    registered = 1;
    while (!first_waits) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ScopedActivity act("the per-step agreement on signals and checkpoints");
    w.begin();
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    w.end();
  });
  std::thread first([&] {
    while (registered == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ScopedActivity act("the partitioned store's data exchange");
    w.begin();
    first_waits = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    w.end();
  });
  const auto t0 = std::chrono::steady_clock::now();
  while (seen.count == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  release = true;
  later.join();
  first.join();
  ASSERT_GE(seen.count.load(), 1);
  std::lock_guard<std::mutex> g(seen.m);
  EXPECT_NE(seen.message.find("in the partitioned store's data exchange"), std::string::npos) << seen.message;
}

TEST(Watchdog, WaitsThatEndInTimeAndNestedWaitsAreNotReported) {
  std::atomic<int> count{0};
  Watchdog w(0, 0.3, [&](const std::string&) { ++count; });
  for (int i = 0; i < 20; ++i) {
    ScopedActivity act("the checkpoint barrier");
    w.begin();
    w.begin();  // nested: the outer one counts
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    w.end();
    w.end();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // nothing in progress now
  EXPECT_EQ(count.load(), 0);
  w.set_timeout(0);  // no limit
  w.begin();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  w.end();
  EXPECT_EQ(count.load(), 0);
}

}  // namespace hubel::comm
