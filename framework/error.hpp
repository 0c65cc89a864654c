// Typed errors a user can act on: each carries what went wrong, where (file, line, key,
// layer, dataset path) and, where we know it, what to do. `main` prints `what()` and exits.
#pragma once

#include <exception>
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

// Several mistakes in the input found at once, one message each (what(): all of them).
class InputErrors : public ConfigError {
 public:
  explicit InputErrors(std::vector<std::string> messages)
      : ConfigError(cat(messages.size(), " mistakes:\n  ", join(messages, "\n  "))), messages_(std::move(messages)) {}
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  std::vector<std::string> messages_;
};

// Collects the input errors of independent checks, so that a user sees every mistake of
// an experiment file at once instead of one per attempt:
//   ErrorList errors;
//   errors.attempt([&] { read_model(); });
//   errors.attempt([&] { read_data(); });
//   errors.raise();  // none: returns; one: rethrows it as it was; more: InputErrors
class ErrorList {
 public:
  // Runs f; an input error (ConfigError, ShapeError, DataError) is recorded and false
  // returned; any other exception passes through.
  template <class F>
  bool attempt(F&& f) {
    try {
      f();
      return true;
    } catch (const InputErrors& e) {
      if (!first_) first_ = std::current_exception();
      for (const auto& m : e.messages()) add(m);
    } catch (const ConfigError& e) {
      record(e);
    } catch (const ShapeError& e) {
      record(e);
    } catch (const DataError& e) {
      record(e);
    }
    return false;
  }
  bool empty() const { return messages_.empty(); }
  size_t size() const { return messages_.size(); }
  void raise() const {
    if (messages_.size() == 1) std::rethrow_exception(first_);
    if (messages_.size() > 1) throw InputErrors(messages_);
  }

 private:
  void record(const std::exception& e) {
    if (!first_) first_ = std::current_exception();
    add(e.what());
  }
  void add(const std::string& m) {  // (two checks may find one mistake)
    for (const auto& old : messages_)
      if (old == m) return;
    messages_.push_back(m);
  }
  std::exception_ptr first_;
  std::vector<std::string> messages_;
};

}  // namespace hubel
