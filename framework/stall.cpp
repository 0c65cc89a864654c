// The stall handler.
#include "framework/stall.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace hubel {

namespace {
std::atomic<StallHandler> g_handler{nullptr};
}  // namespace

void set_stall_handler(StallHandler handler) { g_handler = handler; }

void stall_stop(const std::string& message) {
  if (StallHandler h = g_handler.load()) h(message);
  const std::string line = "hubel: error: " + message + "\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  std::_Exit(2);
}

}  // namespace hubel
