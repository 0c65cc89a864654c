// An experiment file: its sections, read and checked. Sections: model, data, optimizer,
// schedule (optional), train. Unknown sections or keys are errors naming file and line.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/config.hpp"
#include "framework/loss.hpp"
#include "framework/net.hpp"
#include "framework/trainer.hpp"

namespace hubel {

class ErrorList;
class LayerRegistry;

struct Experiment {
  Config root;
  Config model, data, optimizer;
  std::optional<Config> schedule;
  std::optional<Config> checkpoint;  // read by the hubel command
  TrainOptions train;

  // Loads the file, applies "--set key=value" overrides, checks the top-level sections and
  // the train section. The other sections are checked by whoever reads them.
  static Experiment load(const std::string& path, const std::vector<std::string>& overrides = {});
  // With errors: the mistakes of the train section and unknown sections are recorded there
  // (the caller goes on checking the other sections and raises them all); a missing
  // required section still throws (with whatever else was found).
  static Experiment from_config(Config root, ErrorList* errors = nullptr);
};

// model.weights: start from trained weights (fine-tuning).
struct WeightsSource {
  std::string file;                  // checkpoint, exported weights, or checkpoint directory
  std::vector<std::string> exclude;  // layer patterns that start fresh (a new head)
};

// What build_model makes for training: the net (not built yet), its loss and where its
// initial weights come from. (The inference API is hubel::Model, inference/model.hpp.)
struct BuiltModel {
  Net net;
  std::unique_ptr<Loss> loss;
  std::optional<WeightsSource> weights;
};

// model: {input: [...], blocks: {...}, layers: [...], loss: softmax_cross_entropy | {type: ..., ...},
//         freeze: [layer patterns], weights: {file: ..., exclude: [layer patterns]}}
BuiltModel build_model(const Config& model, const LayerRegistry& registry);

}  // namespace hubel
