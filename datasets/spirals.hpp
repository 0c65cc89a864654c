// Interleaved spirals: a seeded, generated two-dimensional classification set that needs
// no files (the classic test that a linear model fails and a small MLP solves).
#pragma once

#include <vector>

#include "datasets/dataset.hpp"

namespace hubel::datasets {

class Spirals : public Dataset {
 public:
  struct Options {
    int64_t samples = 1000;
    int64_t classes = 2;  // number of arms
    double turns = 1.0;   // revolutions of each arm
    double noise = 0.05;  // standard deviation of the Gaussian noise added to each point
    uint64_t seed = 1;
  };
  Spirals(const Options& o, std::string label);

  std::string name() const override { return name_; }
  int64_t size() const override { return o_.samples; }
  Shape sample_shape() const override { return {2}; }
  int64_t num_classes() const override { return o_.classes; }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const override;

 private:
  Options o_;
  std::string name_;
  std::vector<float> xy_;
  std::vector<int32_t> labels_;
};

}  // namespace hubel::datasets
