// libFuzzer target: the IDX reader (images and labels files, plain or gzipped). The first
// two bytes of the input say where the images file ends and the labels file begins.
#include "datasets/convert.hpp"
#include "framework/error.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t split = std::min<size_t>(size - 2, (static_cast<size_t>(data[0]) << 8 | data[1]));
  const std::string images = hubel::fuzz::write_file("images-idx3-ubyte", data + 2, split);
  const std::string labels = hubel::fuzz::write_file("labels-idx1-ubyte", data + 2 + split, size - 2 - split);
  try {
    const auto s = hubel::datasets::read_idx(images, labels, "train");
    if (s.images.size() != static_cast<size_t>(s.size() * s.sample_shape.numel())) __builtin_trap();
  } catch (const hubel::Error&) {
  }
  return 0;
}
