// A monitored metric of the epochs (early stopping, the best checkpoint): which one, which
// way is better, and by how much it must improve. Decisions are functions of the run's
// history of epochs, which the checkpoint holds, so a resumed run decides as the
// uninterrupted one would, on every rank alike.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace hubel {

class Config;
struct EpochMetrics;

struct Monitor {
  std::string metric = "val_loss";  // val_loss | val_accuracy | train_loss | train_accuracy
  bool maximize = false;            // mode: min | max (auto: max for accuracies)
  double min_delta = 0;             // an improvement is more than this

  // {monitor: val_accuracy, mode: auto | min | max, min_delta: 0}; the caller may read
  // further keys of the map, and calls finish().
  static Monitor parse(const Config& c, const std::string& default_metric = "val_loss");
  bool needs_heldout() const { return metric.rfind("val_", 0) == 0; }
  double value(const EpochMetrics& m) const;
  bool improves(double v, double best) const;

  struct Best {
    int64_t epoch = 0;  // 1-based; 0: none
    double value = std::numeric_limits<double>::quiet_NaN();
    int64_t since = 0;  // epochs after it that did not improve on it
  };
  // The best epoch of a history (Keras' rule: each epoch is compared with the best before it).
  Best best_of(const std::vector<EpochMetrics>& history) const;
  std::string describe() const;  // "val_accuracy (max, min_delta 0)"
};

// train.early_stop: {monitor: val_loss, patience: 5, min_delta: 0, mode: auto}
struct EarlyStop {
  Monitor monitor;
  int64_t patience = 5;  // epochs without improvement before stopping
  static EarlyStop parse(const Config& c);
  // "" to go on, else why training stops after this history.
  std::string reason_to_stop(const std::vector<EpochMetrics>& history) const;
};

}  // namespace hubel
