// Datasets: IDX and CIFAR-10 round trips through the HDF5 format, every malformed input
// and its error (and no file left behind), the reader's checks, the Loader's sharding,
// shuffling, prefetching and positions, and the transforms.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>
#include <zlib.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <set>

#include "datasets/convert.hpp"
#include "datasets/hdf5_dataset.hpp"
#include "datasets/loader.hpp"
#include "datasets/open.hpp"
#include "datasets/spirals.hpp"
#include "datasets/subset.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/hdf5.hpp"
#include "framework/stall.hpp"
#include "tests/expect_error.hpp"
#include "tests/temp_dir.hpp"

namespace hubel::datasets {

namespace fs = std::filesystem;
using test::error_of;

namespace {

// A fresh directory per test.
using test::TempDir;

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

std::vector<uint8_t> idx_bytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& payload, uint8_t type = 0x08) {
  std::vector<uint8_t> v{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (auto d : dims) put32(v, d);
  v.insert(v.end(), payload.begin(), payload.end());
  return v;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes, bool gz = false) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

// n images of h x w with pixel (i, p) = (7 i + p) mod 256, labels i mod classes.
std::vector<uint8_t> pixels(int n, int h, int w) {
  std::vector<uint8_t> v(static_cast<size_t>(n * h * w));
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < h * w; ++p) v[static_cast<size_t>(i * h * w + p)] = static_cast<uint8_t>((7 * i + p) % 256);
  return v;
}
std::vector<uint8_t> labels(int n, int classes) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<uint8_t>(i % classes);
  return v;
}

void write_mnist_dir(const TempDir& d, int n_train, int n_test, bool gz) {
  const std::string ext = gz ? ".gz" : "";
  write_file(d / ("train-images-idx3-ubyte" + ext),
             idx_bytes({static_cast<uint32_t>(n_train), 4, 3}, pixels(n_train, 4, 3)), gz);
  write_file(d / ("train-labels-idx1-ubyte" + ext), idx_bytes({static_cast<uint32_t>(n_train)}, labels(n_train, 5)),
             gz);
  write_file(d / ("t10k-images-idx3-ubyte" + ext),
             idx_bytes({static_cast<uint32_t>(n_test), 4, 3}, pixels(n_test, 4, 3)), gz);
  write_file(d / ("t10k-labels-idx1-ubyte" + ext), idx_bytes({static_cast<uint32_t>(n_test)}, labels(n_test, 5)), gz);
}

}  // namespace

TEST(Idx, RoundTripThroughHdf5GzippedOrNot) {
  for (bool gz : {false, true}) {
    TempDir d;
    write_mnist_dir(d, 10, 4, gz);
    const std::string out = d / "out.h5";
    const auto summary = convert_idx_dir(d.path.string(), out, {"a,b,c,d,e", {3, gz ? 4 : 0}});
    EXPECT_NE(summary.find("train 10 x [1, 4, 3]; test 4 x [1, 4, 3]; 5 classes"), std::string::npos) << summary;
    Hdf5Dataset train(out, "train", gz ? 0 : Hdf5Dataset::kDefaultMemoryBytes),
        test(out, "test");  // row reads, or resident
    EXPECT_EQ(train.size(), 10);
    EXPECT_EQ(test.size(), 4);
    EXPECT_EQ(train.sample_shape(), (Shape{1, 4, 3}));
    EXPECT_EQ(train.num_classes(), 5);
    // Read rows out of order and repeated: each lands where asked.
    const std::vector<int64_t> idx{7, 2, 9, 2};
    Tensor x(Shape{4, 1, 4, 3});
    std::vector<int32_t> lab(4);
    train.read(idx, x.view(), lab.data(), {});
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(lab[r], idx[r] % 5);
      for (int p = 0; p < 12; ++p) EXPECT_EQ(x[r * 12 + p], static_cast<float>((7 * idx[r] + p) % 256));
    }
    const Shape sample{1, 4, 3};
    const FileStats st = read_file_stats(out, &sample);
    ASSERT_EQ(st.mean.size(), 1u);
    double sum = 0;
    for (auto v : pixels(10, 4, 3)) sum += v;
    EXPECT_NEAR(st.mean[0], sum / 120, 1e-9);
    EXPECT_EQ(st.classes, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
    EXPECT_EQ(st.mean_image.shape(), (Shape{1, 4, 3}));
    EXPECT_EQ(d.files().count("out.h5"), 1u);
  }
}

