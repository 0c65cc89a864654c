// The Loss interface: compares the network output with the targets of a minibatch, returns
// the summed loss (and correct predictions, for classifiers) and writes d(loss)/d(y).
// Implementations live in layers/losses.*.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "framework/tensor.hpp"

namespace hubel {

// Targets of a minibatch: class labels (classification) or target values (regression).
struct Targets {
  const int32_t* labels = nullptr;  // n labels, or null
  ConstTensorView values;           // [n, ...] like y, or empty
};

// A row's loss as the statistics add it: rounded to a multiple of 2^-24, so that sums of
// rows are exact, whatever their order and however many ranks held them, while the total
// stays below 2^29 (it is a statistic: the gradient uses the loss unrounded).
inline double loss_of_row(double loss) { return std::nearbyint(loss * 0x1p24) * 0x1p-24; }

struct LossStats {
  double loss = 0;      // sum over the rows
  int64_t correct = 0;  // rows predicted correctly (classifiers)
  int64_t count = 0;    // rows seen
  LossStats& operator+=(const LossStats& o) {
    loss += o.loss;
    correct += o.correct;
    count += o.count;
    return *this;
  }
};

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string type() const = 0;
  // Does `correct` mean anything (is accuracy worth reporting) for such a data set?
  virtual bool reports_accuracy(int64_t num_classes) const { return num_classes > 0 && !targets_are_inputs(); }
  // Are the targets the network's own inputs (an autoencoder reconstructs them)? The
  // Trainer then passes the input minibatch as target values, whatever labels the data has.
  virtual bool targets_are_inputs() const { return false; }
  // Validates the per-sample output shape y against a data set with `num_classes`
  // classes (0: the data set has target values, not labels). Throws ShapeError.
  virtual void check(const Shape& y, int64_t num_classes) const = 0;
  // Loss summed over the n rows of y. If dy is not empty, writes scale * d(sum)/dy, so
  // scale = 1/global_batch makes dy the gradient of the minibatch mean.
  virtual LossStats evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const = 0;
};

}  // namespace hubel
