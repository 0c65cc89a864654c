// Opens the train and test sets an experiment's `data` section describes.
#pragma once

#include <memory>

#include "datasets/dataset.hpp"

namespace hubel {
class Config;
}

namespace hubel::datasets {

struct Splits {
  std::unique_ptr<Dataset> train;
  std::unique_ptr<Dataset> test;  // may be null: no held-out evaluation
};

// data: {spirals: {train: 2000, test: 1000, classes: 2, turns: 1.5, noise: 0.05, seed: 7}}
Splits open(const Config& data);

}  // namespace hubel::datasets