TEST(Idx, MalformedInputIsAnErrorAndLeavesNoFile) {
  struct Case {
    const char* what;
    std::vector<uint8_t> images, labels;
    const char* message;
  };
  const auto px = pixels(3, 2, 2);
  const std::vector<Case> cases = {
      {"bad magic", {1, 2, 3, 4, 0, 0, 0, 3}, idx_bytes({3}, labels(3, 2)), "bad magic number"},
      {"float type", idx_bytes({3, 2, 2}, px, 0x0D), idx_bytes({3}, labels(3, 2)), "not unsigned bytes"},
      {"wrong rank", idx_bytes({3, 4}, pixels(3, 2, 2)), idx_bytes({3}, labels(3, 2)),
       "has 3 dimensions; this one has 2"},
      {"count mismatch", idx_bytes({3, 2, 2}, px), idx_bytes({2}, labels(2, 2)), "2 labels, but"},
      {"truncated", idx_bytes({3, 2, 2}, {px.begin(), px.end() - 1}), idx_bytes({3}, labels(3, 2)), "truncated"},
      {"trailing bytes",
       [&] {
         auto v = idx_bytes({3, 2, 2}, px);
         v.push_back(0);
         return v;
       }(),
       idx_bytes({3}, labels(3, 2)), "longer than its header says"},
      {"huge header", idx_bytes({0x80000000u, 0x80000000u, 4}, {}), idx_bytes({3}, labels(3, 2)), "refused"},
      // Found by fuzz_idx: sizes whose product overflows 64 bits (undefined behaviour before).
      {"overflowing header", idx_bytes({0xffffffffu, 0xffffffffu, 4}, {}), idx_bytes({3}, labels(3, 2)), "refused"},
      {"empty file", {}, idx_bytes({3}, labels(3, 2)), "truncated"},
  };
  for (const auto& c : cases) {
    TempDir d;
    write_mnist_dir(d, 3, 3, false);
    write_file(d / "train-images-idx3-ubyte", c.images);
    write_file(d / "train-labels-idx1-ubyte", c.labels);
    const auto before = d.files();
    const auto msg = error_of<DataError>([&] { convert_idx_dir(d.path.string(), d / "out.h5", {}); });
    EXPECT_NE(msg.find(c.message), std::string::npos) << c.what << ": " << msg;
    EXPECT_NE(msg.find("ubyte"), std::string::npos) << c.what << ": the message names the file: " << msg;
    EXPECT_EQ(d.files(), before) << c.what;
  }
  TempDir d;
  const auto missing = error_of<DataError>([&] { convert_idx_dir(d.path.string(), d / "out.h5", {}); });
  EXPECT_NE(missing.find("train-images-idx3-ubyte.gz is there"), std::string::npos) << missing;
}

TEST(Idx, AFailedConversionKeepsTheOldFile) {
  TempDir d;
  write_mnist_dir(d, 6, 2, false);
  const std::string out = d / "out.h5";
  convert_idx_dir(d.path.string(), out, {});
  const auto size = fs::file_size(out);
  write_file(d / "t10k-labels-idx1-ubyte", idx_bytes({2}, {0}));  // truncated
  EXPECT_THROW(convert_idx_dir(d.path.string(), out, {}), DataError);
  EXPECT_EQ(fs::file_size(out), size);
  EXPECT_EQ(Hdf5Dataset(out, "train").size(), 6);
}

TEST(Cifar10, RoundTripAndErrors) {
  TempDir d;
  auto batch = [](int n, int first_label) {
    std::vector<uint8_t> v;
    for (int i = 0; i < n; ++i) {
      v.push_back(static_cast<uint8_t>((first_label + i) % 10));
      for (int p = 0; p < 3072; ++p) v.push_back(static_cast<uint8_t>((i * 31 + p) % 251));
    }
    return v;
  };
  for (int b = 1; b <= 5; ++b) write_file(d / cat("data_batch_", b, ".bin"), batch(2, b));
  write_file(d / "test_batch.bin", batch(3, 0));
  const std::string out = d / "cifar.h5";
  const auto summary = convert_cifar10_dir(d.path.string(), out, {});
  EXPECT_NE(summary.find("train 10 x [3, 32, 32]; test 3 x [3, 32, 32]; 10 classes"), std::string::npos) << summary;
  Hdf5Dataset train(out, "train");
  Tensor x(Shape{1, 3, 32, 32});
  int32_t label = -1;
  const int64_t idx = 3;  // batch 2, record 1
  train.read({&idx, 1}, x.view(), &label, {});
  EXPECT_EQ(label, 3);
  for (int p : {0, 1, 1024, 3071}) EXPECT_EQ(x[p], static_cast<float>((1 * 31 + p) % 251));
  EXPECT_EQ(read_file_stats(out).classes[1], "automobile");

  auto bad = batch(2, 0);
  bad.pop_back();
  write_file(d / "data_batch_3.bin", bad);
  const auto before = d.files();
  auto msg = error_of<DataError>([&] { convert_cifar10_dir(d.path.string(), d / "x.h5", {}); });
  EXPECT_NE(msg.find("data_batch_3.bin: 6145 bytes is not a whole number of CIFAR-10 records"), std::string::npos)
      << msg;
  bad = batch(2, 0);
  bad[0] = 42;
  write_file(d / "data_batch_3.bin", bad);
  msg = error_of<DataError>([&] { convert_cifar10_dir(d.path.string(), d / "x.h5", {}); });
  EXPECT_NE(msg.find("label 42"), std::string::npos) << msg;
  EXPECT_EQ(d.files(), before);
}

