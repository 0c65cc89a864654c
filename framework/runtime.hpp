// The process's threads: one TBB task arena, sized by --threads (default: the cores this
// process may run on). Everything parallel in hubel runs inside it.
#pragma once

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <memory>

namespace hubel {

class Runtime {
 public:
  // threads <= 0: the cores in this process's affinity mask.
  explicit Runtime(int threads = 0)
      : threads_(threads > 0 ? threads : tbb::info::default_concurrency()),
        limit_(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads_)),
        arena_(threads_) {}
  int threads() const { return threads_; }
  // Runs f inside the arena and returns its result.
  template <class F>
  auto run(F&& f) -> decltype(f()) {
    return arena_.execute(std::forward<F>(f));
  }

 private:
  int threads_;
  tbb::global_control limit_;
  tbb::task_arena arena_;
};

}  // namespace hubel
