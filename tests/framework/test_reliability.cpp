// Damaged and hostile files: no exception across HDF5's C frames (HDF5 stays usable from
// another thread after a damaged checkpoint was refused), declared sizes checked against
// what a file stores before anything is allocated, the metadata checksum, non-finite
// inputs named as data errors, pruning by lineage.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "datasets/hdf5_dataset.hpp"
#include "framework/checkpoint.hpp"
#include "framework/config.hpp"
#include "framework/hdf5.hpp"
#include "framework/net.hpp"
#include "framework/optimizer.hpp"
#include "framework/schedule.hpp"
#include "layers/builtin.hpp"
#include "tests/temp_dir.hpp"

namespace hubel {

namespace fs = std::filesystem;

namespace {
using test::TempDir;

Net small_net() {
  Net net = Net::from_config(
      Config::parse(
          "input: [4]\nlayers:\n  - {name: fc, type: dense, units: 300}\n  - {name: out, type: dense, units: 3}\n",
          "m.yaml"),
      layers::builtin_registry());
  net.build(2, 1);
  for (size_t i = 0; i < net.state().size(); ++i) net.state()[i] = 0.25f + 0.001f * static_cast<float>(i % 101);
  return net;
}

struct Saved {
  Net net = small_net();
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<Schedule> schedule;
  CheckpointMeta meta;
  Saved() {
    opt = Optimizer::create(Config::parse("type: sgd\nlr: 0.1\nmomentum: 0.9\n", "o.yaml"), net);
    schedule = Schedule::create(std::nullopt, 0.1, 3);
    meta.step = 40, meta.epoch = 1, meta.batch = 5, meta.seed = 7, meta.run_id = "00112233aabbccdd";
    meta.experiment = "model: {}\n";
  }
};

// Flips 4 bytes at the middle of the first occurrence of `pattern` (a dataset's bytes).
void flip_inside(const std::string& file, const void* pattern, size_t n) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t at = bytes.find(std::string(static_cast<const char*>(pattern), n));
  ASSERT_NE(at, std::string::npos);
  for (size_t i = 0; i < 4; ++i) bytes[at + n / 2 + i] = static_cast<char>(~bytes[at + n / 2 + i]);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// True when an HDF5 call on another thread finishes within 10 s (a lock left held by an
// exception that crossed HDF5 would block it for ever).
bool hdf5_usable_from_another_thread(const std::string& file) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread([file, done] {
    try {
      const h5::File f = h5::File::open_read(file);
      (void)f.exists("/model");
    } catch (...) {
    }
    *done = true;
  }).detach();
  for (int i = 0; i < 1000 && !*done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return *done;
}
}  // namespace

TEST(DamagedCheckpoint, IsRefusedByNameAndHdf5StaysUsable) {
  TempDir dir;
  Saved s;
  const std::string file = dir / "ckpt.h5";
  save_checkpoint(file, s.net, *s.opt, *s.schedule, s.meta);
  const auto& fc = s.net.param_info();
  const ParamInfo* w = nullptr;
  for (const auto& p : fc)
    if (p.full_name() == "fc/w") w = &p;
  ASSERT_NE(w, nullptr);
  flip_inside(file, s.net.state().data() + w->offset, static_cast<size_t>(w->size) * 4);
  try {
    (void)read_checkpoint_params(file);
    FAIL() << "a damaged parameter was read";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt.h5:/model/fc/w: reading failed"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(hdf5_usable_from_another_thread(file));
  EXPECT_THROW(verify_checkpoint(file), DataError);
  EXPECT_TRUE(hdf5_usable_from_another_thread(file));
}

TEST(DamagedCheckpoint, TheMetadataChecksumCoversTheAttributes) {
  TempDir dir;
  Saved s;
  const std::string file = dir / "ckpt.h5";
  save_checkpoint(file, s.net, *s.opt, *s.schedule, s.meta);
  const CheckpointMeta m = read_checkpoint_meta(file);
  EXPECT_EQ(m.step, 40);
  EXPECT_EQ(m.run_id, "00112233aabbccdd");
  EXPECT_EQ(m.optimizer_type, "sgd");
  // Another value written over one attribute, as a flipped bit would leave it.
  {
    h5::File f = h5::File::open_write(file);
    h5::write_attribute(f, "/", "step", int64_t{48});
  }
  try {
    (void)read_checkpoint_meta(file);
    FAIL() << "a changed step attribute was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("the metadata checksum does not match"), std::string::npos) << e.what();
  }
  Net net = small_net();
  EXPECT_THROW(load_checkpoint(file, net, nullptr, nullptr), DataError);
}

TEST(HostileFiles, AHugeUnwrittenParameterIsRefusedBeforeAllocating) {
  TempDir dir;
  const std::string file = dir / "huge.h5";
  {
    h5::File f = h5::File::create(file);
    h5::write_attribute(f, "/", "format", std::string("hubel-weights"));
    h5::write_attribute(f, "/", "format_version", int64_t{1});
    h5::create_dataset(f, "/model/fc/w", H5T_NATIVE_FLOAT, {int64_t{1} << 31}, 1 << 20, 0, true);  // no chunk written
  }
  EXPECT_LT(fs::file_size(file), 100'000u);
  try {
    (void)read_checkpoint_params(file);
    FAIL() << "read";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("huge.h5:/model/fc/w: declares 8589934592 bytes but the file stores 0"),
              std::string::npos)
        << e.what();
  }
}

TEST(HostileFiles, ADataFileDeclaringTwoBillionSamplesIsRefusedBeforeAllocating) {
  TempDir dir;
  const std::string file = dir / "huge.h5";
  {
    h5::File f = h5::File::create(file);
    const int64_t n = int64_t{1} << 31;
    h5::create_dataset(f, "/train/images", H5T_NATIVE_UINT8, {n, 1, 28, 28}, 64, 1, true);
    h5::create_dataset(f, "/train/labels", H5T_NATIVE_INT32, {n}, 1 << 16, 1, true);
    h5::write_attribute(f, "/", "num_classes", int64_t{10});
  }
  EXPECT_LT(fs::file_size(file), 4'000'000u);
  try {
    datasets::Hdf5Dataset d(file, "train");
    FAIL() << "opened";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "huge.h5:/train/images: declares 2147483648 rows but only 0 of its 33554432 chunks are stored"),
              std::string::npos)
        << e.what();
  }
}

