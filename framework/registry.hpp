// One registry template for everything an experiment names by type: layers, losses,
// optimizers and schedules. A type name maps to a factory that reads its keys from the
// config node; an unknown name is a ConfigError naming it and listing the known ones.
// Registration is explicit (one line per type in a builtin_*.cpp file), never by static
// registrars (they need whole-archive linking).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/layer.hpp"
#include "framework/loss.hpp"
#include "framework/suggest.hpp"

namespace hubel {

template <class Product, class... Args>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Product>(const Config&, Args...)>;
  // `what` names the kind in errors ("layer type"), `known` the list ("known types").
  Registry(std::string what, std::string known) : what_(std::move(what)), known_(std::move(known)) {}

  void add(const std::string& type, Factory f) {
    if (!factories_.emplace(type, std::move(f)).second) throw Error(cat(what_, " '", type, "' registered twice"));
  }
  bool has(const std::string& type) const { return factories_.count(type) > 0; }
  // ConfigError at c (where the type was named) unless the type is known.
  void check(const std::string& type, const Config& c) const {
    if (has(type)) return;
    const std::string near = did_you_mean(type, types());
    // The nearest few when some are near; the whole list only when it is short.
    if (!near.empty() || factories_.size() > 12)
      c.fail(cat("unknown ", what_, " '", type, "'", near.empty() ? "" : near, " (", factories_.size(), " ", known_,
                 "; docs/experiment.md describes them)"));
    c.fail(cat("unknown ", what_, " '", type, "'; ", known_, ": ", join(types(), ", ")));
  }
  // The factory of `type` on the section c (an unknown type is an error at c).
  std::unique_ptr<Product> make(const std::string& type, const Config& c, Args... args) const {
    check(type, c);
    return factories_.at(type)(c, std::forward<Args>(args)...);
  }
  std::vector<std::string> types() const {
    std::vector<std::string> v;
    for (const auto& [k, f] : factories_) v.push_back(k);
    return v;
  }

 private:
  std::string what_, known_;
  std::map<std::string, Factory> factories_;
};

// The layers and losses a model may name (layers::builtin_registry() has hubel's own).
class LayerRegistry {
 public:
  // A layer factory reads its keys from the config (the Net has already read "type",
  // "name" and "inputs") and returns the layer; the Net then rejects any key it did not read.
  using LayerFactory = Registry<Layer>::Factory;
  using LossFactory = Registry<Loss>::Factory;

  void add_layer(const std::string& type, LayerFactory f) { layers_.add(type, std::move(f)); }
  void add_loss(const std::string& type, LossFactory f) { losses_.add(type, std::move(f)); }
  std::unique_ptr<Layer> make_layer(const std::string& type, const Config& c) const { return layers_.make(type, c); }
  std::unique_ptr<Loss> make_loss(const std::string& type, const Config& c) const { return losses_.make(type, c); }
  std::vector<std::string> layer_types() const { return layers_.types(); }
  std::vector<std::string> loss_types() const { return losses_.types(); }

 private:
  Registry<Layer> layers_{"layer type", "known types"};
  Registry<Loss> losses_{"loss", "known losses"};
};

}  // namespace hubel
