// A hubel data set of any size, for the data-path benchmarks (bench/data_store.sh):
// synthetic images whose class is easy to learn, written in the format hubel convert
// writes (uint8, chunks of 256 rows, Fletcher-32 checksums).
//
//   build/bench/make_images OUT.h5 COUNT [C H W] [CLASSES]
//
// Sample i has class i mod CLASSES: noise in [0, 96), plus a bright square of a quarter
// of the side at a place given by the class and, in channel class mod C, a brighter band.
// The test split has COUNT / 20 samples drawn the same way.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "framework/error.hpp"
#include "framework/hdf5.hpp"
#include "framework/random.hpp"

using namespace hubel;

namespace {

void sample(int64_t i, int64_t classes, int64_t C, int64_t H, int64_t W, uint64_t seed, uint8_t* out, int32_t* label) {
  Rng rng(hash_combine(seed, static_cast<uint64_t>(i)));
  const auto c = static_cast<int32_t>(i % classes);
  *label = c;
  const int64_t side = std::max<int64_t>(1, H / 4), cells = std::max<int64_t>(1, (H - side) / side + 1);
  const int64_t y0 = (c % cells) * side % std::max<int64_t>(1, H - side + 1);
  const int64_t x0 = (c / cells % cells) * side % std::max<int64_t>(1, W - side + 1);
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        int v = static_cast<int>(rng.next() % 96);
        if (y >= y0 && y < y0 + side && x >= x0 && x < x0 + side) v += 110;
        if (ch == c % C && y % 8 < 2) v += 40;
        out[(ch * H + y) * W + x] = static_cast<uint8_t>(std::min(v, 255));
      }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_images OUT.h5 COUNT [C H W] [CLASSES]\n");
    return 2;
  }
  const std::string out = argv[1];
  const int64_t n = std::atoll(argv[2]);
  const int64_t C = argc > 5 ? std::atoll(argv[3]) : 3, H = argc > 5 ? std::atoll(argv[4]) : 64,
                W = argc > 5 ? std::atoll(argv[5]) : 64;
  const int64_t classes = argc > 6 ? std::atoll(argv[6]) : 10;
  if (n < 1 || C < 1 || H < 4 || W < 4 || classes < 2) {
    std::fprintf(stderr, "make_images: bad sizes\n");
    return 2;
  }
  try {
    h5::write_file_atomically(out, [&](h5::File& f) {
      h5::write_attribute(f, "/", "format", std::string("hubel-dataset"));
      h5::write_attribute(f, "/", "format_version", int64_t{1});
      h5::write_attribute(f, "/", "source", cat("bench/make_images ", n, " x [", C, ", ", H, ", ", W, "]"));
      std::vector<std::string> names;
      for (int64_t c = 0; c < classes; ++c) names.push_back(cat("class", c));
      h5::write_attribute(f, "/", "classes", names);
      h5::write_attribute(f, "/", "num_classes", classes);
      const int64_t per = C * H * W, block = 1024;
      std::vector<double> sum(static_cast<size_t>(C), 0.0), sq(static_cast<size_t>(C), 0.0);
      for (auto [split, count, seed] :
           {std::tuple<std::string, int64_t, uint64_t>{"train", n, 1}, {"test", std::max<int64_t>(1, n / 20), 2}}) {
        f.create_group("/" + split);
        h5::create_dataset(f, "/" + split + "/images", H5T_NATIVE_UINT8, {count, C, H, W}, 256, 0, true);
        h5::create_dataset(f, "/" + split + "/labels", H5T_NATIVE_INT32, {count}, 0, 0, true);
        std::vector<uint8_t> images(static_cast<size_t>(block * per));
        std::vector<int32_t> labels(static_cast<size_t>(count));
        for (int64_t b = 0; b < count; b += block) {
          const int64_t m = std::min(block, count - b);
          for (int64_t i = 0; i < m; ++i) {
            sample(b + i, classes, C, H, W, seed, images.data() + i * per, &labels[static_cast<size_t>(b + i)]);
            if (split == "train")
              for (int64_t j = 0; j < per; ++j) {
                const double v = images[static_cast<size_t>(i * per + j)];
                sum[static_cast<size_t>(j / (H * W))] += v;
                sq[static_cast<size_t>(j / (H * W))] += v * v;
              }
          }
          h5::write_rows(f, "/" + split + "/images", H5T_NATIVE_UINT8, b, m, images.data());
        }
        h5::write_rows(f, "/" + split + "/labels", H5T_NATIVE_INT32, 0, count, labels.data());
        h5::write_attribute(f, "/" + split, "count", count);
      }
      std::vector<double> mean(static_cast<size_t>(C)), stdev(static_cast<size_t>(C));
      const double m = static_cast<double>(n * H * W);
      for (int64_t c = 0; c < C; ++c) {
        mean[static_cast<size_t>(c)] = sum[static_cast<size_t>(c)] / m;
        stdev[static_cast<size_t>(c)] = std::sqrt(std::max(
            0.0, sq[static_cast<size_t>(c)] / m - mean[static_cast<size_t>(c)] * mean[static_cast<size_t>(c)]));
      }
      h5::write_attribute(f, "/", "mean", mean);
      h5::write_attribute(f, "/", "std", stdev);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_images: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %lld samples of [%lld, %lld, %lld], %lld classes\n", out.c_str(), static_cast<long long>(n),
              static_cast<long long>(C), static_cast<long long>(H), static_cast<long long>(W),
              static_cast<long long>(classes));
  return 0;
}
