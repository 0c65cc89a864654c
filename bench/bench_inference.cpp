// Inference through hubel::Model (inference/model.hpp), the embedding API: the resident
// memory of a loaded model, batch-1 latency and batch-64 throughput on a checkpoint's
// model, on one arena of `threads` threads. bench/inference.sh runs it beside PyTorch.
//
//   bench_inference CHECKPOINT THREADS SECONDS
// prints: RESULT rss_before_mb=... rss_loaded_mb=... rss_peak_mb=... latency_ms_median=...
//         latency_ms_p90=... batch64_img_per_s=...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "framework/random.hpp"
#include "inference/model.hpp"

namespace {

double status_mb(const char* key) {  // VmRSS or VmHWM of this process
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::string(key).size())) / 1024.0;
  return 0;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && !(argc == 5 && (std::string(argv[4]) == "fp32" || std::string(argv[4]) == "bf16"))) {
    std::fprintf(stderr, "usage: bench_inference CHECKPOINT THREADS SECONDS [fp32|bf16]\n");
    return 1;
  }
  const double before = status_mb("VmRSS:");
  hubel::Model::Options o;
  o.threads = std::stoi(argv[2]);
  o.max_batch = 64;
  if (argc == 5 && std::string(argv[4]) == "bf16") o.precision = hubel::Precision::bf16;
  const hubel::Model m = hubel::Model::load(argv[1], o);
  const double seconds = std::stod(argv[3]);
  const int64_t per = m.input_shape().numel();
  std::vector<uint8_t> x(static_cast<size_t>(64 * per));
  hubel::Rng rng(1);
  for (auto& v : x) v = static_cast<uint8_t>(rng.below(256));
  std::vector<float> y(static_cast<size_t>(64 * m.outputs()));
  m.predict(x.data(), 64, y.data());  // warm: the replica, the pages
  const double loaded = status_mb("VmRSS:");
  // Batch 1: the latency of single calls.
  std::vector<double> lat;
  for (double t0 = now(); now() - t0 < seconds / 2 || lat.size() < 20;) {
    const double a = now();
    m.predict(x.data(), 1, y.data());
    lat.push_back((now() - a) * 1e3);
  }
  std::sort(lat.begin(), lat.end());
  // Batch 64: throughput.
  int64_t images = 0;
  const double t0 = now();
  while (now() - t0 < seconds / 2 || images < 640) {
    m.predict(x.data(), 64, y.data());
    images += 64;
  }
  const double rate = static_cast<double>(images) / (now() - t0);
  std::printf(
      "RESULT model=%s params=%lld threads=%d rss_before_mb=%.1f rss_loaded_mb=%.1f rss_peak_mb=%.1f "
      "latency_ms_median=%.4f latency_ms_p90=%.4f batch64_img_per_s=%.0f\n",
      m.input_shape().str().c_str(), static_cast<long long>(m.parameters()), o.threads, before, loaded,
      status_mb("VmHWM:"), lat[lat.size() / 2], lat[lat.size() * 9 / 10], rate);
  return 0;
}
