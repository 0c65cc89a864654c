// Learning-rate and momentum schedules.
#include "framework/schedule.hpp"

#include <cmath>
#include <numbers>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/registry.hpp"

namespace hubel {

namespace {

double positive(const Config& c, const char* key, double fallback) {
  const double v = c.get<double>(key, fallback);
  if (!(v > 0) || !std::isfinite(v)) c.at(key).fail(cat(key, " must be positive; got ", v));
  return v;
}
double factor(const Config& c, const char* key, double fallback) {
  const double v = c.get<double>(key, fallback);
  if (!(v > 0 && v <= 1)) c.at(key).fail(cat(key, " must be in (0, 1]; got ", v));
  return v;
}
double non_negative(const Config& c, const char* key, double fallback) {
  const double v = c.get<double>(key, fallback);
  if (!(v >= 0)) c.at(key).fail(cat(key, " must be >= 0; got ", v));
  return v;
}

// Each schedule type reads its own keys into the options; the keys every type shares
// (warm-up, momentum) are read after, by Schedule::create.
using Options = Schedule::Options;
using Kind = Schedule::Kind;
using ScheduleRegistry = Registry<Options, double, int64_t>;

std::unique_ptr<Options> make_options(Kind kind, double base_lr) {
  auto o = std::make_unique<Options>();
  o->kind = kind;
  o->lr = base_lr;
  return o;
}

const ScheduleRegistry& schedules() {
  static const ScheduleRegistry r = [] {
    ScheduleRegistry r("schedule", "known schedules");
    r.add("constant", [](const Config&, double lr, int64_t) { return make_options(Kind::constant, lr); });
    r.add("step", [](const Config& c, double lr, int64_t) {
      auto o = make_options(Kind::step, lr);
      o->every_epochs = c.get<int64_t>("every_epochs");
      if (o->every_epochs <= 0) c.at("every_epochs").fail(cat("every_epochs must be positive; got ", o->every_epochs));
      o->gamma = factor(c, "gamma", 0.5);
      return o;
    });
    r.add("inverse", [](const Config& c, double lr, int64_t) {
      auto o = make_options(Kind::inverse, lr);
      o->b = positive(c, "b", 1000);
      o->a = positive(c, "a", lr * o->b);  // by default the rate starts at optimizer.lr
      return o;
    });
    r.add("exponential", [](const Config& c, double lr, int64_t) {
      auto o = make_options(Kind::exponential, lr);
      o->gamma = factor(c, "gamma", 0.95);
      return o;
    });
    r.add("cosine", [](const Config& c, double lr, int64_t epochs) {
      auto o = make_options(Kind::cosine, lr);
      o->epochs = positive(c, "epochs", static_cast<double>(std::max<int64_t>(1, epochs)));
      o->min_lr = non_negative(c, "min_lr", 0);
      return o;
    });
    r.add("plateau", [](const Config& c, double lr, int64_t) {
      auto o = make_options(Kind::plateau, lr);
      o->gamma = factor(c, "gamma", 0.1);
      o->patience = c.get<int64_t>("patience", 0);
      if (o->patience < 0) c.at("patience").fail(cat("patience must be >= 0; got ", o->patience));
      o->threshold = non_negative(c, "threshold", 1e-4);
      o->cooldown = c.get<int64_t>("cooldown", 0);
      if (o->cooldown < 0) c.at("cooldown").fail(cat("cooldown must be >= 0; got ", o->cooldown));
      o->min_lr = non_negative(c, "min_lr", 0);
      o->monitor_train = c.choice("monitor", {"val_loss", "test_loss", "train_loss"}, "val_loss") == "train_loss";
      return o;
    });
    return r;
  }();
  return r;
}

}  // namespace

std::unique_ptr<Schedule> Schedule::create(const std::optional<Config>& c, double base_lr, int64_t train_epochs) {
  if (!c || c->is_null()) return std::make_unique<Schedule>(*make_options(Kind::constant, base_lr));
  const std::string type = c->get<std::string>("type", "constant");
  if (auto t = c->find("type")) schedules().check(type, *t);
  Options o = *schedules().make(type, *c, base_lr, train_epochs);
  auto non_negative = [&](const char* key, double fallback) { return hubel::non_negative(*c, key, fallback); };
  o.warmup_epochs = non_negative("warmup_epochs", 0);
  o.warmup_steps = c->get<int64_t>("warmup_steps", 0);
  if (o.warmup_steps < 0) c->at("warmup_steps").fail(cat("warmup_steps must be >= 0; got ", o.warmup_steps));
  if (o.warmup_steps && o.warmup_epochs) c->at("warmup_steps").fail("give warmup_epochs or warmup_steps, not both");
  if (auto m = c->find("momentum")) {
    if (!m->is_map()) m->fail("momentum is a map from epoch to momentum, e.g. {0: 0.5, 5: 0.9}");
    for (const auto& key : m->keys()) {
      char* end = nullptr;
      const long long epoch = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || *end || epoch < 0) m->fail(cat("momentum keys are epochs (0, 1, ...); got '", key, "'"));
      const float v = m->get<float>(key);
      if (!(v >= 0 && v < 1)) m->at(key).fail(cat("momentum must be in [0, 1); got ", v));
      o.momentum[epoch] = v;
    }
    if (!o.momentum.count(0)) m->fail("the momentum schedule must say the momentum of epoch 0");
  }
  c->finish();
  return std::make_unique<Schedule>(o);
}