TEST(Hdf5Dataset, ReadingChecksEverything) {
  TempDir d;
  // A file written by hand with the helpers, broken in one way per split.
  {
    h5::File f = h5::File::create(d / "bad.h5");
    h5::write_attribute(f, "/", "num_classes", int64_t{3});
    const std::vector<uint8_t> img(4 * 2 * 2, 1);
    const std::vector<int32_t> good{0, 1, 2, 0}, out_of_range{0, 1, 3, 0}, three{0, 1, 2};
    const std::vector<int16_t> wide(16, 1);
    for (const char* g : {"/ok", "/range", "/count", "/dtype", "/rank", "/nolabels"}) f.create_group(g);
    h5::write_dataset(f, "/ok/images", H5T_NATIVE_UINT8, {4, 1, 2, 2}, img.data());
    h5::write_dataset(f, "/ok/labels", H5T_NATIVE_INT32, {4}, good.data());
    h5::write_dataset(f, "/range/images", H5T_NATIVE_UINT8, {4, 1, 2, 2}, img.data());
    h5::write_dataset(f, "/range/labels", H5T_NATIVE_INT32, {4}, out_of_range.data());
    h5::write_dataset(f, "/count/images", H5T_NATIVE_UINT8, {4, 1, 2, 2}, img.data());
    h5::write_dataset(f, "/count/labels", H5T_NATIVE_INT32, {3}, three.data());
    h5::write_dataset(f, "/dtype/images", H5T_NATIVE_INT16, {4, 1, 2, 2}, wide.data());
    h5::write_dataset(f, "/dtype/labels", H5T_NATIVE_INT32, {4}, good.data());
    h5::write_dataset(f, "/rank/images", H5T_NATIVE_UINT8, {16}, img.data());
    h5::write_dataset(f, "/rank/labels", H5T_NATIVE_INT32, {4}, good.data());
    h5::write_dataset(f, "/nolabels/images", H5T_NATIVE_UINT8, {4, 1, 2, 2}, img.data());
  }
  const std::string bad = d / "bad.h5";
  EXPECT_EQ(Hdf5Dataset(bad, "ok").size(), 4);
  const std::pair<const char*, const char*> cases[] = {
      {"range", "bad.h5:/range/labels: label 3 of sample 2 is outside [0, 3)"},
      {"count", "bad.h5:/count/labels: there are 3 labels but 4 images"},
      {"dtype", "bad.h5:/dtype/images: images must be uint8 or float32; found int16"},
      {"rank", "bad.h5:/rank/images: expected [N, C, W]"},
      {"nolabels", "bad.h5:/nolabels/labels: missing dataset"},
      {"val", "bad.h5:/val: no such split"},
  };
  for (auto [split, message] : cases) {
    const auto msg = error_of<DataError>([&, split = split] { Hdf5Dataset(bad, split); });
    EXPECT_NE(msg.find(message), std::string::npos) << split << ": " << msg;
  }
  write_file(d / "text.h5", {'h', 'e', 'l', 'l', 'o'});
  EXPECT_NE(error_of<DataError>([&] { Hdf5Dataset(d / "text.h5", "train"); }).find("text.h5: not an HDF5 file"),
            std::string::npos);
  EXPECT_NE(error_of<DataError>([&] { Hdf5Dataset(d / "missing.h5", "train"); }).find("missing.h5: no such file"),
            std::string::npos);
  // A truncated copy of a good file.
  write_mnist_dir(d, 300, 10, false);
  convert_idx_dir(d.path.string(), d / "good.h5", {});
  std::ifstream in(d / "good.h5", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(d / "cut.h5", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  EXPECT_THROW(
      {
        Hdf5Dataset cut(d / "cut.h5", "train", 0);
        std::vector<int64_t> all(300);
        std::iota(all.begin(), all.end(), 0);
        Tensor x(Shape{300, 1, 4, 3});
        cut.read(all, x.view(), nullptr, {});
      },
      DataError);
}

// --- The Loader -------------------------------------------------------------------------

namespace {
// All ids one rank sees in an epoch.
std::vector<int64_t> epoch_ids(Loader& l, int64_t epoch) {
  std::vector<int64_t> ids;
  l.start(epoch);
  Batch b;
  while (l.next(b))
    for (int64_t r = 0; r < b.rows; ++r) ids.push_back(static_cast<int64_t>(b.x[r * 2 + 0]));
  return ids;
}

// A data set whose sample i is (i, 0) with label i mod 3, for identifying rows.
class Counting : public Dataset {
 public:
  explicit Counting(int64_t n) : n_(n) {}
  std::string name() const override { return "counting"; }
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return {2}; }
  int64_t num_classes() const override { return 3; }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const override {
    for (size_t i = 0; i < idx.size(); ++i) {
      x[static_cast<int64_t>(i) * 2] = static_cast<float>(idx[i]);
      x[static_cast<int64_t>(i) * 2 + 1] = 0;
      if (labels) labels[i] = static_cast<int32_t>(idx[i] % 3);
    }
  }

 private:
  int64_t n_;
};
}  // namespace

TEST(Loader, EveryRankTogetherSeesEachSampleOnce) {
  const int64_t n = 120;
  Counting data(n);
  for (int world = 1; world <= 4; ++world) {
    std::multiset<int64_t> all;
    for (int rank = 0; rank < world; ++rank) {
      Loader l(data, nullptr, {12, rank, world, true, false, false, 5, rank % 2 ? 2 : 0});
      EXPECT_EQ(l.batches_per_epoch(), 10);
      for (auto id : epoch_ids(l, 3)) all.insert(id);
    }
    ASSERT_EQ(all.size(), static_cast<size_t>(n)) << world;
    int64_t expect = 0;
    for (auto id : all) EXPECT_EQ(id, expect++) << world;
  }
  Loader l(data, nullptr, {12, 0, 1, true, false, false, 5, 2});
  EXPECT_EQ(l.epoch_order(0), l.epoch_order(0));
  EXPECT_NE(l.epoch_order(0), l.epoch_order(1));
  EXPECT_EQ(epoch_ids(l, 4), l.epoch_order(4));
  Loader other_seed(data, nullptr, {12, 0, 1, true, false, false, 6, 2});
  EXPECT_NE(other_seed.epoch_order(0), l.epoch_order(0));
}

TEST(Loader, LastBatchKeptOrDroppedAndBatchMustDivide) {
  Counting data(50);
  Loader keep(data, nullptr, {16, 1, 2, false, false, false, 1, 2});
  EXPECT_EQ(keep.batches_per_epoch(), 4);
  keep.start(0);
  Batch b;
  std::vector<int64_t> rows, globals;
  while (keep.next(b)) rows.push_back(b.rows), globals.push_back(b.rows_global);
  EXPECT_EQ(rows, (std::vector<int64_t>{8, 8, 8, 1}));  // rank 1 of 2 takes rows [1, 2) of the last 2
  EXPECT_EQ(globals, (std::vector<int64_t>{16, 16, 16, 2}));
  Loader drop(data, nullptr, {16, 0, 2, false, true, false, 1, 2});
  EXPECT_EQ(drop.batches_per_epoch(), 3);
  const auto msg = error_of<ConfigError>([&] { Loader(data, nullptr, {10, 0, 3, true, false, false, 1, 2}); });
  EXPECT_NE(msg.find("train.batch is 10, not a multiple of the 3 ranks"), std::string::npos) << msg;
}

TEST(Loader, PrefetchingYieldsTheSameBatchesAsSynchronousReading) {
  TempDir d;
  write_mnist_dir(d, 200, 10, true);
  convert_idx_dir(d.path.string(), d / "m.h5", {});
  Hdf5Dataset data(d / "m.h5", "train");
  TransformOptions to;
  to.scale = 1.0f / 255;
  to.mean = {0.5f};
  to.std = {0.25f};
  to.pad = {0, 1, 1};
  to.crop_pad = 2;
  to.flip = true;
  Transform t(std::move(to), data.sample_shape());
  for (int64_t start_batch : {0, 3}) {
    Loader sync(data, &t, {16, 1, 2, true, false, true, 9, 0});
    Loader ahead(data, &t, {16, 1, 2, true, false, true, 9, 3});
    sync.start(2, start_batch);
    ahead.start(2, start_batch);
    Batch a, b;
    int count = 0;
    while (sync.next(a)) {
      ASSERT_TRUE(ahead.next(b));
      ASSERT_EQ(a.rows, b.rows);
      EXPECT_EQ(a.index, b.index);
      EXPECT_EQ(0, std::memcmp(a.x.data(), b.x.data(), static_cast<size_t>(a.x.numel()) * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(a.labels, b.labels, static_cast<size_t>(a.rows) * sizeof(int32_t)));
      ++count;
    }
    EXPECT_FALSE(ahead.next(b));
    EXPECT_EQ(count, 13 - start_batch);
  }
  // Starting at batch 3 gives what the fourth batch of a full epoch is.
  Loader full(data, &t, {16, 0, 1, true, false, true, 9, 2}), resumed(data, &t, {16, 0, 1, true, false, true, 9, 2});
  full.start(1);
  resumed.start(1, 3);
  Batch a, b;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(full.next(a));
  ASSERT_TRUE(resumed.next(b));
  EXPECT_EQ(a.index, 3);
  EXPECT_EQ(a.first_sample, b.first_sample);
  EXPECT_EQ(0, std::memcmp(a.x.data(), b.x.data(), static_cast<size_t>(a.x.numel()) * sizeof(float)));
}

TEST(Loader, ErrorsInTheReaderThreadReachTheCaller) {
  class Failing : public Counting {
   public:
    Failing() : Counting(40) {}
    void read(std::span<const int64_t> idx, TensorView x, int32_t* l, TensorView t) const override {
      if (idx[0] >= 0 && ++calls_ > 2) throw DataError("disk on fire");
      Counting::read(idx, x, l, t);
    }
    mutable int calls_ = 0;
  } data;
  Loader l(data, nullptr, {8, 0, 1, false, false, false, 1, 2});
  l.start(0);
  Batch b;
  EXPECT_TRUE(l.next(b));
  EXPECT_TRUE(l.next(b));
  EXPECT_THROW(l.next(b), DataError);
}

// --- Transforms -------------------------------------------------------------------------

TEST(Transform, WorkedExample) {
  // One channel, 2 x 3, scale 0.5, mean 1, std 2, pad 1 on H and W.
  TransformOptions o;
  o.scale = 0.5f;
  o.mean = {1};
  o.std = {2};
  o.pad = {0, 1, 1};
  Transform t(std::move(o), Shape{1, 2, 3});
  EXPECT_EQ(t.output_shape(), (Shape{1, 4, 5}));
  Tensor x(Shape{1, 1, 2, 3}), y(Shape{1, 1, 4, 5});
  for (int i = 0; i < 6; ++i) x[i] = static_cast<float>(2 * i);  // scaled: 0..5
  const int64_t id = 0;
  t.apply(x.view(), {&id, 1}, 1, 0, false, y.view());
  const float bg = -0.5f;  // a stored zero: (0 - 1) / 2
  const float want[] = {bg, bg, bg, bg, bg, bg, -0.5f, 0, 0.5f, bg, bg, 1, 1.5f, 2, bg, bg, bg, bg, bg, bg};
  for (int i = 0; i < 20; ++i) EXPECT_FLOAT_EQ(y[i], want[i]) << i;
  // Flip only: each row reversed.
  TransformOptions f;
  f.flip = true;
  Transform flip(std::move(f), Shape{1, 2, 3});
  Tensor z(Shape{1, 1, 2, 3});
  int flipped = 0;
  for (int64_t sample = 0; sample < 16; ++sample) {
    flip.apply(x.view(), {&sample, 1}, 3, 0, true, z.view());
    if (z[0] == 4) {
      ++flipped;
      EXPECT_EQ(z[2], 0);
      EXPECT_EQ(z[3], 10);
    } else {
      EXPECT_EQ(z[0], 0);
    }
  }
  EXPECT_GT(flipped, 2);
  EXPECT_LT(flipped, 14);
}

TEST(Transform, AugmentationIsTheSameWithOneAndTwoThreads) {
  TransformOptions o;
  o.scale = 1.0f / 255;
  o.crop_pad = 3;
  o.flip = true;
  const Shape s{3, 8, 8};
  Transform t(std::move(o), s);
  Tensor x(s.with_batch(64));
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i % 256);
  std::vector<int64_t> ids(64);
  std::iota(ids.begin(), ids.end(), 1000);
  auto run = [&](int threads) {
    Tensor y(s.with_batch(64));
    tbb::task_arena(threads).execute([&] { t.apply(x.view(), ids, 7, 2, true, y.view()); });
    return std::vector<float>(y.span().begin(), y.span().end());
  };
  EXPECT_EQ(run(1), run(2));
  Tensor y(s.with_batch(64));
  t.apply(x.view(), ids, 7, 3, true, y.view());  // another epoch: other crops
  EXPECT_NE(run(1), std::vector<float>(y.span().begin(), y.span().end()));
}

TEST(Open, DataSectionErrorsNameTheKey) {
  TempDir d;
  write_mnist_dir(d, 20, 5, false);
  convert_idx_dir(d.path.string(), d / "m.h5", {});
  auto open_text = [](const std::string& yaml) { return open(Config::parse(yaml, "exp.yaml")); };
  auto msg = error_of<ConfigError>([&] { open_text("{file: " + d / "nope.h5" + "}"); });
  EXPECT_NE(msg.find("exp.yaml:1:8 (file): "), std::string::npos) << msg;
  EXPECT_NE(msg.find("nope.h5: no such file"), std::string::npos) << msg;
  msg = error_of<ConfigError>([&] { open_text("{file: " + d / "m.h5" + ", test: valid}"); });
  EXPECT_NE(msg.find("no such split (the file has: train, test)"), std::string::npos) << msg;
  EXPECT_THROW(open_text("{file: " + d / "m.h5" + ", normalize: zscore}"), ConfigError);
  EXPECT_THROW(open_text("{file: " + d / "m.h5" + ", val_fraction: 1.5}"), ConfigError);
  EXPECT_THROW(open_text("{file: " + d / "m.h5" + ", augment: {crop: 2}}"), ConfigError);
  EXPECT_THROW(open_text("{}"), ConfigError);
  // A fraction of train held out by seed: disjoint, together the whole.
  Splits s = open_text("{file: " + d / "m.h5" + ", test: test, val_fraction: 0.25, normalize: file, pad: 2}");
  EXPECT_EQ(s.train->size(), 15);
  EXPECT_EQ(s.heldout->size(), 5);
  EXPECT_EQ(s.heldout_name, "val");
  EXPECT_EQ(s.test->size(), 5);
  EXPECT_EQ(s.transform->output_shape(), (Shape{1, 8, 7}));
}

// The held-out set is never the test split unless the experiment says so: a file without a
// val split gives 10% of train (seeded), val_fraction: 0 none, val: test a warning; a val
// split in the file is used as it is; generated sets draw their own val.
TEST(Open, HeldOutSetIsNotTheTestSplitByDefault) {
  TempDir d;
  write_mnist_dir(d, 40, 5, false);
  convert_idx_dir(d.path.string(), d / "m.h5", {});
  auto open_text = [](const std::string& yaml) { return open(Config::parse(yaml, "exp.yaml")); };
  Splits s = open_text("{file: " + d / "m.h5" + ", test: test}");
  ASSERT_TRUE(s.heldout && s.test);
  EXPECT_EQ(s.heldout_name, "val");
  EXPECT_EQ(s.heldout->size(), 4);
  EXPECT_EQ(s.train->size(), 36);
  EXPECT_EQ(s.test->size(), 5);
  EXPECT_TRUE(s.warnings.empty());
  s = open_text("{file: " + d / "m.h5" + ", test: test, val_fraction: 0}");
  EXPECT_FALSE(s.heldout);
  EXPECT_EQ(s.train->size(), 40);
  s = open_text("{file: " + d / "m.h5" + ", test: test, val: test}");
  ASSERT_TRUE(s.heldout);
  EXPECT_EQ(s.heldout_name, "test");
  EXPECT_EQ(s.train->size(), 40);
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("exp.yaml:1:"), std::string::npos) << s.warnings[0];
  EXPECT_NE(s.warnings[0].find("the held-out set is the test split 'test'"), std::string::npos) << s.warnings[0];
  // A val split in the file is the held-out set by default.
  s = Splits{};  // (closes the file)
  {
    auto f = h5::File::open_write(d / "m.h5");
    H5Ocopy(f.id(), "test", f.id(), "val", H5P_DEFAULT, H5P_DEFAULT);
  }
  s = open_text("{file: " + d / "m.h5" + ", test: test}");
  ASSERT_TRUE(s.heldout);
  EXPECT_EQ(s.heldout_name, "val");
  EXPECT_EQ(s.heldout->size(), 5);
  EXPECT_EQ(s.train->size(), 40);
  // Generated sets: val is its own draw, as large as test unless given.
  s = open_text("{spirals: {train: 100, test: 30}}");
  ASSERT_TRUE(s.heldout && s.test);
  EXPECT_EQ(s.heldout_name, "val");
  EXPECT_EQ(s.heldout->size(), 30);
  Tensor a(Shape{2}.with_batch(1)), b(Shape{2}.with_batch(1));
  int32_t la, lb;
  s.heldout->read(std::vector<int64_t>{0}, a.view(), &la, TensorView());
  s.test->read(std::vector<int64_t>{0}, b.view(), &lb, TensorView());
  EXPECT_NE(a[0], b[0]);
  s = open_text("{synthetic: {shape: [1, 4], train: 100, test: 8, val: 0}}");
  EXPECT_FALSE(s.heldout);
  EXPECT_EQ(s.test->size(), 8);
  // Too few samples for the default tenth: no held-out set, said; asked for, an error.
  write_mnist_dir(d, 5, 2, false);
  convert_idx_dir(d.path.string(), d / "small.h5", {});
  s = open_text("{file: " + d / "small.h5" + "}");
  EXPECT_FALSE(s.heldout);
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("5 training samples are too few to hold a tenth out: no held-out set"),
            std::string::npos)
      << s.warnings[0];
  auto msg = error_of<ConfigError>([&] { open_text("{file: " + d / "small.h5" + ", val_fraction: 0.1}"); });
  EXPECT_NE(msg.find("val_fraction 0.1 of 5 samples leaves a split empty"), std::string::npos) << msg;
}

