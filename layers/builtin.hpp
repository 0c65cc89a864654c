// The built-in layers and losses, registered by name.
#pragma once

#include "framework/registry.hpp"

namespace hubel::layers {

// Adds every built-in layer and loss type to `r`.
void register_builtin_layers(LayerRegistry& r);
// A registry holding the built-ins (built once).
const LayerRegistry& builtin_registry();

}  // namespace hubel::layers
