// Builds a layer from one line of YAML through the built-in registry, as an experiment
// file would (unknown keys are errors), so tests exercise the configuration path too.
#pragma once

#include <memory>
#include <string>

#include "framework/config.hpp"
#include "layers/builtin.hpp"

namespace hubel::test {

inline std::unique_ptr<Layer> layer_from_yaml(const std::string& yaml, const std::string& name = "l") {
  Config c = Config::parse(yaml, "test.yaml");
  auto layer = layers::builtin_registry().make_layer(c.get<std::string>("type"), c);
  c.finish();
  layer->set_name(name);
  return layer;
}

}  // namespace hubel::test
