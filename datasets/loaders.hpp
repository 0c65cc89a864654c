// The loaders of an experiment's data for one rank: the training split (shuffled,
// augmented, drop_last as the data section says) and the held-out and test splits (in
// order, every sample, no augmentation), ready for a Run.
#pragma once

#include <memory>

#include "datasets/loader.hpp"
#include "datasets/open.hpp"
#include "framework/run.hpp"

namespace hubel::datasets {

struct Loaders {
  // comm: the ranks' communicator (a partitioned split exchanges rows through it); null
  // on one rank without MPI.
  Loaders(const Splits& splits, const TrainOptions& train, int rank, int world, comm::Communicator* comm = nullptr);
  std::unique_ptr<Loader> train, heldout,
      test;  // heldout, test: null when absent (test also when it is the held-out set)
  std::string heldout_name;
  RunData run_data() const { return {train.get(), heldout.get(), test.get(), heldout_name}; }
};

}  // namespace hubel::datasets
