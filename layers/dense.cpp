// Dense layer on the BLAS. Work is cut into fixed chunks (rows of the batch for y and dx,
// output units for dW and db), so results do not depend on the number of threads and the
// weight gradient needs no reduction across tasks.
#include "layers/dense.hpp"

#include "framework/chunks.hpp"
#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"
#include "layers/gemm.hpp"

namespace hubel::layers {

namespace {
// Chunks big enough for the BLAS to reach its speed (about a million multiply-adds, and at
// least 16 rows of a product), fixed by the shapes alone.
int64_t gemm_grain(int64_t per_item) { return std::max<int64_t>(16, grain_for(per_item, int64_t{1} << 20)); }
}  // namespace

Dense::Dense(const Options& o) : o_(o) {}

std::unique_ptr<Layer> Dense::from_config(const Config& c) {
  Options o;
  o.units = c.get<int64_t>("units");
  if (o.units <= 0) c.at("units").fail(cat("units must be positive; got ", o.units));
  o.bias = c.get<bool>("bias", true);
  if (auto i = c.find("init")) o.w_init = Init::parse(*i);
  if (auto i = c.find("bias_init")) o.b_init = Init::parse(*i);
  return std::make_unique<Dense>(o);
}

std::string Dense::describe() const {
  return cat(o_.units, " units", o_.bias ? "" : ", no bias", ", init ", o_.w_init.str());
}

Shape Dense::output_shape(const Shape& x) const {
  if (o_.units <= 0) shape_error(cat("units must be positive; got ", o_.units));
  if (x.numel() <= 0) shape_error(cat("empty input ", x.str()));
  return {o_.units};
}

std::vector<ParamSpec> Dense::param_specs(const Shape& x) const {
  const int64_t in = x.numel();
  std::vector<ParamSpec> p{{"w", {o_.units, in}, o_.w_init, in, o_.units, true}};
  if (o_.bias) p.push_back({"b", {o_.units}, o_.b_init, in, o_.units, false});
  return p;
}

void Dense::bind(const Binding& b) {
  UnaryLayer::bind(b);
  in_ = b.x[0].numel();
}

void Dense::forward(ConstTensorView x, TensorView y, const StepContext& ctx) {
  const int64_t n = x.batch(), in = in_, out = o_.units;
  const float* w = params_[0].w;
  const float* bias = o_.bias ? params_[1].w : nullptr;
  // Rows in pieces that, in an exact run, never straddle a chunk: the product a row takes
  // part in has the same shape on any number of ranks.
  for_each_piece(ctx, n, gemm_grain(in * out), [&](int64_t r0, int64_t r1) {
    // y[r0:r1] = x[r0:r1] W^T (+ b)
    gemm(false, true, r1 - r0, out, in, 1.0f, x.data() + r0 * in, in, w, in, 0.0f, y.data() + r0 * out, out);
    if (bias)
      for (int64_t r = r0; r < r1; ++r) {
        float* yr = y.data() + r * out;
        for (int64_t j = 0; j < out; ++j) yr[j] += bias[j];
      }
  });
}

void Dense::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx, const StepContext& ctx) {
  const int64_t n = x.batch(), in = in_, out = o_.units;
  const float* w = params_[0].w;
  float* dw = params_[0].dw;
  float* db = o_.bias ? params_[1].dw : nullptr;
  if (ctx.chunk > 0) {
    exact_parameter_gradients(x, dy, ctx);
  } else {
    // dW[j0:j1] = dy[:, j0:j1]^T x ; db[j] = sum_r dy[r, j] in row order.
    parallel_chunks(out, gemm_grain(n * in), [&](int64_t j0, int64_t j1) {
      gemm(true, false, j1 - j0, in, n, 1.0f, dy.data() + j0, out, x.data(), in, 0.0f, dw + j0 * in, in);
      if (db) {
        for (int64_t j = j0; j < j1; ++j) db[j] = 0;
        for (int64_t r = 0; r < n; ++r) {
          const float* dyr = dy.data() + r * out;
          for (int64_t j = j0; j < j1; ++j) db[j] += dyr[j];
        }
      }
    });
  }
  if (dx.empty()) return;
  // dx[r0:r1] = dy[r0:r1] W
  for_each_piece(ctx, n, gemm_grain(in * out), [&](int64_t r0, int64_t r1) {
    gemm(false, false, r1 - r0, in, out, 1.0f, dy.data() + r0 * out, out, w, in, 0.0f, dx.data() + r0 * in, in);
  });
}

// An exact run (framework/chunks.hpp): a partial [dW, db] per chunk of samples, each made
// by the same products whatever the rank holding it (blocks of output units fixed by the
// shapes), then added in the chunks' tree.
void Dense::exact_parameter_gradients(ConstTensorView x, ConstTensorView dy, const StepContext& ctx) {
  const int64_t n = x.batch(), in = in_, out = o_.units;
  const ChunkPlan plan = chunks_for(ctx, n, 1);
  const int64_t size = align_floats(out * in + (o_.bias ? out : 0));
  if (partials_.size() < plan.count * size) partials_ = AlignedBuffer(plan.count * size);   // once
  const int64_t units = std::max<int64_t>(1, grain_for(plan.size * in, int64_t{1} << 20));  // per task
  const int64_t blocks = (out + units - 1) / units;
  parallel_chunks(plan.count * blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c = t / blocks, j0 = t % blocks * units, j1 = std::min(out, j0 + units);
      const int64_t r0 = std::min(n, plan.begin(c)), r1 = plan.end(c, n);
      float* dw = partials_.data() + c * size;
      float* db = o_.bias ? dw + out * in : nullptr;
      if (r1 <= r0) {  // a chunk past this rank's rows
        std::fill(dw + j0 * in, dw + j1 * in, 0.0f);
        if (db) std::fill(db + j0, db + j1, 0.0f);
        continue;
      }
      gemm(true, false, j1 - j0, in, r1 - r0, 1.0f, dy.data() + r0 * out + j0, out, x.data() + r0 * in, in, 0.0f,
           dw + j0 * in, in);
      if (db) {
        for (int64_t j = j0; j < j1; ++j) db[j] = 0;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t j = j0; j < j1; ++j) db[j] += dy.data()[r * out + j];
      }
    }
  });
  tree_sum(partials_.data(), plan.count, size, out * in, params_[0].dw);
  if (o_.bias) tree_sum(partials_.data() + out * in, plan.count, size, out, params_[1].dw);
}

}  // namespace hubel::layers

namespace hubel::layers {

void Dense::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape> xs,
                    const std::string& y) const {
  std::string in = x[0];
  if (xs[0].rank() != 1) in = g.op("Flatten", {in}, name() + "_flat", {onnx::attr("axis", int64_t{1})});
  std::vector<std::string> ins{
      in, g.constant(name() + "_w", {o_.units, in_}, std::span<const float>(params_[0].w, params_[0].numel()))};
  if (o_.bias) ins.push_back(g.constant(name() + "_b", {o_.units}, std::span<const float>(params_[1].w, o_.units)));
  g.node("Gemm", ins, {y}, {onnx::attr("transB", int64_t{1})});
}

}  // namespace hubel::layers
