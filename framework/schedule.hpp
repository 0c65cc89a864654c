// Learning-rate schedules, starting from optimizer.lr: constant; step (times gamma every
// k epochs); inverse, a/(b + t) per iteration; exponential (times gamma each epoch);
// cosine annealing over the run; reduce-on-plateau, driven by the loss measured after
// each epoch. Any of them may have a linear warm-up in front, and a momentum schedule
// beside (momentum by epoch, e.g. 0.5 until epoch 5, then 0.9).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace hubel {

class Config;

// Where training is: epoch (from 0), global step (from 0), and the steps in an epoch.
struct ScheduleClock {
  int64_t epoch = 0;
  int64_t step = 0;
  int64_t steps_per_epoch = 1;
};

class Schedule {
 public:
  enum class Kind { constant, step, inverse, exponential, cosine, plateau };
  struct Options {
    Kind kind = Kind::constant;
    double lr = 0.01;                   // optimizer.lr
    int64_t every_epochs = 1;           // step
    double gamma = 0.1;                 // step, exponential, plateau: the factor
    double a = 0, b = 1;                // inverse: a / (b + t)
    double epochs = 1;                  // cosine: the length of the annealing, in epochs
    double min_lr = 0;                  // cosine, plateau: the floor
    int64_t patience = 0;               // plateau: epochs without enough improvement before reducing
    double threshold = 1e-4;            // plateau: an improvement is a relative decrease of more than this
    int64_t cooldown = 0;               // plateau: epochs to wait after a reduction
    bool monitor_train = false;         // plateau: watch the training loss instead of the held-out loss
    double warmup_epochs = 0;           // linear warm-up, in epochs ...
    int64_t warmup_steps = 0;           // ... or in steps
    std::map<int64_t, float> momentum;  // from epoch -> momentum
    std::string note;                   // said after the description (where the rate came from)
  };
  // The state that changes during training (plateau), for checkpoints.
  struct State {
    double factor = 1;
    double best = std::numeric_limits<double>::infinity();
    int64_t bad_epochs = 0, cooldown_left = 0, reductions = 0;
  };

  explicit Schedule(Options o) : o_(std::move(o)) {}
  // schedule: {type: constant|step|inverse|exponential|cosine|plateau, ..., warmup_epochs,
  // warmup_steps, momentum: {0: 0.5, 5: 0.9}}; an absent section is constant.
  // train_epochs is the default length of a cosine schedule.
  static std::unique_ptr<Schedule> create(const std::optional<Config>& c, double base_lr, int64_t train_epochs = 1);

  std::string describe() const;
  double lr(const ScheduleClock& clock) const;
  // The momentum for an epoch, if the schedule sets it.
  std::optional<float> momentum(int64_t epoch) const;
  bool has_momentum() const { return !o_.momentum.empty(); }
  // Plateau only: does it need a loss after each epoch, and which one.
  bool watches_loss() const { return o_.kind == Kind::plateau; }
  bool watches_train_loss() const { return o_.monitor_train; }
  // After each epoch, the watched loss; returns true if the rate was just reduced.
  bool end_epoch(double loss);

  const Options& options() const { return o_; }
  // A warm-up of this many epochs unless the schedule has its own (linear scaling rule).
  void set_default_warmup(double epochs) {
    if (o_.warmup_epochs == 0 && o_.warmup_steps == 0) o_.warmup_epochs = epochs;
  }
  void set_note(std::string note) { o_.note = std::move(note); }
  const State& state() const { return state_; }
  void set_state(const State& s) { state_ = s; }

 private:
  Options o_;
  State state_;
};

}  // namespace hubel
