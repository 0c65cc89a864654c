// Learning-rate schedules: the rate for a step as a function of (epoch, global step),
// starting from optimizer.lr.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace hubel {

class Config;

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual std::string describe() const = 0;
  // epoch counts from 0; step is the global step count since the start of training.
  virtual double lr(int64_t epoch, int64_t step) const = 0;

  // schedule: {type: constant} (also when the section is absent) or
  // {type: step, every_epochs: k, gamma: g}: lr * g^floor(epoch / k).
  static std::unique_ptr<Schedule> create(const std::optional<Config>& c, double base_lr);
};

}  // namespace hubel
