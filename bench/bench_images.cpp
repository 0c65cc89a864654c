// Decoding and augmenting images, the pipeline of training on image files: read the file,
// decode (libjpeg-turbo / libpng), resize to the sample size (shorter side + centre crop),
// then the training transform (random resized crop, flip, brightness and contrast), to
// the float sample the network takes. Prints images per second on 1 thread and on all.
//
//   bench_images make DIR N WIDTH HEIGHT jpg|png   writes N synthetic images (smooth, textured)
//   bench_images run DIR SIZE [SECONDS]            decodes and augments DIR's files to SIZE x SIZE
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "datasets/images.hpp"
#include "datasets/transform.hpp"
#include "framework/error.hpp"

using namespace hubel;
using namespace hubel::datasets;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int make(const std::string& dir, int n, int w, int h, const std::string& kind) {
  fs::create_directories(dir);
  for (int i = 0; i < n; ++i) {
    Image8 im{w, h, 3, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          im.pixels[static_cast<size_t>((c * h + y) * w + x)] =
              static_cast<uint8_t>(127 + 60 * std::sin(0.05 * (x + 7 * i) + c) * std::cos(0.07 * (y + 3 * i)) +
                                   40 * ((x / 8 + y / 8 + i) % 2));
    const auto bytes = kind == "png" ? encode_png8(im) : encode_jpeg8(im, 90);
    std::ofstream(fs::path(dir) / cat("img", i, ".", kind), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  return 0;
}

int run(const std::string& dir, int64_t size, double seconds) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(cat(dir, ": no files"));
  TransformOptions o;
  o.scale = 1.0f / 255;
  o.flip = true;
  o.resized_crop_scale = {0.08, 1, true};
  o.resized_crop_ratio = {0.75, 4.0 / 3, true};
  o.brightness = {0.6, 1.4, true};
  o.contrast = {0.6, 1.4, true};
  const Transform t(std::move(o), Shape{3, size, size});
  auto one = [&](int64_t i, std::vector<float>& in, std::vector<float>& out) {
    const fs::path& p = files[static_cast<size_t>(i) % files.size()];
    Image8 im = decode_image(read_file(p), p.string(), 3);
    im = fit_image(im, size, size, true);
    std::copy(im.pixels.begin(), im.pixels.end(), in.begin());
    const int64_t id[1] = {i};
    t.apply(ConstTensorView(in.data(), Shape{1, 3, size, size}), id, 1, 0, true,
            TensorView(out.data(), Shape{1, 3, size, size}));
  };
  for (int threads : {1, static_cast<int>(std::thread::hardware_concurrency())}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<int64_t> done{0};
    int64_t next = 0;
    double elapsed = 0;
    while (elapsed < seconds) {
      const int64_t batch = 64;
      tbb::parallel_for(next, next + batch, [&](int64_t i) {
        thread_local std::vector<float> in, out;
        in.resize(static_cast<size_t>(3 * size * size));
        out.resize(in.size());
        one(i, in, out);
        ++done;
      });
      next += batch;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("hubel %d thread(s): %.0f images/s\n", threads, static_cast<double>(done.load()) / elapsed);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "make" && argc == 7)
      return make(argv[2], std::stoi(argv[3]), std::stoi(argv[4]), std::stoi(argv[5]), argv[6]);
    if (cmd == "run" && argc >= 4) return run(argv[2], std::stoll(argv[3]), argc > 4 ? std::stod(argv[4]) : 3.0);
    std::fprintf(stderr, "usage: bench_images make DIR N WIDTH HEIGHT jpg|png | run DIR SIZE [SECONDS]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_images: %s\n", e.what());
    return 1;
  }
}