std::string Schedule::describe() const {
  std::string s;
  switch (o_.kind) {
    case Kind::constant:
      s = cat("constant ", o_.lr);
      break;
    case Kind::step:
      s = cat("step: ", o_.lr, " x ", o_.gamma, " every ", o_.every_epochs, " epochs");
      break;
    case Kind::inverse:
      s = cat("inverse: ", o_.a, " / (", o_.b, " + step)");
      break;
    case Kind::exponential:
      s = cat("exponential: ", o_.lr, " x ", o_.gamma, "^epoch");
      break;
    case Kind::cosine:
      s = cat("cosine: ", o_.lr, " to ", o_.min_lr, " over ", o_.epochs, " epochs");
      break;
    case Kind::plateau:
      s = cat("plateau: ", o_.lr, " x ", o_.gamma, " when the ", o_.monitor_train ? "training" : "held-out",
              " loss improves by less than ", o_.threshold * 100, "% for ", o_.patience + 1, " epoch",
              o_.patience ? "s" : "");
      break;
  }
  if (o_.warmup_epochs > 0) s += cat(", warm-up ", o_.warmup_epochs, " epochs");
  if (o_.warmup_steps > 0) s += cat(", warm-up ", o_.warmup_steps, " steps");
  if (!o_.note.empty()) s += cat(" (", o_.note, ")");
  if (!o_.momentum.empty()) {
    s += ", momentum";
    for (const auto& [e, m] : o_.momentum) s += cat(" ", m, " from epoch ", e, ";");
    s.pop_back();
  }
  return s;
}

double Schedule::lr(const ScheduleClock& c) const {
  double lr = o_.lr;
  const auto t = static_cast<double>(c.step);
  switch (o_.kind) {
    case Kind::constant:
      break;
    case Kind::step:
      lr = o_.lr * std::pow(o_.gamma, static_cast<double>(c.epoch / o_.every_epochs));
      break;
    case Kind::inverse:
      lr = o_.a / (o_.b + t);
      break;
    case Kind::exponential:
      lr = o_.lr * std::pow(o_.gamma, static_cast<double>(c.epoch));
      break;
    case Kind::cosine: {
      const double total = o_.epochs * static_cast<double>(c.steps_per_epoch);
      const double x = std::min(t, total) / total;
      lr = o_.min_lr + (o_.lr - o_.min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * x));
      break;
    }
    case Kind::plateau:
      lr = std::max(o_.min_lr, o_.lr * state_.factor);
      break;
  }
  const double warmup = o_.warmup_steps > 0 ? static_cast<double>(o_.warmup_steps)
                                            : std::round(o_.warmup_epochs * static_cast<double>(c.steps_per_epoch));
  if (warmup > 0 && t < warmup) lr *= (t + 1) / warmup;
  return lr;
}

std::optional<float> Schedule::momentum(int64_t epoch) const {
  if (o_.momentum.empty()) return std::nullopt;
  auto it = o_.momentum.upper_bound(epoch);
  return std::prev(it)->second;
}

bool Schedule::end_epoch(double loss) {
  if (o_.kind != Kind::plateau) return false;
  State& s = state_;
  if (loss < s.best * (1 - o_.threshold) || !std::isfinite(s.best)) {
    s.best = loss;
    s.bad_epochs = 0;
  } else {
    ++s.bad_epochs;
  }
  if (s.cooldown_left > 0) {
    --s.cooldown_left;
    s.bad_epochs = 0;
    return false;
  }
  if (s.bad_epochs > o_.patience) {
    s.factor *= o_.gamma;
    s.bad_epochs = 0;
    s.cooldown_left = o_.cooldown;
    ++s.reductions;
    return true;
  }
  return false;
}

}  // namespace hubel
