// One line per layer type: the registry of built-in layers and losses.
#include "layers/builtin.hpp"

#include "layers/activations.hpp"
#include "layers/dense.hpp"
#include "layers/joins.hpp"
#include "layers/losses.hpp"
#include "layers/shape_ops.hpp"
#include "layers/softmax.hpp"

namespace hubel::layers {

void register_builtin_layers(LayerRegistry& r) {
  r.add_layer("dense", Dense::from_config);
  r.add_layer("flatten", Reshape::flatten_from_config);
  r.add_layer("reshape", Reshape::from_config);
  r.add_layer("sigmoid", make_sigmoid);
  r.add_layer("tanh", make_tanh);
  r.add_layer("scaled_tanh", make_scaled_tanh);
  r.add_layer("relu", make_relu);
  r.add_layer("leaky_relu", make_leaky_relu);
  r.add_layer("elu", make_elu);
  r.add_layer("softmax", Softmax::from_config);
  r.add_layer("add", Add::from_config);
  r.add_layer("concat", Concat::from_config);

  r.add_loss("softmax_cross_entropy", SoftmaxCrossEntropy::from_config);
  r.add_loss("mse", MeanSquaredError::from_config);
  r.add_loss("sigmoid_cross_entropy", SigmoidCrossEntropy::from_config);
}

const LayerRegistry& builtin_registry() {
  static const LayerRegistry r = [] {
    LayerRegistry reg;
    register_builtin_layers(reg);
    return reg;
  }();
  return r;
}

}  // namespace hubel::layers
