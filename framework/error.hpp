// Typed errors a user can act on: each carries what went wrong, where (file, line, key,
// layer, dataset path) and, where we know it, what to do. `main` prints `what()` and exits.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace hubel {

// Builds a message from streamable parts: cat("layer ", name, ": ", n, " inputs").
template <class... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

// "a, b, c"
inline std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The experiment file or a --set override is wrong (missing key, wrong type, unknown key).
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Shapes that do not connect, or a layer configuration that cannot work on its input.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A data file or a sample is wrong (bad label, missing dataset, truncated file).
class DataError : public Error {
 public:
  using Error::Error;
};

// Training diverged or produced a non-finite value.
class NumericError : public Error {
 public:
  using Error::Error;
};

}  // namespace hubel
