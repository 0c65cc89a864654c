// Synthetic images: standard normal pixels and uniform labels, drawn from the seed. At most
// 256 distinct samples are drawn, once; sample i is draw i mod 256, so a set of any size
// costs a few megabytes, no file, and reading is a copy. For benchmarks (the
// PyTorch peers time their CIFAR-sized net on random data) and for trying a model's
// shapes and speed before any data exists; there is nothing to learn in it.
#pragma once

#include <vector>

#include "datasets/dataset.hpp"

namespace hubel::datasets {

class Synthetic : public Dataset {
 public:
  struct Options {
    Shape shape{3, 32, 32};
    int64_t samples = 1000;
    int64_t classes = 10;
    uint64_t seed = 1;
  };
  Synthetic(const Options& o, std::string label);

  std::string name() const override { return name_; }
  int64_t size() const override { return o_.samples; }
  Shape sample_shape() const override { return o_.shape; }
  int64_t num_classes() const override { return o_.classes; }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const override;

 private:
  Options o_;
  std::string name_;
  int64_t distinct_ = 0;
  std::vector<float> x_;
  std::vector<int32_t> labels_;
};

}  // namespace hubel::datasets
