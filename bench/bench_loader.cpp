// The data loader against LeNet training on Fashion-MNIST:
//  1. read + transform the 60,000 training images (batch 64, one epoch), synchronously:
//     images/s, and the cost per batch as a fraction of a LeNet training step;
//  2. LeNet training steps with 2 threads fed by the prefetching loader, against the same
//     steps on one batch held in memory (the loader must cost under 5%).
//
//   build/bench/bench_loader [data/fashion-mnist.h5] [launch/experiments/lenet_modern.yaml]
// (convert the data first: hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5)
#include <chrono>
#include <cstdio>
#include <iostream>

#include "datasets/hdf5_dataset.hpp"
#include "datasets/loader.hpp"
#include "datasets/open.hpp"
#include "framework/config.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/runtime.hpp"
#include "layers/builtin.hpp"

using namespace hubel;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string file = argc > 1 ? argv[1] : "data/fashion-mnist.h5";
  const std::string exp_path = argc > 2 ? argv[2] : "launch/experiments/lenet_modern.yaml";
  try {
    Experiment exp = Experiment::load(exp_path, {"data.file=" + file});
    datasets::Splits data = datasets::open(exp.data);
    const int64_t batch = 64;
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::printf("OPENBLAS_CORETYPE=%s\n", coretype ? coretype : "(unset)");

    // 1. The loader alone, synchronous, one epoch.
    {
      Runtime runtime(1);
      datasets::Loader loader(*data.train, data.transform.get(), {batch, 0, 1, true, false, true, 1, 0});
      loader.start(0);
      Batch b;
      int64_t images = 0;
      const auto t0 = Clock::now();
      runtime.run([&] {
        while (loader.next(b)) images += b.rows;
      });
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      std::printf("loader, synchronous, 1 thread: %lld images in %.3f s = %.0f images/s (%.1f us per batch of %lld)\n",
                  static_cast<long long>(images), s, images / s, 1e6 * s / (images / static_cast<double>(batch)),
                  static_cast<long long>(batch));
    }

    // 2. Training steps with 2 threads: fed by the prefetching loader, or one batch in memory.
    BuiltModel model = build_model(exp.model, layers::builtin_registry());
    model.net.build(batch, 1);
    auto opt = Optimizer::create(exp.optimizer, model.net);
    Runtime runtime(2);
    datasets::Loader loader(*data.train, data.transform.get(), {batch, 0, 1, true, false, true, 1, 2});
    const int64_t steps = 400;
    auto step = [&](const Batch& b) {
      TensorView in = model.net.input(b.rows);
      std::copy(b.x.data(), b.x.data() + in.numel(), in.data());
      StepContext ctx{true, 1, 0, 0};
      auto y = model.net.forward(b.rows, ctx);
      model.loss->evaluate(y, Targets{b.labels, {}}, model.net.output_grad(b.rows), 1.0f / b.rows);
      model.net.backward(b.rows, ctx);
      opt->step(model.net.params(), model.net.grads(), 0.001f);
    };
    double with_loader = 0, in_memory = 0;
    for (int rep = 0; rep < 3; ++rep) {
      loader.start(rep);
      Batch b;
      runtime.run([&] {
        for (int i = 0; i < 20; ++i) loader.next(b), step(b);  // warm-up
        auto t0 = Clock::now();
        for (int64_t i = 0; i < steps; ++i) {
          loader.next(b);
          step(b);
        }
        const double a = std::chrono::duration<double>(Clock::now() - t0).count() / steps;
        // The last batch, held: the same work without the loader.
        Tensor x(b.x.shape());
        std::copy(b.x.data(), b.x.data() + b.x.numel(), x.data());
        std::vector<int32_t> labels(b.labels, b.labels + b.rows);
        Batch held = b;
        held.x = x.view();
        held.labels = labels.data();
        t0 = Clock::now();
        for (int64_t i = 0; i < steps; ++i) step(held);
        const double m = std::chrono::duration<double>(Clock::now() - t0).count() / steps;
        with_loader = rep ? std::min(with_loader, a) : a;
        in_memory = rep ? std::min(in_memory, m) : m;
      });
    }
    std::printf(
        "LeNet step, 2 threads, batch %lld: %.1f us with the prefetching loader, %.1f us from memory: ratio %.3f\n",
        static_cast<long long>(batch), 1e6 * with_loader, 1e6 * in_memory, with_loader / in_memory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
