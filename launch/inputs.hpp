// What hubel train and hubel summary read before anything trains: the experiment, the
// model and the data, checked as a whole so that a file with several mistakes shows them
// all at once (framework/error.hpp's ErrorList): unknown sections and train keys, every
// layer, the optimizer, the schedule, the checkpoint policy and the data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "datasets/open.hpp"
#include "framework/experiment.hpp"

namespace hubel {

struct Inputs {
  std::optional<Experiment> exp;
  std::optional<BuiltModel> model;       // its net built for build_batch rows
  std::optional<datasets::Splits> data;  // unless open_data is false
};

// Throws ConfigError (InputErrors when there are several) listing every mistake found.
// build_batch: the rows the net is built for (Run and the optimizer need it built), or -W
// for one rank's rows of the global batch on W ranks; run_dir: the checkpoint policy's
// default directory.
// where: the rank opening the data, of how many (the training split's store).
Inputs read_inputs(const std::string& experiment, const std::vector<std::string>& sets, bool open_data,
                   int64_t build_batch, const std::string& run_dir, const datasets::Placement& where = {});

}  // namespace hubel
