// One line per optimizer type: the registry of built-in optimizers.
#include "framework/adagrad.hpp"
#include "framework/adam.hpp"
#include "framework/lars.hpp"
#include "framework/registry.hpp"
#include "framework/rmsprop.hpp"
#include "framework/sgd.hpp"

namespace hubel {

const OptimizerRegistry& builtin_optimizers() {
  static const OptimizerRegistry r = [] {
    OptimizerRegistry r("optimizer", "known optimizers");
    r.add("sgd", Sgd::from_config);
    r.add("adagrad", Adagrad::from_config);
    r.add("rmsprop", Rmsprop::from_config);
    r.add("adam", [](const Config& c, const Optimizer::Common& o, const std::vector<ParamInfo>& l, int64_t n) {
      return Adam::from_config(c, o, l, n, false);
    });
    r.add("adamw", [](const Config& c, const Optimizer::Common& o, const std::vector<ParamInfo>& l, int64_t n) {
      return Adam::from_config(c, o, l, n, true);
    });
    r.add("lars", Lars::from_config);
    r.add("lamb", Lamb::from_config);
    return r;
  }();
  return r;
}

}  // namespace hubel
