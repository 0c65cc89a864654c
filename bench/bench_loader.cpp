// The data loader against LeNet training on Fashion-MNIST:
//  1. read + transform the 60,000 training images (batch 64, one epoch), synchronously:
//     images/s, and the cost per batch as a fraction of a LeNet training step;
//  2. LeNet training steps with 2 threads fed by the prefetching loader, against the same
//     steps on one batch held in memory (the loader must cost under 5%).
//
//   build/bench/bench_loader [data/fashion-mnist.h5] [launch/experiments/lenet_modern.yaml]
// (convert the data first: hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5)
//
// The data path alone, on every rank of an mpirun, as a training run opens it (data.store,
// data.memory_mb: resident, partitioned or streaming): one epoch of the training loader
// with prefetching and transforms, no training; images/s per rank and in all, the time to
// the first batch (reading the split or a part), and each rank's peak RSS.
//
//   mpirun -np 2 build/bench/bench_loader --data-path EXPERIMENT [key=value overrides...]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "comm/mpi_communicator.hpp"
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

namespace {

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

int data_path(int argc, char** argv) {
  auto comm = comm::make_communicator(&argc, &argv);
  try {
    std::vector<std::string> sets(argv + 3, argv + argc);
    Experiment exp = Experiment::load(argv[2], sets);
    datasets::Splits data = datasets::open(exp.data, false, {comm->rank(), comm->size(), comm->node_size()});
    datasets::LoaderOptions o{exp.train.batch, comm->rank(),  comm->size(), true, false, true,
                              exp.train.seed,  data.prefetch, data.timeout};
    o.comm = comm.get();
    o.shuffle_buffer = data.shuffle_buffer;
    Runtime runtime(1);
    datasets::Loader loader(*data.train, data.transform.get(), o);
    comm->barrier();
    const auto t0 = Clock::now();
    double first = 0, sum = 0;
    int64_t images = 0;
    runtime.run([&] {
      loader.start(0);
      Batch b;
      while (loader.next(b)) {
        if (images == 0) first = std::chrono::duration<double>(Clock::now() - t0).count();
        images += b.rows;
        sum += b.x.data()[0];  // (touch the batch)
      }
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> all(static_cast<size_t>(3 * comm->size()), 0.0);
    all[static_cast<size_t>(3 * comm->rank())] = static_cast<double>(images) / (s - first);
    all[static_cast<size_t>(3 * comm->rank() + 1)] = first;
    all[static_cast<size_t>(3 * comm->rank() + 2)] = peak_rss_mb();
    comm->allreduce_sum(all);
    if (comm->rank() == 0) {
      double total = 0, rss = 0, wait = 0;
      for (int r = 0; r < comm->size(); ++r) {
        total += all[static_cast<size_t>(3 * r)];
        wait = std::max(wait, all[static_cast<size_t>(3 * r + 1)]);
        rss = std::max(rss, all[static_cast<size_t>(3 * r + 2)]);
      }
      std::printf(
          "data path: store %s on %d rank(s): %.0f images/s (after the first batch, %.2f s in), peak RSS %.0f MB "
          "per rank (largest)%s\n",
          data.store.c_str(), comm->size(), total, wait, rss, sum < 0 ? " " : "");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader (rank %d): %s\n", comm->rank(), e.what());
    if (comm->size() > 1) static_cast<comm::MpiCommunicator&>(*comm).abort(1);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 && std::string(argv[1]) == "--data-path") return data_path(argc, argv);
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
