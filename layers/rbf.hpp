// LeNet-5's output layer (LeCun, Bottou, Bengio and Haffner 1998, section II.B): Euclidean
// radial basis function units, one per class, each computing the squared distance of its
// 84 inputs to a fixed code: a 7x12 bitmap of the class (+1 ink, -1 paper), drawn by hand
// as the paper's were. F6 (84 units with the scaled tanh, in [-1.7159, 1.7159]) feeds it.
//
//   y_i = -sum_j (x_j - c_ij)^2
//
// The output is the negated penalty, so that the largest output is the predicted class as
// for every other classifier in hubel, and the paper's MAP criterion is the `map` loss
// (layers/losses.hpp). The codes are fixed: the layer has no parameters.
#pragma once

#include <array>
#include <memory>

#include "framework/layer.hpp"

namespace hubel {
class Config;
}

namespace hubel::layers {

class Rbf : public UnaryLayer {
 public:
  static constexpr int64_t kInputs = 84;  // 7 x 12
  explicit Rbf(int64_t classes);
  // {type: rbf, classes: 10}: the first `classes` codes (the digits 0..9)
  static std::unique_ptr<Layer> from_config(const Config& c);
  std::string type() const override { return "rbf"; }
  Shape output_shape(const Shape& x) const override;
  void to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
               const std::string& y) const override;
  void forward(ConstTensorView x, TensorView y, const StepContext& ctx) override;
  // dx_j = -2 sum_i dy_i (x_j - c_ij)
  void backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx,
                const StepContext& ctx) override;
  // The code of class i: 84 values of +1 and -1, row by row (12 rows of 7).
  const float* code(int64_t i) const { return codes_.data() + i * kInputs; }
  int64_t classes() const { return classes_; }

 private:
  int64_t classes_;
  std::array<float, 10 * kInputs> codes_{};
};

}  // namespace hubel::layers
