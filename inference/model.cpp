#include "inference/model.hpp"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "datasets/open.hpp"
#include "framework/checkpoint.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/experiment.hpp"
#include "layers/builtin.hpp"

namespace hubel {

namespace {

// One caller's net: activations and layer scratch of its own, the parameters read from
// the model's (shared) arena; and a float copy of uint8 input.
struct Replica {
  BuiltModel model;
  Tensor raw;
};

}  // namespace

struct Model::Impl {
  Config experiment;
  int64_t max_batch = 64;
  BuiltModel base;  // holds the parameters; also the first replica
  std::unique_ptr<datasets::Transform> transform;
  Shape stored;
  std::vector<std::string> names;
  int threads = 1;
  // One arena per concurrent caller (a caller never waits for a slot in another's arena,
  // nor runs another caller's call): each of `threads` threads, over TBB's one pool.
  std::vector<std::unique_ptr<tbb::task_arena>> free_arenas;
  std::mutex mutex;
  std::vector<std::unique_ptr<Replica>> free;  // replicas no caller holds
  std::vector<int64_t> zeros;                  // sample ids for the transform (no augmentation)

  Impl(Config exp, BuiltModel m) : experiment(std::move(exp)), base(std::move(m)) {}

  std::unique_ptr<Replica> acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!free.empty()) {
        auto r = std::move(free.back());
        free.pop_back();
        return r;
      }
    }
    // (Reading the experiment is not thread-safe: yaml-cpp's lookups change the nodes.)
    std::unique_lock<std::mutex> lock(mutex);
    auto r = std::make_unique<Replica>(
        Replica{build_model(experiment.at("model"), layers::builtin_registry()), Tensor(stored.with_batch(max_batch))});
    lock.unlock();
    r->model.net.set_precision(base.net.precision());
    r->model.net.build_inference(max_batch, &base.net);
    return r;
  }
  void release(std::unique_ptr<Replica> r) {
    std::lock_guard<std::mutex> lock(mutex);
    free.push_back(std::move(r));
  }

  // y = net(T(x)) for n <= max_batch rows of stored values.
  template <class T>
  void run(Replica& r, const T* x, int64_t n, float* y) {
    const int64_t per = stored.numel(), out = base.net.output_shape().numel();
    TensorView in = r.model.net.input(n);
    const float* src;
    if constexpr (std::is_same_v<T, float>) {
      src = x;
    } else {
      std::transform(x, x + n * per, r.raw.data(), [](T v) { return static_cast<float>(v); });
      src = r.raw.data();
    }
    if (transform)
      transform->apply(ConstTensorView(src, stored.with_batch(n)), std::span<const int64_t>(zeros.data(), n), 0, 0,
                       false, in);
    else
      std::copy(src, src + n * per, in.data());
    const ConstTensorView yv = r.model.net.forward(n, StepContext{});
    std::copy(yv.data(), yv.data() + n * out, y);
  }

  template <class T>
  void predict(const T* x, int64_t n, float* y) {
    if (n < 0) throw Error(cat("Model::predict: ", n, " samples"));
    if (n == 0) return;
    const int64_t per = stored.numel(), out = base.net.output_shape().numel();
    // A batch is split between the arena's threads, each piece through its own replica
    // from start to end (one join per call rather than one per layer: the layers of a
    // small net split their work too finely to keep several threads busy). Pieces of at
    // least kMinRows rows; a sample's output does not depend on the rows beside it.
    constexpr int64_t kMinRows = 8;
    const int64_t pieces = std::clamp<int64_t>(n / kMinRows, 1, threads);
    auto piece = [&](int64_t p) {
      const int64_t b = n * p / pieces, e = n * (p + 1) / pieces;
      std::unique_ptr<Replica> r = acquire();
      try {
        for (int64_t i = b; i < e; i += max_batch) {
          const int64_t rows = std::min(max_batch, e - i);
          run(*r, x + i * per, rows, y + i * out);
        }
      } catch (...) {
        release(std::move(r));
        throw;
      }
      release(std::move(r));
    };
    std::unique_ptr<tbb::task_arena> arena;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!free_arenas.empty()) {
        arena = std::move(free_arenas.back());
        free_arenas.pop_back();
      }
    }
    if (!arena) arena = std::make_unique<tbb::task_arena>(threads);
    auto give_back = [&] {
      std::lock_guard<std::mutex> lock(mutex);
      free_arenas.push_back(std::move(arena));
    };
    try {
      arena->execute([&] {
        if (pieces == 1)
          piece(0);
        else
          tbb::parallel_for(int64_t{0}, pieces, piece);
      });
    } catch (...) {
      give_back();
      throw;
    }
    give_back();
  }

  template <class T>
  std::vector<Class> classify(const T* x, int64_t n) {
    const int64_t K = base.net.output_shape().numel();
    std::vector<float> y(static_cast<size_t>(std::max<int64_t>(n, 0) * K));
    predict(x, n, y.data());
    std::vector<Class> c(static_cast<size_t>(std::max<int64_t>(n, 0)));
    for (int64_t i = 0; i < n; ++i) {
      const float* row = y.data() + i * K;
      const int64_t best = std::max_element(row, row + K) - row;
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(static_cast<double>(row[k] - row[best]));
      c[static_cast<size_t>(i)] = {best, static_cast<float>(1.0 / sum)};
    }
    return c;
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path, const Options& o) {
  if (o.max_batch < 1) throw ConfigError(cat("Model::load: max_batch must be positive; got ", o.max_batch));
  const std::string file = resolve_checkpoint(path);
  Config root = checkpoint_experiment(o.experiment, file, o.sets);
  // Only what inference reads: the model and the data's transform.
  BuiltModel model = build_model(root.at("model"), layers::builtin_registry());
  datasets::Splits data = datasets::open(root.at("data"), true);
  auto impl = std::make_unique<Impl>(root, std::move(model));
  impl->max_batch = o.max_batch;
  impl->base.net.set_precision(o.precision);
  impl->base.net.build_inference(o.max_batch);
  load_checkpoint(file, impl->base.net, nullptr, nullptr);
  impl->stored = data.train->sample_shape();
  impl->names = data.train->class_names();
  impl->transform = std::move(data.transform);
  if (!impl->transform && impl->stored != impl->base.net.input_shape())
    throw ConfigError(cat("the data's samples ", impl->stored.str(), " are not the model's input ",
                          impl->base.net.input_shape().str()));
  impl->threads = o.threads > 0 ? o.threads : tbb::this_task_arena::max_concurrency();
  impl->zeros.assign(static_cast<size_t>(o.max_batch), 0);
  return Model(std::move(impl));
}

const Shape& Model::input_shape() const { return impl_->stored; }
const Shape& Model::output_shape() const { return impl_->base.net.output_shape(); }
const std::vector<std::string>& Model::class_names() const { return impl_->names; }
int64_t Model::parameters() const { return impl_->base.net.num_params(); }

void Model::predict(const float* x, int64_t n, float* y) const { impl_->predict(x, n, y); }
void Model::predict(const uint8_t* x, int64_t n, float* y) const { impl_->predict(x, n, y); }
std::vector<Model::Class> Model::classify(const uint8_t* x, int64_t n) const { return impl_->classify(x, n); }
std::vector<Model::Class> Model::classify(const float* x, int64_t n) const { return impl_->classify(x, n); }

}  // namespace hubel