TEST(Synthetic, SeededNormalImagesWithUniformLabelsRepeatingEvery256) {
  auto open_text = [](const std::string& yaml) { return open(Config::parse(yaml, "exp.yaml")); };
  Splits s = open_text("{synthetic: {shape: [3, 4, 5], classes: 7, train: 600, test: 10, seed: 3}}");
  ASSERT_TRUE(s.train && s.heldout && s.test);
  EXPECT_EQ(s.train->size(), 600);
  EXPECT_EQ(s.test->size(), 10);
  EXPECT_EQ(s.train->sample_shape(), (Shape{3, 4, 5}));
  EXPECT_EQ(s.train->num_classes(), 7);
  const std::vector<int64_t> idx{0, 1, 256, 599};
  Tensor x(Shape{3, 4, 5}.with_batch(4));
  int32_t labels[4];
  s.train->read(idx, x.view(), labels, TensorView());
  EXPECT_EQ(0, std::memcmp(x.data(), x.data() + 2 * 60, 60 * sizeof(float)));  // 256 = 0 mod 256
  EXPECT_NE(0, std::memcmp(x.data(), x.data() + 60, 60 * sizeof(float)));
  EXPECT_EQ(labels[0], labels[2]);
  // Standard normal: mean near 0 and variance near 1 over the 256 distinct samples.
  std::vector<int64_t> all(256);
  std::iota(all.begin(), all.end(), 0);
  Tensor big(Shape{3, 4, 5}.with_batch(256));
  std::vector<int32_t> l(256);
  s.train->read(all, big.view(), l.data(), TensorView());
  double sum = 0, sq = 0;
  for (float v : big.span()) sum += v, sq += static_cast<double>(v) * v;
  const double n = static_cast<double>(big.numel());
  EXPECT_NEAR(sum / n, 0.0, 0.03);
  EXPECT_NEAR(sq / n, 1.0, 0.05);
  std::set<int32_t> seen(l.begin(), l.end());
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_TRUE(*seen.begin() == 0 && *seen.rbegin() == 6);
  // The same seed gives the same data; the test split is another draw.
  Splits again = open_text("{synthetic: {shape: [3, 4, 5], classes: 7, train: 600, test: 10, seed: 3}}");
  Tensor y(Shape{3, 4, 5}.with_batch(4)), t(Shape{3, 4, 5}.with_batch(4));
  again.train->read(idx, y.view(), labels, TensorView());
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), static_cast<size_t>(x.numel()) * sizeof(float)));
  s.test->read(std::vector<int64_t>{0, 1, 2, 3}, t.view(), labels, TensorView());
  EXPECT_NE(0, std::memcmp(x.data(), t.data(), 60 * sizeof(float)));
  EXPECT_THROW(s.train->read(std::vector<int64_t>{600}, x.view(), labels, TensorView()), DataError);
  // Errors name the key.
  auto msg = error_of<ConfigError>([&] { open_text("{synthetic: {shape: [3, 0, 5]}}"); });
  EXPECT_NE(msg.find("every size in shape must be in [1, 2^20]; got 0"), std::string::npos) << msg;
  EXPECT_THROW(open_text("{synthetic: {classes: 1}}"), ConfigError);
  EXPECT_THROW(open_text("{synthetic: {train: 0}}"), ConfigError);
  EXPECT_THROW(open_text("{synthetic: {size: 3}}"), ConfigError);
  msg = error_of<ConfigError>([&] { open_text("{synthetic: {}, spirals: {}}"); });
  EXPECT_NE(msg.find("give one data source"), std::string::npos) << msg;
}

