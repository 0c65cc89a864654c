// Convolution: options, geometry and parameters; the plan, chosen once in bind; and the
// dispatch to the algorithm that computes it (conv_algorithm.hpp).
#include "layers/conv.hpp"

#include <algorithm>
#include <set>

#include "framework/config.hpp"
#include "layers/bf16_products.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/gemm_kernels.hpp"
#include "layers/pool.hpp"

namespace hubel::layers {

using namespace conv_detail;

namespace {

// The plan's name in `impl:`.
const char* plan_key(Conv::Plan p) {
  static const char* const kKeys[] = {"reference",    "tiled",     "im2col", "wide_im2col", "implicit",
                                      "compact_rows", "positions", "bf16",   "bf16_im2col"};
  return kKeys[static_cast<int>(p)];
}

}  // namespace

Conv::Conv(Options o) : o_(std::move(o)) {}
Conv::~Conv() = default;

std::unique_ptr<Layer> Conv::from_config(const Config& c, int rank) {
  Options o;
  o.window = WindowOptions::parse(c, rank, false);
  if (auto f = c.find("filters")) {
    o.filters = f->as<int64_t>();
    if (o.filters <= 0) f->fail(cat("filters must be positive; got ", o.filters));
  }
  o.groups = c.get<int64_t>("groups", 1);
  if (o.groups <= 0) c.at("groups").fail(cat("groups must be positive; got ", o.groups));
  if (auto t = c.find("connections")) {
    if (!t->is_sequence() || t->items().empty())
      t->fail("connections is a list with, for each filter, the list of input channels it reads");
    for (const auto& row : t->items()) {
      auto inputs = row.as<std::vector<int64_t>>();
      if (inputs.empty()) row.fail("a filter must read at least one input channel");
      std::set<int64_t> seen;
      for (auto ch : inputs) {
        if (ch < 0) row.fail(cat("input channel ", ch, " is negative"));
        if (!seen.insert(ch).second) row.fail(cat("input channel ", ch, " is listed twice"));
      }
      o.connections.push_back(std::move(inputs));
    }
    if (o.groups != 1) c.at("groups").fail("groups and connections exclude each other (a table can express groups)");
    const auto rows = static_cast<int64_t>(o.connections.size());
    if (o.filters && o.filters != rows)
      c.at("filters").fail(cat("filters is ", o.filters, " but the connection table has ", rows, " rows"));
    o.filters = rows;
  }
  if (!o.filters) c.fail("a convolution needs filters (the number of output channels)");
  if (auto t = c.find("tiles")) {
    if (t->is_scalar() && t->as<std::string>() == "all")
      o.locally_connected = true;
    else
      o.tiles = parse_dims(*t, rank, "tiles", 1);
  }
  o.bias = parse_bias(c, true);
  if (auto i = c.find("init")) o.w_init = Init::parse(*i);
  if (auto i = c.find("bias_init")) o.b_init = Init::parse(*i);
  o.relu = c.choice("activation", {"none", "relu"}, "none") == "relu";
  o.flip = c.get<bool>("flip", false);
  const std::string impl = c.choice("impl",
                                    {"fast", "reference", "tiled", "im2col", "wide_im2col", "implicit", "compact_rows",
                                     "positions", "bf16", "bf16_im2col"},
                                    "fast");
  for (int p = 0; p <= static_cast<int>(Plan::bf16_im2col); ++p)
    if (impl == plan_key(static_cast<Plan>(p))) o.impl = static_cast<Plan>(p);
  return std::make_unique<Conv>(std::move(o));
}

std::string Conv::type() const { return "conv" + rank_suffix(o_.window.rank); }

const char* Conv::plan_name(Plan plan) {
  static const char* const kNames[] = {"reference",       "tiled",        "im2col",           "wide im2col",
                                       "implicit im2col", "compact rows", "output positions", "bf16 implicit im2col",
                                       "bf16 im2col"};
  return kNames[static_cast<int>(plan)];
}

std::string Conv::plan() const {
  std::string s = plan_name(plan_);
  const std::string detail = algorithm_ ? algorithm_->detail() : std::string();
  if (!detail.empty()) s += ", " + detail;
  return pool_ ? s + "; the 2x2 max pooling fused" : s;
}

std::string Conv::describe() const {
  std::string s = cat(o_.filters, " filters ", o_.window.describe());
  if (o_.groups > 1) s += cat(", ", o_.groups, " groups");
  if (!o_.connections.empty()) {
    int64_t n = 0;
    for (const auto& r : o_.connections) n += static_cast<int64_t>(r.size());
    s += cat(", table of ", n, " connections");
  }
  if (o_.locally_connected)
    s += ", locally connected";
  else if (o_.tiles.size() > 1 || o_.tiles[0] > 1) {
    s += ", tiles ";
    for (size_t i = 0; i < o_.tiles.size(); ++i) s += cat(i ? "x" : "", o_.tiles[i]);
  }
  s += bias_name(o_.bias);
  if (o_.flip) s += ", flipped kernel (true convolution)";
  if (o_.relu) s += ", relu";
  if (o_.impl == Plan::reference)
    s += ", reference kernel";
  else if (o_.impl)
    s += cat(", plan ", plan_name(*o_.impl));
  return s;
}

Conv::Geometry Conv::geometry(const Shape& x) const {
  if (x.rank() < 2 || x.rank() > 4) shape_error(cat("expects [C, W], [C, H, W] or [C, D, H, W]; got ", x.str()));
  Geometry g;
  const auto spatial = spatial_of(x);
  g.w = resolve_window(o_.window, spatial, [this](const std::string& m) { shape_error(m); });
  g.C = x[0];
  g.K = o_.filters;
  if (!o_.connections.empty()) {
    g.table = true;
    g.groups = 1;
    g.Cg = g.C;
    g.Kg = g.K;
    g.first_block.assign(1, 0);
    for (size_t k = 0; k < o_.connections.size(); ++k) {
      for (auto ch : o_.connections[k])
        if (ch >= g.C)
          shape_error(cat("connection table row ", k, " reads input channel ", ch, " but the input has ", g.C,
                          " channels (0 to ", g.C - 1, ")"));
      g.first_block.push_back(g.first_block.back() + static_cast<int64_t>(o_.connections[k].size()));
    }
    g.blocks = g.first_block.back();
  } else {
    g.groups = o_.groups;
    if (g.C % g.groups) shape_error(cat(g.groups, " groups do not divide the ", g.C, " input channels"));
    if (g.K % g.groups) shape_error(cat(g.groups, " groups do not divide the ", g.K, " filters"));
    g.Cg = g.C / g.groups;
    g.Kg = g.K / g.groups;
    g.blocks = g.K * g.Cg;
  }
  if (o_.locally_connected) {
    g.tiles = g.w.out;
  } else {
    if (o_.tiles.size() != 1 && static_cast<int>(o_.tiles.size()) != g.w.rank)
      shape_error(cat("tiles has ", o_.tiles.size(), " values but the input has ", g.w.rank, " spatial dimensions"));
    g.tiles = expand_dims(o_.tiles, g.w.rank, 1);
    for (int t = 0; t < 3; ++t)
      if (g.tiles[t] > g.w.out[t])
        shape_error(cat("tile size ", g.tiles[t], " exceeds the output size ", g.w.out[t],
                        " (tiles: all makes a locally connected layer)"));
  }
  g.T = g.tiles[0] * g.tiles[1] * g.tiles[2];
  return g;
}

Shape Conv::output_shape(const Shape& x) const { return geometry(x).w.out_shape(o_.filters); }

std::vector<ParamSpec> Conv::param_specs(const Shape& x) const {
  const Geometry g = geometry(x);
  const int64_t kvol = g.kvol();
  Shape ws;
  if (g.T > 1) {
    ws = {g.T, g.blocks, kvol};
  } else {
    std::array<int64_t, 5> d{};
    int r = 0;
    if (g.table) {
      d[r++] = g.blocks;
    } else {
      d[r++] = g.K;
      d[r++] = g.Cg;
    }
    for (int i = 0; i < g.w.rank; ++i) d[r++] = g.w.k[3 - g.w.rank + i];
    ws = Shape(std::span<const int64_t>(d.data(), static_cast<size_t>(r)));
  }
  // Inputs feeding one output, outputs fed by one input (averaged over a table).
  const int64_t fan_in = std::max<int64_t>(1, g.blocks * kvol / g.K),
                fan_out = std::max<int64_t>(1, g.blocks * kvol / g.C);
  std::vector<ParamSpec> p{{"w", ws, o_.w_init, fan_in, fan_out, true}};
  if (o_.bias == BiasKind::channel) p.push_back({"b", {g.K}, o_.b_init, fan_in, fan_out, false});
  if (o_.bias == BiasKind::location) p.push_back({"b", g.w.out_shape(g.K), o_.b_init, fan_in, fan_out, false});
  return p;
}

int64_t Conv::flops(std::span<const Shape> x, const Shape&) const {
  const Geometry g = geometry(x[0]);
  return 2 * g.blocks * g.kvol() * g.P() + (o_.bias == BiasKind::none ? 0 : g.K * g.P());
}

std::string Conv::unsupported(Plan plan, const Geometry& g) {
  const int64_t panel = kernel_panel();
  switch (plan) {
    case Plan::reference:
    case Plan::tiled:
      return {};
    case Plan::im2col:
      return g.T > 1 ? "it has one weight set, and this layer has tiles" : "";
    case Plan::wide_im2col:
      if (WideImage::strided(g.w)) return "it needs stride 1";
      [[fallthrough]];
    case Plan::implicit:
    case Plan::compact_rows:
    case Plan::positions: {
      if (g.T > 1) return "it has one weight set, and this layer has tiles";
      if (!WideImage::applies(g.w))
        return "it needs zero padding, 1-D or 2-D, a kernel larger than 1, and no dilation with a stride";
      if (plan == Plan::wide_im2col) return {};
      if (panel <= 0) return "this CPU has no product kernels for it (no AVX2)";
      if (plan == Plan::compact_rows && g.w.out[2] % panel)
        return cat("it needs output rows of whole kernel panels (", panel, " wide); the output is ", g.w.out[2],
                   " wide");
      if (plan == Plan::positions && g.Kg % panel)
        return cat("it needs the filters of a group in whole kernel panels (", panel, "); a group has ", g.Kg);
      return {};
    }
    case Plan::bf16:
      if (auto why = unsupported(Plan::implicit, g); !why.empty()) return why;
      if (!bf16_kernels()) return "this CPU or this build has no bf16 products (AVX512_BF16)";
      if (g.groups > 1) return "it has one group, and this layer has " + std::to_string(g.groups);
      return {};
    case Plan::bf16_im2col:
      if (auto why = unsupported(Plan::im2col, g); !why.empty()) return why;
      if (panel <= 0) return "this CPU has no product kernels for it (no AVX2)";
      if (!bf16_kernels()) return "this CPU or this build has no bf16 products (AVX512_BF16)";
      if (g.groups > 1) return "it has one group, and this layer has " + std::to_string(g.groups);
      return {};
  }
  return "unknown plan";
}

Conv::Plan Conv::choose_plan() const {
  if (o_.impl) {
    if (auto why = unsupported(*o_.impl, g_); !why.empty())
      shape_error(cat("impl: ", plan_key(*o_.impl), " cannot compute this layer: ", why));
    return *o_.impl;
  }
  if (g_.T > 1) return Plan::tiled;
  if (!WideImage::applies(g_.w))
    return bf16_ && unsupported(Plan::bf16_im2col, g_).empty() ? Plan::bf16_im2col : Plan::im2col;
  if (kernel_panel() <= 0) return WideImage::strided(g_.w) ? Plan::im2col : Plan::wide_im2col;
  if (bf16_ && unsupported(Plan::bf16, g_).empty()) return Plan::bf16;
  // Compact where it applies, then positions: no wide position is computed.
  if (unsupported(Plan::compact_rows, g_).empty()) return Plan::compact_rows;
  if (unsupported(Plan::positions, g_).empty()) return Plan::positions;
  return Plan::implicit;
}

void Conv::bind(const Binding& b) {
  UnaryLayer::bind(b);
  g_ = geometry(b.x[0]);
  max_batch_ = b.max_batch;
  inference_ = b.inference;
  bf16_ = b.precision == Precision::bf16;
  plan_ = choose_plan();
  const ConvProblem p{g_, o_.connections, o_.bias, o_.relu, b.max_batch, b.inference};
  switch (plan_) {
    case Plan::reference:
      algorithm_ = make_reference_conv(p);
      break;
    case Plan::tiled:
      algorithm_ = make_tiled_conv(p);
      break;
    case Plan::im2col:
    case Plan::wide_im2col:
      algorithm_ = make_im2col_conv(p, plan_ == Plan::wide_im2col);
      break;
    case Plan::bf16_im2col:
      algorithm_ = make_im2col_conv(p, false, true);
      break;
    case Plan::bf16:
      algorithm_ = make_bf16_conv(p);
      break;
    default:
      algorithm_ = make_implicit_conv(p, plan_);
  }
  if (o_.flip) {
    w_flipped_ = AlignedBuffer(params_[0].numel(), AlignedBuffer::Uninitialized{});
    if (!b.inference) dw_flipped_ = AlignedBuffer(params_[0].numel(), AlignedBuffer::Uninitialized{});
  }
}

namespace {
// Each kernel reversed: its k_vol weights are the innermost, contiguous dimensions, and
// reversing them reverses every spatial dimension at once (the true convolution's kernel).
void flip_kernels(const float* src, int64_t n, int64_t kvol, float* dst) {
  for (int64_t b = 0; b < n; b += kvol) std::reverse_copy(src + b, src + b + kvol, dst + b);
}
}  // namespace

namespace {
ConvParams params_of(const std::vector<Param>& params, BiasKind bias) {
  ConvParams p{params[0].w, nullptr, params[0].dw, nullptr};
  if (bias != BiasKind::none) p.b = params[1].w, p.db = params[1].dw;
  return p;
}
}  // namespace

void Conv::forward(ConstTensorView x, TensorView y, const StepContext& ctx) { run_forward(x, y, ctx, {}); }

void Conv::backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext& ctx) {
  run_backward(x, y, dy, dx, ctx, {});
}

