// Losses: softmax cross-entropy (fused and numerically stable), least squares (mean
// squared error) and logistic sigmoid with binary cross-entropy (on logits).
#pragma once

#include <memory>

#include "framework/loss.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

// loss = log sum_j exp(y_j) - y_label, computed as m + log sum_j exp(y_j - m), m = max y.
// dy = softmax(y) - onehot(label).
class SoftmaxCrossEntropy : public Loss {
 public:
  static std::unique_ptr<Loss> from_config(const Config& c);
  std::string type() const override { return "softmax_cross_entropy"; }
  void check(const Shape& y, int64_t num_classes) const override;
  LossStats evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const override;
};

// LeNet-5's maximum a posteriori criterion (LeCun et al. 1998, eq. 9) on outputs s_i that
// are negated penalties (the rbf layer's): the penalty of the right class plus a soft
// minimum over all classes and a "rubbish" class of constant penalty j, which pushes the
// wrong classes' penalties up instead of letting every penalty collapse to 0:
//   loss = -s_label + log(exp(-j) + sum_i exp(s_i));  ds_i = softmax_i - [i = label]
// where softmax includes the rubbish class. {type: map, j: 1}
class MapCriterion : public Loss {
 public:
  explicit MapCriterion(double j = 1) : j_(j) {}
  static std::unique_ptr<Loss> from_config(const Config& c);
  std::string type() const override { return "map"; }
  void check(const Shape& y, int64_t num_classes) const override;
  LossStats evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const override;

 private:
  double j_;
};

// loss = mean_j (y_j - t_j)^2 per sample (as PyTorch's MSELoss with mean reduction).
// With class labels, t is one-hot: `on` for the label, `off` elsewhere (0 and 1 unless set;
// LeNet-5 with scaled tanh uses -1 and 1).
class MeanSquaredError : public Loss {
 public:
  MeanSquaredError(float on = 1, float off = 0, bool reconstruct = false)
      : on_(on), off_(off), reconstruct_(reconstruct) {}
  // mse | {type: mse, on: 1, off: 0} | {type: mse, target: input} (least squares against
  // the network's input: an autoencoder)
  static std::unique_ptr<Loss> from_config(const Config& c);
  std::string type() const override { return "mse"; }
  bool targets_are_inputs() const override { return reconstruct_; }
  void check(const Shape& y, int64_t num_classes) const override;
  LossStats evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const override;

 private:
  float on_, off_;
  bool reconstruct_;
};

// Per output: max(z,0) - z t + log(1 + exp(-|z|)) = -t log s(z) - (1-t) log(1-s(z)), averaged
// over the outputs of a sample. Labels: one output (labels 0/1) or one output per class.
class SigmoidCrossEntropy : public Loss {
 public:
  static std::unique_ptr<Loss> from_config(const Config& c);
  std::string type() const override { return "sigmoid_cross_entropy"; }
  void check(const Shape& y, int64_t num_classes) const override;
  LossStats evaluate(ConstTensorView y, const Targets& t, TensorView dy, float scale) const override;
};

}  // namespace hubel::layers