TEST(ClassSubset, KeepsTheListedClassesRelabeledInTheirOrder) {
  auto base = std::make_shared<Spirals>(Spirals::Options{300, 3, 1.0, 0.05, 4}, "spirals");
  std::vector<int64_t> all(300);
  std::iota(all.begin(), all.end(), 0);
  Tensor x(Shape{300, 2});
  std::vector<int32_t> labels(300);
  base->read(all, x.view(), labels.data(), TensorView());
  ClassSubset sub(base, {2, 0});
  EXPECT_EQ(sub.num_classes(), 2);
  ASSERT_EQ(sub.size(), std::count(labels.begin(), labels.end(), 2) + std::count(labels.begin(), labels.end(), 0));
  std::vector<int64_t> idx(static_cast<size_t>(sub.size()));
  std::iota(idx.begin(), idx.end(), 0);
  Tensor xs(Shape{sub.size(), 2});
  std::vector<int32_t> ls(idx.size());
  sub.read(idx, xs.view(), ls.data(), TensorView());
  // The subset's samples are the base's samples of classes 2 and 0, in order: 2 -> 0, 0 -> 1.
  int64_t k = 0;
  for (int64_t i = 0; i < 300; ++i) {
    if (labels[i] == 1) continue;
    ASSERT_EQ(ls[k], labels[i] == 2 ? 0 : 1);
    ASSERT_EQ(xs[2 * k], x[2 * i]);
    ++k;
  }
  EXPECT_THROW(ClassSubset(base, {3}), DataError);
  EXPECT_THROW(ClassSubset(base, {1, 1}), DataError);
  EXPECT_THROW(ClassSubset(base, {}), DataError);
}

}  // namespace hubel::datasets

