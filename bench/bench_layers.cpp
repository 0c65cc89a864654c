// Layer kernels: forward and backward of Dense at LeNet's classifier sizes, and the
// element-wise activations and 2x2 max pooling, on one minibatch. Run with --benchmark_filter to select.
// Note OPENBLAS_CORETYPE (these machines export Haswell) when reporting figures.
#include <benchmark/benchmark.h>

#include "framework/config.hpp"
#include "framework/random.hpp"
#include "framework/runtime.hpp"
#include "layers/activations.hpp"
#include "layers/builtin.hpp"
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
  state.counters["GFLOP/s"] = benchmark::Counter(6.0 * batch * in * out * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
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

// Max pooling 2x2 at stride 2 on LeNet's first feature maps ([6, 28, 28]): forward only
// (arg 2 = 0) or forward and backward (1).
void maxpool(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Runtime runtime(static_cast<int>(state.range(1)));
  const bool backward = state.range(2) != 0;
  Config c = Config::parse("{type: maxpool2d, kernel: 2}");
  auto layer = layers::builtin_registry().make_layer("maxpool2d", c);
  const std::vector<Shape> xs{Shape{6, 28, 28}};
  const Shape ys = layer->output_shape(xs);
  Tensor x(xs[0].with_batch(batch)), dx(xs[0].with_batch(batch)), y(ys.with_batch(batch)), dy(ys.with_batch(batch));
  Rng rng(1);
  for (auto& v : x.span()) v = std::max(0.0f, static_cast<float>(rng.normal()));  // after a ReLU
  for (auto& v : dy.span()) v = static_cast<float>(rng.normal());
  layer->bind(Binding{xs, ys, batch, {}});
  const std::vector<ConstTensorView> xv{x.view()};
  const std::vector<TensorView> dxv{dx.view()};
  for (auto _ : state) {
    runtime.run([&] {
      layer->forward(xv, y.view(), {});
      if (backward) layer->backward(xv, y.view(), dy.view(), dxv, {});
    });
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * x.numel());
}

}  // namespace

BENCHMARK(dense)
    ->Args({64, 400, 120, 1})
    ->Args({64, 120, 84, 1})
    ->Args({128, 400, 120, 2})
    ->Args({256, 1024, 1024, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(relu)->Args({64 * 6 * 28 * 28, 1})->Args({128 * 6 * 28 * 28, 2})->Unit(benchmark::kMicrosecond);
BENCHMARK(maxpool)
    ->Args({128, 1, 0})
    ->Args({128, 2, 0})
    ->Args({128, 2, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_MAIN();
