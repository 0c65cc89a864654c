// Layer kernels: forward and backward of Dense at LeNet's classifier sizes, and the
// element-wise activations, on one minibatch. Run with --benchmark_filter to select.
// Note OPENBLAS_CORETYPE (these machines export Haswell) when reporting figures.
#include <benchmark/benchmark.h>

#include "framework/random.hpp"
#include "framework/runtime.hpp"
#include "layers/activations.hpp"
#include "layers/dense.hpp"

using namespace hubel;

namespace {

struct Bench {
  Tensor x, y, dy, dx, w, dw, b, db;
  std::vector<Param> params;
};

void dense(benchmark::State& state) {
  const int64_t batch = state.range(0), in = state.range(1), out = state.range(2);
  Runtime runtime(static_cast<int>(state.range(3)));
  layers::Dense layer({out, true});
  Tensor x(Shape{batch, in}), y(Shape{batch, out}), dy(Shape{batch, out}), dx(Shape{batch, in});
  Tensor w(Shape{out, in}), dw(Shape{out, in}), b(Shape{out}), db(Shape{out});
  Rng rng(1);
  for (auto& v : x.span()) v = static_cast<float>(rng.normal());
  for (auto& v : w.span()) v = static_cast<float>(rng.normal());
  for (auto& v : dy.span()) v = static_cast<float>(rng.normal());
  std::vector<Param> params{{"w", w.shape(), w.data(), dw.data()}, {"b", b.shape(), b.data(), db.data()}};
  const Shape in_shape[] = {Shape{in}};
  layer.bind(Binding{in_shape, Shape{out}, batch, params});
  for (auto _ : state) {
    runtime.run([&] {
      layer.forward(x.view(), y.view(), {});
      layer.backward(x.view(), y.view(), dy.view(), dx.view(), {});
    });
    benchmark::ClobberMemory();
  }
  // forward 2*b*in*out, backward 4*b*in*out flops
  state.counters["GFLOP/s"] =
      benchmark::Counter(6.0 * batch * in * out * state.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void relu(benchmark::State& state) {
  const int64_t n = state.range(0);
  Runtime runtime(static_cast<int>(state.range(1)));
  layers::Relu layer;
  Tensor x(Shape{n}), y(Shape{n}), dy(Shape{n}), dx(Shape{n});
  for (auto _ : state) {
    runtime.run([&] {
      layer.forward(x.view(), y.view(), {});
      layer.backward(x.view(), y.view(), dy.view(), dx.view(), {});
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 5 * 4);
}

}  // namespace

BENCHMARK(dense)->Args({64, 400, 120, 1})->Args({64, 120, 84, 1})->Args({128, 400, 120, 2})->Args({256, 1024, 1024, 2})->Unit(benchmark::kMicrosecond);
BENCHMARK(relu)->Args({64 * 6 * 28 * 28, 1})->Args({128 * 6 * 28 * 28, 2})->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