namespace hubel::datasets {

namespace {
// A data set whose reads block from sample `from` on until released: a hung file system.
class Stuck : public Dataset {
 public:
  explicit Stuck(int64_t from) : from_(from) {}
  std::string name() const override { return "stuck.h5:/train"; }
  int64_t size() const override { return 64; }
  Shape sample_shape() const override { return {1}; }
  int64_t num_classes() const override { return 2; }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const override {
    for (size_t i = 0; i < idx.size(); ++i) {
      if (idx[i] >= from_) {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return released_; });
      }
      x[static_cast<int64_t>(i)] = 1;
      if (labels) labels[i] = 0;
    }
  }
  // from < 0: prepare() blocks instead, until released (a resident split's read stuck).
  void prepare() const override {
    if (from_ >= 0) return;
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return released_; });
    prepared_ = true;
    cv_.notify_all();
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m_);
      released_ = true;
    }
    cv_.notify_all();
  }
  // Waits until a blocked prepare() has returned from its wait (so that the thread that
  // ran it no longer needs this object).
  void wait_prepared() const {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return prepared_; });
  }

 private:
  int64_t from_;
  mutable bool prepared_ = false;
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  bool released_ = false;
};

struct StallSeen : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The stall message of stuck(), which must report one after 0.3 s and before 5 s.
template <class F>
std::string stall_of(F&& stuck) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string message;
  try {
    stuck();
    ADD_FAILURE() << "no stall reported";
  } catch (const StallSeen& e) {
    message = e.what();
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 0.3);
  EXPECT_LT(waited, 5.0);
  return message;
}
}  // namespace