bool Conv::fuse(const Layer& next) {
  const auto* pool = dynamic_cast<const Pool*>(&next);
  if (!pool || !algorithm_ || !algorithm_->fuses_pool()) return false;
  pool_ = pool->max_2x2_window();
  if (pool_ && !inference_) pool_argmax_.assign(static_cast<size_t>(max_batch_ * g_.K * pool_->out_vol()), -1);
  return pool_ != nullptr;
}

void Conv::forward_fused(ConstTensorView x, TensorView y, TensorView next_y, const StepContext& ctx) {
  if (!pool_) Layer::forward_fused(x, y, next_y, ctx);
  run_forward(x, y, ctx, FusedPool{pool_, next_y.data(), inference_ ? nullptr : pool_argmax_.data(), nullptr});
}

void Conv::backward_fused(ConstTensorView x, ConstTensorView y, ConstTensorView next_dy, TensorView dx,
                          const StepContext& ctx) {
  if (!pool_) Layer::backward_fused(x, y, next_dy, dx, ctx);
  run_backward(x, y, ConstTensorView(), dx, ctx, FusedPool{pool_, nullptr, pool_argmax_.data(), next_dy.data()});
}

void Conv::run_forward(ConstTensorView x, TensorView y, const StepContext& ctx, const FusedPool& pool) {
  ConvParams p = params_of(params_, o_.bias);
  if (o_.flip) {
    flip_kernels(p.w, params_[0].numel(), g_.kvol(), w_flipped_.data());
    p.w = w_flipped_.data();
  }
  algorithm_->forward(p, x, y, ctx, pool);
}

