// libFuzzer target: the CIFAR-10 binary batch reader.
#include "datasets/convert.hpp"
#include "framework/error.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string batch = hubel::fuzz::write_file("data_batch_1.bin", data, size);
  try {
    const auto s = hubel::datasets::read_cifar10({batch}, "train");
    if (s.images.size() != static_cast<size_t>(s.size()) * 3072) __builtin_trap();
    for (int32_t l : s.labels)
      if (l < 0 || l > 9) __builtin_trap();
  } catch (const hubel::Error&) {
  }
  return 0;
}
