// libFuzzer target: the checkpoint loader's validation of what it reads. Structure-aware:
// the input is a list of edits applied to a valid checkpoint of a small net, rebuilt for
// every input through hubel's own HDF5 writer, so the fuzzer explores attributes, shapes,
// counts and missing pieces (not the HDF5 library's byte parser). Each edit is 1 byte of
// kind, 1 of target, then values: set an integer attribute, a string attribute, a
// parameter's or optimizer state's shape, a metrics column's length, or drop an object.
// Whatever load_checkpoint accepts must leave finite weights of the right sizes.
#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "framework/checkpoint.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/hdf5.hpp"
#include "layers/builtin.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace hubel;

namespace {

struct Setup {
  Net net;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<Schedule> schedule;
};

Setup make() {
  const Config model = Config::parse(
      "input: [1, 4, 4]\nlayers:\n  - {name: c, type: conv2d, filters: 2, kernel: 3}\n  - {name: bn, type: batchnorm}\n"
      "  - {name: fc, type: dense, units: 3}\n",
      "fuzz.yaml");
  Setup s{Net::from_config(model, layers::builtin_registry()), nullptr, nullptr};
  s.net.build(2, 1);
  s.opt = Optimizer::create(Config::parse("{type: adam, lr: 0.01}"), s.net);
  s.schedule = Schedule::create(std::nullopt, 0.01, 1);
  return s;
}

const char* kInts[] = {"epoch", "batch", "step", "seed", "ranks", "format_version"};
const char* kStrings[] = {"format", "experiment", "hubel_version"};
const char* kParams[] = {"/model/c/w",
                         "/model/c/b",
                         "/model/bn/gamma",
                         "/model/bn/running_var",
                         "/model/fc/w",
                         "/optimizer/first_moment/fc/w",
                         "/optimizer/second_moment/c/w",
                         "/metrics/epoch",
                         "/metrics/train_loss",
                         "/metrics/steps"};

struct Reader {
  const uint8_t* p;
  size_t n;
  bool more() const { return n > 0; }
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int64_t integer() {  // small values mostly, sometimes huge or negative
    const uint8_t k = byte();
    int64_t v = 0;
    for (int i = 0; i < (k & 7); ++i) v = v << 8 | byte();
    return (k & 8) ? -v : v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup s = make();
  const std::string path = fuzz::scratch_dir() + "/ckpt.h5";
  CheckpointMeta meta;
  meta.experiment = "fuzz";
  meta.history.resize(2);
  save_checkpoint(path, s.net, *s.opt, *s.schedule, meta);
  Reader r{data, size};
  {
    h5::File f = h5::File::open_write(path);
    while (r.more()) {
      const uint8_t kind = r.byte() % 5, target = r.byte();
      try {
        if (kind == 0) {
          h5::write_attribute(f, "/", kInts[target % 6], r.integer());
        } else if (kind == 1) {
          std::string v;
          for (uint8_t len = r.byte() % 24; len > 0; --len) v += static_cast<char>(r.byte());
          h5::write_attribute(f, "/", kStrings[target % 3], target & 0x80 ? std::string("hubel-checkpoint") : v);
        } else if (kind == 2 || kind == 3) {
          // Replace a dataset by one of another shape (rank 0-5, small dimensions).
          const std::string obj = kParams[target % 10];
          std::vector<int64_t> dims(r.byte() % 6);
          int64_t count = 1;
          for (auto& d : dims) count *= (d = r.byte() % 9);
          if (count > 4096) continue;
          H5Ldelete(f.id(), obj.c_str(), H5P_DEFAULT);
          std::vector<float> values(static_cast<size_t>(count));
          for (auto& v : values) v = kind == 3 ? std::nanf("") : static_cast<float>(r.integer());
          h5::write_dataset(f, obj, H5T_NATIVE_FLOAT, dims, values.data(), true);
        } else {
          H5Ldelete(f.id(), (target & 1 ? kParams[target % 10] : "/optimizer"), H5P_DEFAULT);
        }
      } catch (const Error&) {  // an edit the writer refuses is simply skipped
      }
    }
  }
  try {
    read_checkpoint_meta(path);
    read_checkpoint_params(path);
    load_checkpoint(path, s.net, s.opt.get(), s.schedule.get());
    // Accepted: the state has its sizes (NaNs are data, not a validation failure).
    if (s.net.state().size() == 0) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
