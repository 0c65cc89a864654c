// ONNX export of a trained model: the evaluation transform of the experiment's data as
// the first nodes, then every layer (Layer::to_onnx), written atomically. The model's
// input is "input", floats of the stored samples' values [N, C, (D,) H, W] (uint8 pixels
// as 0..255; a model trained on encoded images takes the image at the samples' size,
// resized and cropped as hubel predict does); its output is the network's (logits
// before any loss).
#pragma once

#include <cstdint>
#include <string>

#include "framework/net.hpp"

namespace hubel::datasets {
class Transform;
}

namespace hubel::inference {

struct OnnxOptions {
  int opset = 13;     // 13..17
  int64_t batch = 0;  // 0: dynamic ("N")
  std::string producer = "hubel";
};

// Writes `path` (a temporary file, then renamed: an existing file is replaced whole or
// kept). `transform` may be null (the network's input is the model's). Throws
// ConfigError naming the first layer or transform ONNX cannot express; returns the
// number of nodes written.
size_t export_onnx(const Net& net, const datasets::Transform* transform, const Shape& stored, const OnnxOptions& o,
                   const std::string& path);

}  // namespace hubel::inference