void Conv::run_backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext& ctx,
                        const FusedPool& pool) {
  ConvParams p = params_of(params_, o_.bias);
  if (o_.flip) {  // forward's flipped kernels (the weights have not changed since); the gradient flipped back
    p.w = w_flipped_.data();
    p.dw = dw_flipped_.data();
  }
  algorithm_->backward(p, x, y, dy, dx, ctx, pool);
  if (o_.flip) flip_kernels(dw_flipped_.data(), params_[0].numel(), g_.kvol(), params_[0].dw);
}

}  // namespace hubel::layers

namespace hubel::layers {

namespace {

// ONNX export: the bias of every output position, added after the convolution (location
// bias), and the fused relu; `out` is the convolution's value.
void onnx_epilogue(onnx::Graph& g, const std::string& name, std::string out, const Param* location_bias, bool relu,
                   const std::string& y) {
  if (location_bias) {
    const std::string b = g.constant(name + "_b", onnx::dims(location_bias->shape),
                                     std::span<const float>(location_bias->w, location_bias->numel()));
    const std::string sum = relu ? g.fresh(name + "_biased") : y;
    g.node("Add", {out, b}, {sum});
    out = sum;
  }
  if (relu) g.node("Relu", {out}, {y});
}

}  // namespace

void Conv::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>, const std::string& y) const {
  if (g_.T > 1)
    onnx_refuse(o_.locally_connected ? "a locally connected layer (one weight set per position) has no ONNX operator"
                                     : "tiled weight sets have no ONNX operator");
  const int64_t kvol = g_.kvol(), Cg = g_.table ? g_.C : g_.Cg;
  std::vector<float> w(static_cast<size_t>(g_.K * Cg * kvol), 0.0f);
  const float* src = params_[0].w;
  if (g_.table) {  // decomposed: a full convolution whose unconnected kernels are zero
    for (int64_t k = 0; k < g_.K; ++k)
      for (size_t j = 0; j < o_.connections[static_cast<size_t>(k)].size(); ++j)
        std::copy_n(src + (g_.first_block[static_cast<size_t>(k)] + static_cast<int64_t>(j)) * kvol, kvol,
                    w.begin() + (k * Cg + o_.connections[static_cast<size_t>(k)][j]) * kvol);
  } else {
    std::copy_n(src, w.size(), w.begin());
  }
  if (o_.flip)
    for (size_t b = 0; b < w.size(); b += static_cast<size_t>(kvol))
      std::reverse(w.begin() + static_cast<std::ptrdiff_t>(b), w.begin() + static_cast<std::ptrdiff_t>(b) + kvol);
  std::vector<int64_t> wd{g_.K, Cg};
  for (int i = 3 - g_.w.rank; i < 3; ++i) wd.push_back(g_.w.k[i]);
  OnnxWindow ow = onnx_window(g_.w);
  std::vector<std::string> in{onnx_pad_input(g, x[0], g_.w, ow, name()), g.constant(name() + "_w", wd, w)};
  if (o_.bias == BiasKind::channel)
    in.push_back(g.constant(name() + "_b", {g_.K}, std::span<const float>(params_[1].w, g_.K)));
  auto attrs = onnx_window_attrs(ow);
  attrs.push_back(onnx::attr("group", g_.groups));
  const bool more = o_.bias == BiasKind::location || o_.relu;
  const std::string out = more ? g.fresh(name() + "_conv") : y;
  g.node("Conv", in, {out}, std::move(attrs));
  onnx_epilogue(g, name(), out, o_.bias == BiasKind::location ? &params_[1] : nullptr, o_.relu, y);
}

}  // namespace hubel::layers