TEST(HostileFiles, AnUnusedHugeMeanImageIsNotRead) {
  TempDir dir;
  const std::string file = dir / "m.h5";
  {
    h5::File f = h5::File::create(file);
    h5::create_dataset(f, "/mean_image", H5T_NATIVE_FLOAT, {int64_t{1} << 28, 1, 1}, 1 << 20, 0, true);
    h5::write_attribute(f, "/", "mean", std::vector<double>{0.5});
    h5::write_attribute(f, "/", "std", std::vector<double>{0.2});
  }
  const datasets::FileStats st = datasets::read_file_stats(file);  // no mean image asked for
  EXPECT_EQ(st.mean_image.shape().rank(), 0);
  EXPECT_EQ(st.mean.size(), 1u);
  const Shape want{1, 28, 28};
  EXPECT_THROW(datasets::read_file_stats(file, &want), DataError);  // of another shape: refused, not read
}

TEST(HostileFiles, NonFiniteInputsAreADataErrorNamingFileSplitAndSample) {
  TempDir dir;
  for (const int64_t memory : {datasets::Hdf5Dataset::kDefaultMemoryBytes, datasets::Hdf5Dataset::kStreamed}) {
    const std::string file = dir / cat("f", memory, ".h5");
    {
      h5::File f = h5::File::create(file);
      std::vector<float> images(10 * 4, 0.5f);
      images[7 * 4 + 2] = std::nanf("");
      h5::write_dataset(f, "/test/images", H5T_NATIVE_FLOAT, {10, 1, 2, 2}, images.data(), true);
      std::vector<int32_t> labels(10, 1);
      h5::write_dataset(f, "/test/labels", H5T_NATIVE_INT32, {10}, labels.data(), true);
      h5::write_attribute(f, "/", "num_classes", int64_t{2});
    }
    datasets::Hdf5Dataset d(file, "test", memory);
    Tensor x(Shape{3, 1, 2, 2});
    int32_t labels[3];
    const int64_t fine[3] = {0, 1, 2};
    if (memory == datasets::Hdf5Dataset::kStreamed) {
      EXPECT_NO_THROW(d.read(fine, x.view(), labels, {}));
    }
    const int64_t idx[3] = {3, 7, 9};
    try {
      d.read(idx, x.view(), labels, {});
      FAIL() << "a NaN was read as data";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(cat(file, ":/test/images: sample 7 holds nan at element 2")),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(CheckpointDir, PrunesOnlyItsOwnLineageAndNeverTheNewest) {
  TempDir dir;
  Saved s;
  const CheckpointDir ck(dir / "ck", 2);
  // Another run's checkpoint, with a later step.
  CheckpointMeta other = s.meta;
  other.run_id = "ffffffffffffffff";
  other.step = 9380;
  ck.write(s.net, *s.opt, *s.schedule, other);
  for (int64_t step : {100, 200, 300, 400}) {
    s.meta.step = step;
    ck.write(s.net, *s.opt, *s.schedule, s.meta);
  }
  std::vector<int64_t> steps;
  for (const auto& [step, path] : ck.list()) steps.push_back(step);
  EXPECT_EQ(steps, (std::vector<int64_t>{9380, 400, 300}));
  std::ifstream latest(dir / "ck/latest");
  std::string name;
  latest >> name;
  EXPECT_EQ(name, "ckpt-000000400.h5");
  EXPECT_EQ(*ck.newest_good(), dir / "ck/ckpt-000000400.h5");
  const std::string aside = ck.move_aside();
  EXPECT_TRUE(ck.list().empty());
  EXPECT_TRUE(fs::exists(fs::path(aside) / "ckpt-000009380.h5"));
  EXPECT_TRUE(fs::exists(fs::path(aside) / "latest"));
}

}  // namespace hubel

namespace hubel {

TEST(Checkpoints, AProjectionStoredInsideItsAddStillLoads) {
  // Files written before the projection shortcut became its own node hold "sum/proj_w".
  TempDir dir;
  auto projected = [] {
    Net n =
        Net::from_config(Config::parse("input: [1, 4, 4]\nlayers:\n"
                                       "  - {name: a, type: conv, filters: 2, kernel: 1, stride: 2, rounding: floor}\n"
                                       "  - {name: sum, type: add, inputs: [a, input], project: auto}\n",
                                       "m.yaml"),
                         layers::builtin_registry());
    n.build(1, 1);
    return n;
  };
  Net net = projected();
  const std::string file = dir / "old.h5";
  {
    h5::File f = h5::File::create(file);
    h5::write_attribute(f, "/", "format", std::string("hubel-weights"));
    h5::write_attribute(f, "/", "format_version", int64_t{1});
    const float aw[2] = {1, 2}, ab[2] = {3, 4}, proj[2] = {5, 6};
    h5::write_dataset(f, "/model/a/w", H5T_NATIVE_FLOAT, {2, 1, 1, 1}, aw, true);
    h5::write_dataset(f, "/model/a/b", H5T_NATIVE_FLOAT, {2}, ab, true);
    h5::write_dataset(f, "/model/sum/proj_w", H5T_NATIVE_FLOAT, {2, 1, 1, 1}, proj, true);
  }
  load_checkpoint(file, net, nullptr, nullptr);
  const Layer* p = net.find("sum_proj");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->params()[0].w[0], 5);
  EXPECT_EQ(p->params()[0].w[1], 6);
  Net other = projected();
  const WeightsReport r = load_weights_by_name(file, other, {});
  EXPECT_EQ(r.values, 6);
  EXPECT_EQ(other.find("sum_proj")->params()[0].w[1], 6);
}

}  // namespace hubel
