// Loss implementations. Rows are processed in fixed chunks and the chunk sums added in
// order (deterministic_sum), so the loss is the same whatever the thread count.
#include "layers/losses.hpp"

#include <algorithm>
#include <cmath>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

namespace {

// Labels are checked before any parallel work, so a bad one names its row.
void check_labels(const Targets& t, int64_t n, int64_t classes, const char* loss) {
  if (!t.labels) {
    if (t.values.empty()) throw DataError(cat(loss, ": no targets given"));
    return;
  }
  for (int64_t r = 0; r < n; ++r)
    if (t.labels[r] < 0 || t.labels[r] >= classes)
      throw DataError(cat(loss, ": label ", t.labels[r], " in row ", r, " of the minibatch is outside [0, ", classes,
                          "): the data has more classes than the network outputs, or a corrupt label"));
}

int64_t argmax(const float* v, int64_t k) { return std::max_element(v, v + k) - v; }

// The softmax loss of each row, -y_label + log(sum_j exp(y_j)), and its gradient
// softmax - onehot, computed from m = the row's maximum; with `rubbish` (LeNet-5's MAP
// criterion) the sum has one more term, exp(rubbish), a class no label names.
LossStats softmax_rows(ConstTensorView y, const Targets& t, TensorView dy, float scale, const char* name,
                       bool with_rubbish, float rubbish) {
  const int64_t n = y.batch(), k = y.stride0();
  if (!t.labels) throw DataError(cat(name, " needs class labels"));
  check_labels(t, n, k, name);
  return deterministic_sum<LossStats>(n, grain_for(k * 16), [&](int64_t r0, int64_t r1) {
    LossStats s;
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y.data() + r * k;
      const int64_t label = t.labels[r];
      const int64_t best = argmax(yr, k);
      const float m = with_rubbish ? std::max(yr[best], rubbish) : yr[best];
      double sum = with_rubbish ? std::exp(static_cast<double>(rubbish - m)) : 0.0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(yr[j] - m));
      s.loss += loss_of_row(std::log(sum) + m - yr[label]);
      s.correct += best == label;
      ++s.count;
      if (!dy.empty()) {
        float* d = dy.data() + r * k;
        const double inv = 1.0 / sum;
        for (int64_t j = 0; j < k; ++j)
          d[j] = static_cast<float>(std::exp(static_cast<double>(yr[j] - m)) * inv) * scale;
        d[label] -= scale;
      }
    }
    return s;
  });
}

}  // namespace

// ---- softmax cross-entropy ----

std::unique_ptr<Loss> SoftmaxCrossEntropy::from_config(const Config&) {
  return std::make_unique<SoftmaxCrossEntropy>();
}

void SoftmaxCrossEntropy::check(const Shape& y, int64_t num_classes) const {
  if (num_classes == 0)
    throw ShapeError(
        "softmax_cross_entropy needs class labels, but the data has target values; use mse for regression");
  if (y.numel() != num_classes)
    throw ShapeError(cat("softmax_cross_entropy: the network outputs ", y.str(), " (", y.numel(),
                         " values) per sample but the data has ", num_classes, " classes: make the last layer output ",
                         num_classes, " values"));
}

LossStats SoftmaxCrossEntropy::evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const {
  return softmax_rows(y, t, dy, scale, "softmax_cross_entropy", false, 0.0f);
}

// ---- LeNet-5's MAP criterion ----

std::unique_ptr<Loss> MapCriterion::from_config(const Config& c) {
  const double j = c.is_map() ? c.get<double>("j", 1.0) : 1.0;
  if (!std::isfinite(j)) c.at("j").fail(cat("j must be a finite number; got ", j));
  return std::make_unique<MapCriterion>(j);
}

void MapCriterion::check(const Shape& y, int64_t num_classes) const {
  if (num_classes == 0) throw ShapeError("map needs class labels, but the data has target values");
  if (y.numel() != num_classes)
    throw ShapeError(cat("map: the network outputs ", y.str(), " (", y.numel(), " values) per sample but the data has ",
                         num_classes, " classes"));
}

