// One run per directory: an exclusive lock (flock) on "<dir>/.hubel.lock", held for the
// life of the process and released by the kernel when it ends, however it ends. The file
// says who holds it (PID, host, start time), so a second run can name the holder.
#pragma once

#include <string>

namespace hubel {

class RunLock {
 public:
  // Creates dir if needed and takes its lock; a DataError naming the holder's PID and host
  // when another process has it.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace hubel
