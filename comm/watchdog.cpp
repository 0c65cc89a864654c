// The stall watchdog.
#include "comm/watchdog.hpp"

#include <chrono>

#include "framework/error.hpp"

namespace hubel::comm {

namespace {
int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
             .count() +
         1;
}
}  // namespace

Watchdog::Watchdog(int rank, double timeout_seconds, std::function<void(const std::string&)> on_stall)
    : rank_(rank), timeout_ms_(static_cast<int64_t>(timeout_seconds * 1000)), on_stall_(std::move(on_stall)) {
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> g(mutex_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();  // the watchdog itself never waits on MPI
}

Watchdog::Slot* Watchdog::slot() {
  thread_local Watchdog* owner = nullptr;
  thread_local Slot* mine = nullptr;
  if (owner != this) {
    const int i = used_.fetch_add(1);
    mine = i < static_cast<int>(slots_.size()) ? &slots_[static_cast<size_t>(i)] : nullptr;
    owner = this;
  }
  return mine;
}

void Watchdog::begin() {
  Slot* s = slot();
  if (!s || s->depth.fetch_add(1) > 0) return;  // a wait inside a wait: the outer one counts
  s->what.store(t_activity.what);
  s->index.store(t_activity.index);
  s->count.store(t_activity.count);
  s->since_ms.store(now_ms());
}

void Watchdog::end() {
  Slot* s = slot();
  if (s && s->depth.fetch_sub(1) == 1) s->since_ms.store(0);
}

std::string Watchdog::message(const Activity& a, int64_t waited_ms) const {
  const int64_t step = step_.load();
  return cat("rank ", rank_, " waited ", static_cast<double>(waited_ms) / 1000.0, " s for the other ranks in ", a.what,
             a.count > 0 ? cat(" ", a.index, " of ", a.count) : std::string(),
             step >= 0 ? cat(" at step ", step + 1) : std::string(" before training"),
             ": a rank is stuck, stopped or dead, or the network is down; stopping the job (train.comm_timeout = ",
             static_cast<double>(timeout_ms_.load()) / 1000.0, " s sets this limit)");
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!quit_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    const int64_t limit = timeout_ms_.load();
    if (quit_ || limit <= 0) continue;
    // Of the waits past the limit, the one that began first: the others (a collective
    // the step reached while the loader's exchange already waited) follow from it, and
    // which of them a 100 ms poll finds past the limit is chance.
    const int64_t now = now_ms();
    const Slot* oldest = nullptr;
    int64_t oldest_since = 0;
    for (auto& s : slots_) {
      const int64_t since = s.since_ms.load();
      if (since == 0 || now - since <= limit) continue;
      if (!oldest || since < oldest_since) oldest = &s, oldest_since = since;
    }
    if (oldest) {
      const char* what = oldest->what.load();
      const Activity a{what ? what : "a collective operation", oldest->index.load(), oldest->count.load()};
      on_stall_(message(a, now - oldest_since));  // does not return
    }
  }
}

}  // namespace hubel::comm
