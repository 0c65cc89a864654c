// Convolution forward + backward on LeNet's layers and a CIFAR-sized layer (64 filters
// 3x3 on 64x32x32, batch 64), in GFLOP/s next to the SGEMM rate of the same BLAS on the
// same machine, measured in the same run with the same thread count, and their ratio.
//
//   build/bench/bench_conv                      # all
//   build/bench/bench_conv --benchmark_filter=cifar     # the CIFAR-sized layers
//
// SGEMM with 2 threads means two independent products at once (the BLAS is serial inside
// TBB tasks, as in hubel). Say which OPENBLAS_CORETYPE ran (these machines export Haswell).
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "framework/config.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "framework/runtime.hpp"
#include "layers/builtin.hpp"
#include "layers/gemm.hpp"
#include "layers/gemm_kernels.hpp"

using namespace hubel;

namespace {

// GFLOP/s of `threads` concurrent serial SGEMMs of M x N x K (the conv-shaped product of
// the CIFAR layer's forward pass: 64 x 1024 x 576), measured for about half a second.
double sgemm_rate(int threads, int64_t M, int64_t N, int64_t K) {
  static std::map<std::tuple<int, int64_t, int64_t, int64_t>, double> cache;
  auto key = std::make_tuple(threads, M, N, K);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Runtime runtime(threads);
  std::vector<AlignedBuffer> a, b, c;
  for (int t = 0; t < threads; ++t) a.emplace_back(M * K), b.emplace_back(K * N), c.emplace_back(M * N);
  auto once = [&] {
    runtime.run([&] {
      parallel_chunks(threads, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          layers::gemm(false, false, M, N, K, 1.0f, a[t].data(), K, b[t].data(), N, 0.0f, c[t].data(), N);
      });
    });
  };
  once();
  int64_t reps = 0;
  const auto start = std::chrono::steady_clock::now();
  double seconds = 0;
  while (seconds < 0.5) {
    once();
    ++reps;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return cache[key] = 2.0 * M * N * K * threads * reps / seconds / 1e9;
}

void conv(benchmark::State& state, const char* yaml, Shape x_shape, int64_t batch, bool need_dx) {
  const int threads = static_cast<int>(state.range(0));
  Config c = Config::parse(yaml);
  auto layer = layers::builtin_registry().make_layer(c.get<std::string>("type"), c);
  const std::vector<Shape> xs{x_shape};
  const Shape y_shape = layer->output_shape(xs);
  Tensor x(x_shape.with_batch(batch)), dx(x_shape.with_batch(batch)), y(y_shape.with_batch(batch)),
      dy(y_shape.with_batch(batch));
  Rng rng(1);
  for (auto& v : x.span()) v = static_cast<float>(rng.normal());
  for (auto& v : dy.span()) v = static_cast<float>(rng.normal());
  std::vector<Tensor> w, dw;
  std::vector<Param> params;
  for (const auto& s : layer->param_specs(xs)) {
    w.emplace_back(s.shape);
    dw.emplace_back(s.shape);
    for (auto& v : w.back().span()) v = static_cast<float>(0.1 * rng.normal());
    params.push_back({s.name, s.shape, w.back().data(), dw.back().data()});
  }
  layer->bind(Binding{xs, y_shape, batch, params});
  Runtime runtime(threads);
  const std::vector<ConstTensorView> xv{x.view()};
  const std::vector<TensorView> dxv{need_dx ? dx.view() : TensorView()};
  auto step = [&] {
    runtime.run([&] {
      layer->forward(xv, y.view(), {});
      layer->backward(xv, y.view(), dy.view(), dxv, {});
    });
  };
  step();  // first touch of the scratch
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  // Forward, weight gradient and (when needed) input gradient: one product each.
  const double fwd = static_cast<double>(layer->flops(xs, y_shape)) * batch;
  const double flops = fwd * (need_dx ? 3 : 2);
  const double rate = flops * static_cast<double>(state.iterations()) / 1e9;
  state.counters["GFLOP/s"] = benchmark::Counter(rate, benchmark::Counter::kIsRate);
  const double sgemm = sgemm_rate(threads, 64, 1024, 576);
  state.counters["SGEMM_GFLOP/s"] = sgemm;
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["vs_SGEMM"] = flops * static_cast<double>(state.iterations()) / 1e9 / sgemm;  // divided by time below
  state.counters["vs_SGEMM"].flags = benchmark::Counter::kIsRate;
}

void lenet_c1(benchmark::State& s) {
  conv(s, "{type: conv2d, filters: 6, kernel: 5, padding: 2}", Shape{1, 28, 28}, 64 * s.range(0), false);
}
void lenet_c3(benchmark::State& s) {
  conv(s, "{type: conv2d, filters: 16, kernel: 5}", Shape{6, 14, 14}, 64 * s.range(0), true);
}
void lenet5_c3_table(benchmark::State& s) {
  conv(
      s,
      "{type: conv2d, kernel: 5, connections: [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5], "
      "[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5], [0, 1, 3, 4], [1, 2, 4, 5], "
      "[0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]}",
      Shape{6, 14, 14}, 64 * s.range(0), true);
}
// The two convolutions of the peer's CIFAR-sized net (bench/experiments/cifar_net.yaml).
void cifar_net_c1(benchmark::State& s) {
  conv(s, "{type: conv2d, filters: 32, kernel: 3, padding: 1}", Shape{3, 32, 32}, 64, false);
}
void cifar_net_c2(benchmark::State& s) {
  conv(s, "{type: conv2d, filters: 64, kernel: 3, padding: 1}", Shape{32, 16, 16}, 64, true);
}
void cifar(benchmark::State& s) {
  conv(s, "{type: conv2d, filters: 64, kernel: 3, padding: same}", Shape{64, 32, 32}, 64, true);
}

void sgemm(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(0);
  state.counters["SGEMM_GFLOP/s"] = sgemm_rate(static_cast<int>(state.range(0)), 64, 1024, 576);
  state.counters["SGEMM_1024^3_GFLOP/s"] = sgemm_rate(static_cast<int>(state.range(0)), 1024, 1024, 1024);
}

}  // namespace

BENCHMARK(sgemm)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(lenet_c1)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(lenet_c3)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(lenet5_c3_table)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(cifar_net_c1)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(cifar_net_c2)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(cifar)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Which product kernels ran (HUBEL_VECTOR_WIDTH=256 or 512 chooses; see gemm_kernels.hpp).
  const int bits = layers::kernel_width();
  benchmark::AddCustomContext("hubel product kernels", bits ? std::to_string(bits) + "-bit" : "none (BLAS only)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
