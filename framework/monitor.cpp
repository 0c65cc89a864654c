// Monitored metrics: early stopping and the best checkpoint.
#include "framework/monitor.hpp"

#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/trainer.hpp"

namespace hubel {

Monitor Monitor::parse(const Config& c, const std::string& default_metric) {
  Monitor m;
  m.metric = c.choice("monitor", {"val_loss", "val_accuracy", "train_loss", "train_accuracy"}, default_metric);
  const std::string mode = c.choice("mode", {"auto", "min", "max"}, "auto");
  m.maximize = mode == "max" || (mode == "auto" && m.metric.ends_with("_accuracy"));
  m.min_delta = c.get<double>("min_delta", 0.0);
  if (!(m.min_delta >= 0)) c.at("min_delta").fail(cat("min_delta must be >= 0; got ", m.min_delta));
  return m;
}

double Monitor::value(const EpochMetrics& e) const {
  if (metric == "val_loss") return e.has_test ? e.test_loss : std::nan("");
  if (metric == "val_accuracy") return e.has_test ? e.test_accuracy : std::nan("");
  if (metric == "train_accuracy") return e.train_accuracy;
  return e.train_loss;
}

bool Monitor::improves(double v, double best) const {
  if (std::isnan(v)) return false;
  if (std::isnan(best)) return true;
  return maximize ? v > best + min_delta : v < best - min_delta;
}

Monitor::Best Monitor::best_of(const std::vector<EpochMetrics>& history) const {
  Best b;
  for (const auto& e : history) {
    if (improves(value(e), b.value)) {
      b = {e.epoch, value(e), 0};
    } else if (b.epoch > 0) {
      ++b.since;
    }
  }
  return b;
}

std::string Monitor::describe() const {
  return cat(metric, " (", maximize ? "max" : "min", min_delta > 0 ? cat(", min_delta ", min_delta) : "", ")");
}

EarlyStop EarlyStop::parse(const Config& c) {
  EarlyStop s;
  s.monitor = Monitor::parse(c);
  s.patience = c.get<int64_t>("patience", s.patience);
  if (s.patience < 1) c.at("patience").fail(cat("patience must be at least 1 epoch; got ", s.patience));
  c.finish();
  return s;
}

std::string EarlyStop::reason_to_stop(const std::vector<EpochMetrics>& history) const {
  const Monitor::Best b = monitor.best_of(history);
  if (b.epoch == 0 || b.since < patience) return "";
  return cat("early stop: ", monitor.metric, " has not improved",
             monitor.min_delta > 0 ? cat(" by more than ", monitor.min_delta) : "", " for ", b.since, " epochs (best ",
             b.value, " at epoch ", b.epoch, ")");
}

}  // namespace hubel
