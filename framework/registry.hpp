// The layer and loss registries: a type name maps to a factory that reads the layer's
// config node. Adding a layer is one file pair and one line in layers/builtin.cpp; there
// are no static registrars (they need whole-archive linking).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/config.hpp"
#include "framework/layer.hpp"
#include "framework/loss.hpp"

namespace hubel {

class LayerRegistry {
 public:
  // A factory reads its keys from the config (the Net has already read "type", "name"
  // and "inputs") and returns the layer; the Net then rejects any key it did not read.
  using LayerFactory = std::function<std::unique_ptr<Layer>(const Config&)>;
  using LossFactory = std::function<std::unique_ptr<Loss>(const Config&)>;

  void add_layer(const std::string& type, LayerFactory f);
  void add_loss(const std::string& type, LossFactory f);

  // Throw ConfigError naming the unknown type and listing the known ones.
  std::unique_ptr<Layer> make_layer(const std::string& type, const Config& c) const;
  std::unique_ptr<Loss> make_loss(const std::string& type, const Config& c) const;

  std::vector<std::string> layer_types() const;
  std::vector<std::string> loss_types() const;

 private:
  std::map<std::string, LayerFactory> layers_;
  std::map<std::string, LossFactory> losses_;
};

}  // namespace hubel