LossStats MapCriterion::evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const {
  return softmax_rows(y, t, dy, scale, "map", true, static_cast<float>(-j_));
}

// ---- mean squared error ----

std::unique_ptr<Loss> MeanSquaredError::from_config(const Config& c) {
  if (!c.is_map()) return std::make_unique<MeanSquaredError>();
  const bool input = c.choice("target", {"data", "input"}, "data") == "input";
  if (input && (c.has("on") || c.has("off")))
    c.fail("on and off shape one-hot targets of labels; with target: input there are none");
  return std::make_unique<MeanSquaredError>(c.get<float>("on", 1.0f), c.get<float>("off", 0.0f), input);
}

void MeanSquaredError::check(const Shape& y, int64_t num_classes) const {
  if (reconstruct_) return;  // the Trainer checks the output against the input shape
  if (num_classes > 0 && y.numel() != num_classes)
    throw ShapeError(cat("mse with class labels compares the output with a one-hot target: the network outputs ",
                         y.numel(), " values per sample but the data has ", num_classes, " classes"));
}

LossStats MeanSquaredError::evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const {
  const int64_t n = y.batch(), k = y.stride0();
  check_labels(t, n, k, "mse");
  if (!t.labels && t.values.numel() != y.numel())
    throw ShapeError(cat("mse: the targets have ", t.values.numel() / std::max<int64_t>(1, n),
                         " values per sample but the network outputs ", k));
  const float g = 2.0f * scale / static_cast<float>(k);
  return deterministic_sum<LossStats>(n, grain_for(k * 4), [&](int64_t r0, int64_t r1) {
    LossStats s;
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y.data() + r * k;
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) {
        const float target = t.labels ? (j == t.labels[r] ? on_ : off_) : t.values.data()[r * k + j];
        const float e = yr[j] - target;
        sum += static_cast<double>(e) * e;
        if (!dy.empty()) dy.data()[r * k + j] = g * e;
      }
      s.loss += loss_of_row(sum / static_cast<double>(k));
      if (t.labels) s.correct += argmax(yr, k) == t.labels[r];
      ++s.count;
    }
    return s;
  });
}

// ---- sigmoid cross-entropy ----

std::unique_ptr<Loss> SigmoidCrossEntropy::from_config(const Config&) {
  return std::make_unique<SigmoidCrossEntropy>();
}

void SigmoidCrossEntropy::check(const Shape& y, int64_t num_classes) const {
  if (num_classes == 0) return;
  if (y.numel() == 1 && num_classes == 2) return;
  if (y.numel() == num_classes) return;
  throw ShapeError(cat("sigmoid_cross_entropy: the network outputs ", y.numel(), " values per sample; with ",
                       num_classes, " classes it should output ",
                       num_classes == 2 ? "1 (binary) or 2" : std::to_string(num_classes), " (one per class)"));
}

LossStats SigmoidCrossEntropy::evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const {
  const int64_t n = y.batch(), k = y.stride0();
  check_labels(t, n, k == 1 ? 2 : k, "sigmoid_cross_entropy");
  const float g = scale / static_cast<float>(k);
  return deterministic_sum<LossStats>(n, grain_for(k * 16), [&](int64_t r0, int64_t r1) {
    LossStats s;
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y.data() + r * k;
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) {
        float target;
        if (!t.labels)
          target = t.values.data()[r * k + j];
        else if (k == 1)
          target = static_cast<float>(t.labels[r]);
        else
          target = j == t.labels[r] ? 1.0f : 0.0f;
        const double z = yr[j];
        sum += std::max(z, 0.0) - z * target + std::log1p(std::exp(-std::abs(z)));
        if (!dy.empty()) dy.data()[r * k + j] = g * (1.0f / (1.0f + std::exp(-yr[j])) - target);
      }
      s.loss += loss_of_row(sum / static_cast<double>(k));
      if (t.labels) s.correct += (k == 1 ? static_cast<int64_t>(yr[0] > 0) : argmax(yr, k)) == t.labels[r];
      ++s.count;
    }
    return s;
  });
}

}  // namespace hubel::layers
