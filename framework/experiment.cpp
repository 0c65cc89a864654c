// Reading experiment files.
#include "framework/experiment.hpp"

#include "framework/error.hpp"
#include "framework/registry.hpp"

namespace hubel {

Experiment Experiment::load(const std::string& path, const std::vector<std::string>& overrides) {
  Config root = Config::load_file(path);
  for (const auto& o : overrides) root.apply_override(o);
  return from_config(root);
}

Experiment Experiment::from_config(Config root, ErrorList* errors) {
  ErrorList own;
  ErrorList& list = errors ? *errors : own;
  const size_t before = list.size();
  for (const char* section : {"model", "data", "optimizer"}) list.attempt([&] { root.at(section); });
  const bool complete = list.size() == before;
  TrainOptions train;
  if (auto t = root.find("train")) list.attempt([&] { train = TrainOptions::parse(*t); });
  auto schedule = root.find("schedule");
  auto checkpoint = root.find("checkpoint");
  list.attempt([&] { root.finish(); });
  if (!complete || !errors) list.raise();
  return Experiment{root, root.at("model"), root.at("data"), root.at("optimizer"), schedule, checkpoint, train};
}

BuiltModel build_model(const Config& model, const LayerRegistry& registry) {
  BuiltModel m{Net::from_config(model, registry), nullptr, std::nullopt};
  const Config loss = model.at("loss");
  if (loss.is_scalar()) {
    m.loss = registry.make_loss(loss.as<std::string>(), loss);
  } else {
    m.loss = registry.make_loss(loss.get<std::string>("type"), loss);
    loss.finish();
  }
  if (auto w = model.find("weights")) {
    m.weights = WeightsSource{w->path_of("file"), w->get<std::vector<std::string>>("exclude", {})};
    w->finish();
  }
  model.finish();
  return m;
}

}  // namespace hubel
