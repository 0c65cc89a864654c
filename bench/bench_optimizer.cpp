// One optimizer step over a 10-million-parameter arena, in GB/s of memory traffic, next
// to memcpy moving the same number of bytes on the same machine in the same run.
// Adam reads w, g, s, r and writes w, s, r: 7 arrays of traffic; SGD with momentum reads
// w, g, v and writes w, v: 5. The memcpy baseline copies 3.5 (resp. 2.5) arrays' worth,
// which is the same traffic (a copy reads and writes each byte once).
//
//   build/bench/bench_optimizer [--benchmark_filter=adam]
#include <benchmark/benchmark.h>

#include <cstring>

#include "framework/adagrad.hpp"
#include "framework/adam.hpp"
#include "framework/parallel.hpp"
#include "framework/rmsprop.hpp"
#include "framework/runtime.hpp"
#include "framework/sgd.hpp"
#include "framework/tensor.hpp"

using namespace hubel;

namespace {

constexpr int64_t kParams = 10'000'000;

std::vector<ParamInfo> layout() { return {{"net", "w", {kParams}, 0, kParams, true}}; }

Optimizer::Common common() {
  Optimizer::Common c;
  c.lr = 1e-3f;
  return c;
}

template <class Make>
void step(benchmark::State& state, Make make, int arrays) {
  Runtime runtime(static_cast<int>(state.range(0)));
  AlignedBuffer w(kParams), g(kParams);
  std::fill(g.data(), g.data() + kParams, 0.01f);
  auto opt = make();
  runtime.run([&] { opt->step(w.span(), g.span(), 1e-3f); });  // first touch of the state
  for (auto _ : state) {
    runtime.run([&] { opt->step(w.span(), g.span(), 1e-3f); });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * arrays * kParams * static_cast<int64_t>(sizeof(float)));
}

// memcpy of `halves`/2 arrays, split into fixed chunks over the threads.
void copy(benchmark::State& state) {
  Runtime runtime(static_cast<int>(state.range(0)));
  const int64_t n = kParams * state.range(1) / 2;
  AlignedBuffer a(n), b(n);
  for (auto _ : state) {
    runtime.run([&] {
      parallel_chunks(n, 1 << 16, [&](int64_t s, int64_t e) {
        std::memcpy(b.data() + s, a.data() + s, static_cast<size_t>(e - s) * sizeof(float));
      });
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * n * static_cast<int64_t>(sizeof(float)));
}

void adam(benchmark::State& s) {
  step(
      s, [] { return std::make_unique<Adam>(common(), Adam::Options{}, layout(), kParams); }, 7);
}
void sgd_momentum(benchmark::State& s) {
  step(
      s,
      [] {
        return std::make_unique<Sgd>(common(), Sgd::Options{0.9f, false}, layout(), kParams);
      },
      5);
}
void rmsprop(benchmark::State& s) {
  step(
      s, [] { return std::make_unique<Rmsprop>(common(), Rmsprop::Options{}, layout(), kParams); }, 5);
}
void adagrad(benchmark::State& s) {
  step(
      s, [] { return std::make_unique<Adagrad>(common(), Adagrad::Options{}, layout(), kParams); }, 5);
}

}  // namespace

// copy/threads/halves: 7 halves = 3.5 arrays (Adam's traffic), 5 = 2.5 arrays (the others).
BENCHMARK(copy)->Args({1, 7})->Args({2, 7})->Args({1, 5})->Args({2, 5})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(adam)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(sgd_momentum)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(rmsprop)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(adagrad)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
