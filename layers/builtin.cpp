// One line per layer type: the registry of built-in layers and losses.
#include "layers/builtin.hpp"

#include "layers/activations.hpp"
#include "layers/conv.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/joins.hpp"
#include "layers/losses.hpp"
#include "layers/norm.hpp"
#include "layers/pool.hpp"
#include "layers/rbf.hpp"
#include "layers/shape_ops.hpp"
#include "layers/softmax.hpp"
#include "layers/weighted_pool.hpp"

namespace hubel::layers {

void register_builtin_layers(LayerRegistry& r) {
  r.add_layer("dense", Dense::from_config);
  // Convolution and pooling: "conv" takes its rank from the input, "conv2d" insists on 2-D.
  for (int rank = 0; rank <= 3; ++rank) {
    const std::string s = rank ? std::to_string(rank) + "d" : "";
    r.add_layer("conv" + s, [rank](const Config& c) { return Conv::from_config(c, rank); });
    r.add_layer("conv_transpose" + s, [rank](const Config& c) { return ConvTranspose::from_config(c, rank); });
    r.add_layer("maxpool" + s, [rank](const Config& c) { return Pool::from_config(c, PoolKind::max, rank); });
    r.add_layer("avgpool" + s, [rank](const Config& c) { return Pool::from_config(c, PoolKind::avg, rank); });
    r.add_layer("l2pool" + s, [rank](const Config& c) { return Pool::from_config(c, PoolKind::l2, rank); });
    r.add_layer("subsample" + s, [rank](const Config& c) { return Subsample::from_config(c, rank); });
    r.add_layer("weighted_avgpool" + s, [rank](const Config& c) { return WeightedPool::from_config(c, rank); });
  }
  r.add_layer("global_avgpool", [](const Config& c) { return GlobalPool::from_config(c, PoolKind::avg); });
  r.add_layer("global_maxpool", [](const Config& c) { return GlobalPool::from_config(c, PoolKind::max); });
  r.add_layer("maxout", Maxout::from_config);
  r.add_layer("flatten", Reshape::flatten_from_config);
  r.add_layer("reshape", Reshape::from_config);
  r.add_layer("sigmoid", make_sigmoid);
  r.add_layer("tanh", make_tanh);
  r.add_layer("scaled_tanh", make_scaled_tanh);
  r.add_layer("relu", make_relu);
  r.add_layer("leaky_relu", make_leaky_relu);
  r.add_layer("elu", make_elu);
  r.add_layer("softmax", Softmax::from_config);
  r.add_layer("rbf", Rbf::from_config);
  r.add_layer("dropout", Dropout::from_config);
  r.add_layer("batchnorm", BatchNorm::from_config);
  r.add_layer("layernorm", LayerNorm::from_config);
  r.add_layer("add", Add::from_config);
  r.add_layer("concat", Concat::from_config);

  r.add_loss("softmax_cross_entropy", SoftmaxCrossEntropy::from_config);
  r.add_loss("mse", MeanSquaredError::from_config);
  r.add_loss("sigmoid_cross_entropy", SigmoidCrossEntropy::from_config);
  r.add_loss("map", MapCriterion::from_config);
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
