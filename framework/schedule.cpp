// Learning-rate schedules.
#include "framework/schedule.hpp"

#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel {

namespace {

class Constant : public Schedule {
 public:
  explicit Constant(double lr) : lr_(lr) {}
  std::string describe() const override { return cat("constant ", lr_); }
  double lr(int64_t, int64_t) const override { return lr_; }

 private:
  double lr_;
};

class StepDecay : public Schedule {
 public:
  StepDecay(double lr, int64_t every, double gamma) : lr_(lr), every_(every), gamma_(gamma) {}
  std::string describe() const override { return cat("step: ", lr_, " x ", gamma_, " every ", every_, " epochs"); }
  double lr(int64_t epoch, int64_t) const override { return lr_ * std::pow(gamma_, static_cast<double>(epoch / every_)); }

 private:
  double lr_;
  int64_t every_;
  double gamma_;
};

}  // namespace

std::unique_ptr<Schedule> Schedule::create(const std::optional<Config>& c, double base_lr) {
  if (!c || c->is_null()) return std::make_unique<Constant>(base_lr);
  const std::string type = c->choice("type", {"constant", "step"});
  std::unique_ptr<Schedule> s;
  if (type == "constant") {
    s = std::make_unique<Constant>(base_lr);
  } else {
    const auto every = c->get<int64_t>("every_epochs");
    const auto gamma = c->get<double>("gamma", 0.5);
    if (every <= 0) c->at("every_epochs").fail(cat("every_epochs must be positive; got ", every));
    if (!(gamma > 0)) c->at("gamma").fail(cat("gamma must be positive; got ", gamma));
    s = std::make_unique<StepDecay>(base_lr, every, gamma);
  }
  c->finish();
  return s;
}

}  // namespace hubel
