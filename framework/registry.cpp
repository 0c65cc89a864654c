// Layer and loss registries.
#include "framework/registry.hpp"

namespace hubel {

namespace {

template <class Map>
std::string list_keys(const Map& m) {
  std::string s;
  for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k;
  return s;
}

}  // namespace

void LayerRegistry::add_layer(const std::string& type, LayerFactory f) {
  if (!layers_.emplace(type, std::move(f)).second) throw Error(cat("layer type '", type, "' registered twice"));
}

void LayerRegistry::add_loss(const std::string& type, LossFactory f) {
  if (!losses_.emplace(type, std::move(f)).second) throw Error(cat("loss type '", type, "' registered twice"));
}

std::unique_ptr<Layer> LayerRegistry::make_layer(const std::string& type, const Config& c) const {
  auto it = layers_.find(type);
  if (it == layers_.end()) c.fail(cat("unknown layer type '", type, "'; known types: ", list_keys(layers_)));
  return it->second(c);
}

std::unique_ptr<Loss> LayerRegistry::make_loss(const std::string& type, const Config& c) const {
  auto it = losses_.find(type);
  if (it == losses_.end()) c.fail(cat("unknown loss '", type, "'; known losses: ", list_keys(losses_)));
  return it->second(c);
}

std::vector<std::string> LayerRegistry::layer_types() const {
  std::vector<std::string> v;
  for (const auto& [k, f] : layers_) v.push_back(k);
  return v;
}

std::vector<std::string> LayerRegistry::loss_types() const {
  std::vector<std::string> v;
  for (const auto& [k, f] : losses_) v.push_back(k);
  return v;
}

}  // namespace hubel
