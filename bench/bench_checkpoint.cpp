// Writing and reading checkpoints of LeNet-5 and of a 10-million-parameter model (SGD with
// momentum: weights and velocity), against fwrite + fsync of the same bytes, in one run.
//
//   build/bench/bench_checkpoint [DIR] [LENET5.yaml]   (defaults /tmp, launch/experiments/lenet5.yaml)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "framework/checkpoint.hpp"
#include "framework/config.hpp"
#include "framework/experiment.hpp"
#include "layers/builtin.hpp"

using namespace hubel;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp";
  const std::string lenet = argc > 2 ? argv[2] : "launch/experiments/lenet5.yaml";
  const std::pair<std::string, Config> models[] = {
      {"LeNet-5", Config::load_file(lenet).at("model")},
      {"10M dense", Config::parse("input: [3162]\nlayers:\n  - {type: dense, units: 3162}\nloss: mse\n")}};
  for (const auto& [label, model] : models) {
    Net net = std::move(build_model(model, layers::builtin_registry()).net);
    net.build(1, 1);
    auto opt = Optimizer::create(Config::parse("{type: sgd, lr: 0.1, momentum: 0.9}"), net);
    auto sched = Schedule::create(std::nullopt, 0.1);
    CheckpointMeta meta;
    const std::string path = dir + "/bench-ckpt.h5", raw = dir + "/bench-raw.bin";
    const double bytes = 2.0 * static_cast<double>(net.params().size()) * 4;
    double w = 1e30, r = 1e30, f = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = Clock::now();
      save_checkpoint(path, net, *opt, *sched, meta);
      w = std::min(w, std::chrono::duration<double>(Clock::now() - t0).count());
      t0 = Clock::now();
      load_checkpoint(path, net, opt.get(), sched.get());
      r = std::min(r, std::chrono::duration<double>(Clock::now() - t0).count());
      t0 = Clock::now();
      FILE* out = std::fopen(raw.c_str(), "wb");
      std::fwrite(net.params().data(), 4, net.params().size(), out);
      std::fwrite(opt->state()[0].second.data(), 4, opt->state()[0].second.size(), out);
      std::fflush(out);
      ::fsync(fileno(out));
      std::fclose(out);
      f = std::min(f, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::printf("%-10s %9.0f bytes: checkpoint write %8.2f ms (%.2fx fwrite+fsync %.2f ms), read %8.2f ms\n",
                label.c_str(), bytes, w * 1e3, w / f, f * 1e3, r * 1e3);
    std::filesystem::remove(path);
    std::filesystem::remove(raw);
  }
  return 0;
}