TEST(Loader, AReadStuckLongerThanTheTimeoutStopsTheRunNamingTheDataAndBatch) {
  Stuck data(16);
  // The real handler ends the process; this one reports by throwing, so the test can
  // release the stuck read before the loader's thread is joined.
  set_stall_handler([](const std::string& m) { throw StallSeen(m); });
  LoaderOptions o{8, 0, 1, false, false, false, 1, 2};
  o.timeout_seconds = 0.3;
  std::string message;
  {
    Loader l(data, nullptr, o);
    l.start(0);
    Batch b;
    ASSERT_TRUE(l.next(b));                  // samples 0-7
    ASSERT_TRUE(l.next(b));                  // 8-15
    message = stall_of([&] { l.next(b); });  // 16-23: stuck
    data.release();
  }
  set_stall_handler(nullptr);
  EXPECT_EQ(message,
            "the loader thread has not produced batch 3 of stuck.h5:/train in 0.3 s: a read is stuck (a hung file "
            "system, or a lock held by a library); data.timeout sets this limit");
}

TEST(Loader, AResidentReadStuckBeforeTrainingStopsTheRunToo) {
  Stuck data(-1);
  set_stall_handler([](const std::string& m) { throw StallSeen(m); });
  LoaderOptions o{8, 0, 1, false, false, false, 1, 2};
  o.timeout_seconds = 0.3;
  std::string message;
  {
    Loader l(data, nullptr, o);
    message = stall_of([&] { l.prepare(); });
    data.release();
    data.wait_prepared();
  }
  set_stall_handler(nullptr);
  EXPECT_EQ(message,
            "reading stuck.h5:/train into memory has not finished in 0.3 s: a read is stuck (a hung file system, or a "
            "lock held by a library); data.timeout sets this limit");
}

}  // namespace hubel::datasets
