// Reading an experiment's inputs, every mistake at once.
#include "launch/inputs.hpp"

#include <algorithm>

#include "framework/error.hpp"
#include "framework/optimizer.hpp"
#include "framework/run.hpp"
#include "framework/schedule.hpp"
#include "layers/builtin.hpp"

namespace hubel {

Inputs read_inputs(const std::string& experiment, const std::vector<std::string>& sets, bool open_data,
                   int64_t build_batch, const std::string& run_dir, const datasets::Placement& where) {
  Inputs in;
  ErrorList errors;
  Config root = Config::load_file(experiment);  // (a file that does not parse stops here)
  for (const auto& s : sets) root.apply_override(s);
  // (A missing section is recorded too; the sections there are still checked.)
  errors.attempt([&] { in.exp.emplace(Experiment::from_config(root, &errors)); });
  if (auto m = root.find("model"))
    errors.attempt([&] { in.model.emplace(build_model(*m, layers::builtin_registry())); });
  if (auto d = root.find("data"); d && open_data)
    errors.attempt([&] { in.data.emplace(datasets::open(*d, false, where)); });
  // The sections that need the built net (the optimizer's parameter groups) or the others.
  if (in.exp && in.model)
    errors.attempt([&] {
      const Experiment& exp = *in.exp;
      // build_batch -W: this rank's rows of the global batch on W ranks.
      const int64_t rows = build_batch < 0 ? (exp.train.batch - build_batch - 1) / -build_batch : build_batch;
      in.model->net.set_precision(exp.train.precision);
      in.model->net.build(std::max<int64_t>(1, rows), exp.train.seed);
      const auto optimizer = Optimizer::create(exp.optimizer, in.model->net);
      errors.attempt([&] { create_run_schedule(exp.schedule, *optimizer, exp.train); });
    });
  if (in.exp) errors.attempt([&] { CheckpointPolicy::parse(in.exp->checkpoint, run_dir); });
  if (in.exp && in.data && in.data->store == "streaming" && in.exp->train.exact == TrainOptions::Exact::on)
    errors.attempt([&] {
      throw ConfigError(cat("train.exact: true needs the exact global permutation, but ", in.data->store_why,
                            "; give the split a larger data.memory_mb, more ranks, or exact: auto"));
    });
  if (in.model && in.data)
    errors.attempt([&] {
      const datasets::Splits& data = *in.data;
      const Net& net = in.model->net;
      const Shape sample = data.transform ? data.transform->output_shape() : data.train->sample_shape();
      if (sample != net.input_shape())
        throw ShapeError(cat(data.train->name(), ": samples have shape ", sample.str(), " but model.input is ",
                             net.input_shape().str()));
      if (!in.model->loss->targets_are_inputs()) in.model->loss->check(net.output_shape(), data.train->num_classes());
    });
  errors.raise();
  return in;
}

}  // namespace hubel
