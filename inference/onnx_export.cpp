#include "inference/onnx_export.hpp"

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "datasets/transform.hpp"
#include "framework/error.hpp"
#include "framework/hdf5.hpp"
#include "framework/onnx.hpp"

namespace hubel::inference {

size_t export_onnx(const Net& net, const datasets::Transform* transform, const Shape& stored, const OnnxOptions& o,
                   const std::string& path) {
  onnx::Graph g(o.opset, o.batch);
  const std::string input = g.reserve("input");
  const std::string out =
      net.to_onnx(g, input, [&](const std::string& x) { return transform ? transform->to_onnx(g, x) : x; });
  const Shape& sample = transform ? stored : net.input_shape();
  g.input(input, onnx::dims(sample));
  g.output(out, onnx::dims(net.output_shape()));
  const std::string bytes = g.serialize(o.producer, HUBEL_VERSION, "hubel");
  const std::string tmp = h5::temporary_name(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f.flush()) {
      std::remove(tmp.c_str());
      throw DataError(cat("cannot write ", tmp, h5::write_hint(errno)));
    }
  }
  h5::durable_rename(tmp, path);
  return g.nodes();
}

}  // namespace hubel::inference
