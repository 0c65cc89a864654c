// Convolution: geometry, the fast im2col + GEMM path, the naive reference path, the
// transposed convolution and the true convolution of signal processing.
#include "layers/conv.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <type_traits>

#include "framework/config.hpp"
#include "framework/parallel.hpp"
#include "layers/conv_products.hpp"
#include "layers/gemm.hpp"
#include "layers/gemm_kernels.hpp"

namespace hubel::layers {

namespace {

// Samples per task: enough work (about two million flops) to amortize a task.
int64_t sample_grain(int64_t flops_per_sample) { return grain_for(flops_per_sample, int64_t{1} << 21); }

// At most this many per-chunk weight-gradient partials, and at most this many bytes of them.
constexpr int64_t kMaxPartials = 32;
// Untiled: at most this many floats of columns per block of samples (256 KiB: the block's
// columns stay in the L2 cache while the BLAS packs them; 256 KiB and 512 KiB blocks ran
// alike in bench_conv, 1 MiB ones made LeNet's first layer twice as slow).
constexpr int64_t kBlockFloats = int64_t{1} << 16;
constexpr int64_t kPartialBytes = int64_t{256} << 20;

int64_t max_partials(int64_t partial_size, int64_t max_batch) {
  const int64_t by_memory = std::max<int64_t>(1, kPartialBytes / 4 / std::max<int64_t>(partial_size, 1));
  return std::max<int64_t>(1, std::min({kMaxPartials, by_memory, max_batch}));
}

// Chunks of samples for backward: fixed by n and the shapes, never by the thread count.
int64_t backward_chunk(int64_t n, int64_t grain, int64_t partial_slots) {
  return std::max(grain, (n + partial_slots - 1) / partial_slots);
}

// out[i] = sum over chunks c (in order) of partials[c * stride + i], for i < size.
void reduce_partials(const float* partials, int64_t chunks, int64_t stride, int64_t size, float* out) {
  parallel_chunks(size, 8192, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float s = partials[i];
      for (int64_t c = 1; c < chunks; ++c) s += partials[c * stride + i];
      out[i] = s;
    }
  });
}

BiasKind parse_bias(const Config& c, bool location_allowed) {
  auto b = c.find("bias");
  if (!b) return BiasKind::channel;
  const auto v = b->as<std::string>();
  if (v == "true" || v == "channel") return BiasKind::channel;
  if (v == "false" || v == "none") return BiasKind::none;
  if (v == "location" && location_allowed) return BiasKind::location;
  b->fail(cat("bias must be true, false, channel", location_allowed ? ", location" : "", " or none; got '", v, "'"));
}

std::string rank_suffix(int rank) { return rank ? cat(rank, "d") : ""; }

std::vector<int64_t> spatial_of(const Shape& x) { return {x.begin() + 1, x.end()}; }

// y[k][q] += b[k] (channel) or b[k][q] (location), for one sample of K planes of V values.
void add_bias(BiasKind kind, const float* b, int64_t K, int64_t V, float* y) {
  if (kind == BiasKind::channel) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t q = 0; q < V; ++q) y[k * V + q] += b[k];
  } else if (kind == BiasKind::location) {
    for (int64_t q = 0; q < K * V; ++q) y[q] += b[q];
  }
}

// The bias gradient of one sample, written (first sample of a chunk) or added.
void bias_gradient(BiasKind kind, const float* dy, int64_t K, int64_t V, bool first, float* db) {
  if (kind == BiasKind::channel) {
    for (int64_t k = 0; k < K; ++k) {
      // 16 running sums (one vector register), added at the end in a fixed order.
      float lane[16] = {};
      const float* d = dy + k * V;
      int64_t q = 0;
      for (; q + 16 <= V; q += 16)
        for (int l = 0; l < 16; ++l) lane[l] += d[q + l];
      float s = 0;
      for (int l = 0; l < 16; ++l) s += lane[l];
      for (; q < V; ++q) s += d[q];
      db[k] = first ? s : db[k] + s;
    }
  } else if (kind == BiasKind::location) {
    for (int64_t q = 0; q < K * V; ++q) db[q] = first ? dy[q] : db[q] + dy[q];
  }
}

// The bias gradient from K planes of `rows` rows of OW values each, plane k at d + k * ldk,
// row r at + r * row_stride (written for the first sample of a chunk, else added).
void bias_gradient_rows(BiasKind kind, const float* d, int64_t ldk, int64_t rows, int64_t row_stride, int64_t OW,
                        int64_t K, bool first, float* db) {
  if (kind == BiasKind::channel) {
    for (int64_t k = 0; k < K; ++k) {
      float lane[16] = {};
      float tail = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = d + k * ldk + r * row_stride;
        int64_t q = 0;
        for (; q + 16 <= OW; q += 16)
          for (int l = 0; l < 16; ++l) lane[l] += row[q + l];
        for (; q < OW; ++q) tail += row[q];
      }
      float s = 0;
      for (int l = 0; l < 16; ++l) s += lane[l];
      s += tail;
      db[k] = first ? s : db[k] + s;
    }
  } else if (kind == BiasKind::location) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = d + k * ldk + r * row_stride;
        float* out = db + (k * rows + r) * OW;
        for (int64_t q = 0; q < OW; ++q) out[q] = first ? row[q] : out[q] + row[q];
      }
  }
}

void apply_relu(float* y, int64_t n) {
  parallel_chunks(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = y[i] > 0 ? y[i] : 0.0f;
  });
}

// The row stride of a block's matrices: its columns rounded up to whole panels of the
// product kernel, so no column is left to a slower tail (the extra columns are zero).
int64_t panel_of_kernels() { return std::max<int64_t>(kernel_panel(), 1); }
int64_t block_ld(int64_t columns) {
  return (columns + panel_of_kernels() - 1) / panel_of_kernels() * panel_of_kernels();
}

// m[r][from, ld) = 0 for rows r < rows.
void zero_columns(float* m, int64_t rows, int64_t from, int64_t ld) {
  if (from < ld)
    for (int64_t r = 0; r < rows; ++r) std::fill(m + r * ld + from, m + (r + 1) * ld, 0.0f);
}

const char* bias_name(BiasKind b) {
  return b == BiasKind::none ? ", no bias" : b == BiasKind::location ? ", bias per location" : "";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Conv

Conv::Conv(Options o) : o_(std::move(o)) {}

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
  o.reference = reference_impl(c);
  return std::make_unique<Conv>(std::move(o));
}

std::string Conv::type() const { return "conv" + rank_suffix(o_.window.rank); }

std::string Conv::plan() const {
  static const char* const kNames[] = {"reference",       "tiled",        "im2col",          "wide im2col",
                                       "implicit im2col", "compact rows", "output positions"};
  std::string s = kNames[static_cast<int>(plan_)];
  if (implicit()) s += transposed_grad_ ? ", dW^T" : ", dW by dot products";
  return s;
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
  if (o_.relu) s += ", relu";
  if (o_.reference) s += ", reference kernel";
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

void Conv::bind(const Binding& b) {
  UnaryLayer::bind(b);
  g_ = geometry(b.x[0]);
  max_batch_ = b.max_batch;
  transposed_grad_ = false;
  if (o_.reference) {
    plan_ = Plan::reference;
    if (o_.relu) masked_ = AlignedBuffer(max_batch_ * g_.K * g_.P(), AlignedBuffer::Uninitialized{});
    return;
  }
  plan_ = g_.T > 1 ? Plan::tiled : Plan::im2col;
  const int64_t P = g_.P(), CK = g_.C * g_.kvol();
  order_.clear();
  tile_begin_.assign(1, 0);
  if (g_.T > 1) {
    // Output positions grouped by the weight set they use, each group in natural order.
    std::vector<int64_t> tile(static_cast<size_t>(P));
    int64_t p = 0;
    for (int64_t od = 0; od < g_.w.out[0]; ++od)
      for (int64_t oh = 0; oh < g_.w.out[1]; ++oh)
        for (int64_t ow = 0; ow < g_.w.out[2]; ++ow) tile[static_cast<size_t>(p++)] = g_.tile_of(od, oh, ow);
    for (int64_t t = 0; t < g_.T; ++t) {
      for (int64_t q = 0; q < P; ++q)
        if (tile[static_cast<size_t>(q)] == t) order_.push_back(q);
      tile_begin_.push_back(static_cast<int64_t>(order_.size()));
    }
  } else {
    tile_begin_.push_back(P);
  }
  const int64_t dense = g_.T * g_.K * g_.Cg * g_.kvol();
  if (g_.table) w_dense_ = AlignedBuffer(dense);
  const int64_t bias = o_.bias == BiasKind::none ? 0 : o_.bias == BiasKind::channel ? g_.K : g_.K * P;
  partial_size_ = align_floats(dense + bias);
  partials_ = AlignedBuffer(max_partials(partial_size_, max_batch_) * partial_size_);
  // The wide layout (see pad_input) where it applies: untiled, stride 1, zero padding, 1-D or 2-D.
  const Window& w = g_.w;
  wide_ = Wide{};
  wide_.Pc = wide_.Pcp = P;
  if (g_.T == 1 && w.value == PadValue::zero && w.in[0] == 1 && w.out[0] == 1 && w.k[0] == 1 && w.s[1] == 1 &&
      w.s[2] == 1 && !w.is_pointwise()) {
    plan_ = Plan::wide_im2col;
    wide_.Hp = w.out[1] + (w.k[1] - 1) * w.d[1];
    wide_.Wp = w.out[2] + (w.k[2] - 1) * w.d[2];
    wide_.Pc = w.out[1] * wide_.Wp;
    // The last row's run reaches (k - 1) * dilation past the last plane (and, implicit,
    // up to a panel further: the columns that round Pc up).
    const int64_t panel = kernel_panel();
    if (panel > 0) plan_ = Plan::implicit;
    wide_.Pcp = implicit() ? (wide_.Pc + panel - 1) / panel * panel : wide_.Pc;
    // Compact also where the filters of a group are whole panels, whatever the row width:
    // the forward product is then made with the output positions as its rows (y^T = cols^T
    // W^T, the kernel reading each position's taps in place through the tap offsets), the
    // weight gradient transposed, and no wide position is computed (LeNet's c2: 100
    // positions a sample instead of 140).
    if (implicit() && w.out[2] % panel == 0)
      plan_ = Plan::compact_rows;
    else if (implicit() && g_.Kg % panel == 0)
      plan_ = Plan::positions;
    wide_.pmap.clear();
    if (compact())  // output position q's column in the padded image
      for (int64_t q = 0; q < P; ++q) wide_.pmap.push_back(q / w.out[2] * wide_.Wp + q % w.out[2]);
    wide_.image = align_floats(g_.C * wide_.Hp * wide_.Wp + (w.k[2] - 1) * w.d[2] + wide_.Pcp - wide_.Pc);
    wide_.off.clear();
    for (int64_t c = 0; c < g_.C; ++c)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw)
          wide_.off.push_back(c * wide_.Hp * wide_.Wp + kh * w.d[1] * wide_.Wp + kw * w.d[2]);
  }
  // Untiled: cols and dcols [CK, ld], y or dy of the block [K, ld] (ld: nb * Pcp rounded
  // up by block_ld), and the padded images (one per sample of a block when implicit).
  // Tiled: cols, dcols, the same two in tile order, and one [K, P] buffer.
  const int64_t Pc = wide_.Pc;
  nb_ = std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(CK * Pc, 1), 1, std::max<int64_t>(max_batch_, 1));
  const int64_t ld = block_ld(wide_.Pcp * nb_);
  scratch_size_ = g_.T > 1 ? align_floats(CK * P) * 4 + align_floats(g_.K * P)
                           : cols_floats() * 2 + align_floats(g_.K * ld) + wide_.image * (implicit() ? nb_ : 1);
  // Implicit with whole panels of filters, at least two, and many taps: the weight
  // gradient is made transposed (see backward_blocks) and turned around after the partials
  // are summed. bench_conv: the CIFAR-sized net's c2 (64 filters, 288 taps) 22% faster
  // so; LeNet's c2 (16 filters) and the CIFAR net's c1 (27 taps) 5% slower, so they keep
  // the dot products.
  // With positions as rows the dot products in pieces would need rows of half panels: the
  // weight gradient is always transposed there.
  transposed_grad_ = plan_ == Plan::positions || (implicit() && g_.Kg % panel_of_kernels() == 0 &&
                                                  g_.Kg >= 2 * panel_of_kernels() && g_.Cg * g_.kvol() >= 64);
  if (transposed_grad_) w_t_ = AlignedBuffer(g_.K * g_.Cg * g_.kvol(), AlignedBuffer::Uninitialized{});
  if (plan_ == Plan::positions) w_fwd_ = AlignedBuffer(g_.K * g_.Cg * g_.kvol(), AlignedBuffer::Uninitialized{});
  const int64_t n = scratch_size_;
  scratch_ =
      tbb::enumerable_thread_specific<AlignedBuffer>([n] { return AlignedBuffer(n, AlignedBuffer::Uninitialized{}); });
  if (o_.relu && g_.T > 1) masked_ = AlignedBuffer(max_batch_ * g_.K * P, AlignedBuffer::Uninitialized{});
}

int64_t Conv::cols_floats() const {
  const int64_t CK = g_.C * g_.kvol(), ld = block_ld(wide_.Pcp * nb_);
  return align_floats((implicit() ? std::max(CK, g_.K) : CK) * ld);  // implicit: dy^T
}

const float* Conv::dense_weights() {
  const float* w = params_[0].w;
  if (!g_.table) return w;
  const int64_t kvol = g_.kvol(), C = g_.C, K = g_.K;
  float* d = w_dense_.data();
  for (int64_t t = 0; t < g_.T; ++t)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = g_.first_block[k]; j < g_.first_block[k + 1]; ++j) {
        const int64_t c = o_.connections[static_cast<size_t>(k)][static_cast<size_t>(j - g_.first_block[k])];
        std::memcpy(d + ((t * K + k) * C + c) * kvol, w + (t * g_.blocks + j) * kvol,
                    static_cast<size_t>(kvol) * sizeof(float));
      }
  return d;
}

namespace {
// dst[r][j] = src[r][order[j]] for rows r.
void gather_columns(const float* src, float* dst, int64_t rows, const std::vector<int64_t>& order) {
  const int64_t P = static_cast<int64_t>(order.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < P; ++j) dst[r * P + j] = src[r * P + order[static_cast<size_t>(j)]];
}
// dst[r][order[j]] = src[r][j].
void scatter_columns(const float* src, float* dst, int64_t rows, const std::vector<int64_t>& order) {
  const int64_t P = static_cast<int64_t>(order.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < P; ++j) dst[r * P + order[static_cast<size_t>(j)]] = src[r * P + j];
}
}  // namespace

// The wide layout (stride 1, zero padding, 1-D or 2-D): the input is copied once into a
// zero-padded image xp [C, Hp, Wp] (Hp, Wp: exactly what the windows cover, plus a little
// slack), and the column row of (channel c, tap kh, kw) is then the contiguous run of
// OH * Wp elements of xp starting at c*Hp*Wp + kh*dh*Wp + kw*dw: one copy per row
// instead of one per output row. The product computes Wp - OW extra "wide" positions per
// output row; forward drops them, and backward gives them a zero output gradient, so
// they add exact zeros to the weight and input gradients.
void Conv::pad_input(const float* xi, float* xp) const {
  const Window& w = g_.w;
  const int64_t H = w.in[1], Wd = w.in[2], cols = std::min(Wd, wide_.Wp - w.lo[2]);
  std::fill(xp, xp + wide_.image, 0.0f);
  for (int64_t c = 0; c < g_.C; ++c)
    for (int64_t h = 0; h < H && h + w.lo[1] < wide_.Hp; ++h)
      std::memcpy(xp + (c * wide_.Hp + h + w.lo[1]) * wide_.Wp + w.lo[2], xi + (c * H + h) * Wd,
                  static_cast<size_t>(std::max<int64_t>(cols, 0)) * sizeof(float));
}

void Conv::to_columns(const float* xi, float* xp, float* cols, int64_t ld) const {
  if (!wide()) return im2col(g_.w, g_.C, xi, cols, ld);
  pad_input(xi, xp);
  const Window& w = g_.w;
  const int64_t plane = wide_.Hp * wide_.Wp;
  int64_t row = 0;
  for (int64_t c = 0; c < g_.C; ++c)
    for (int64_t kh = 0; kh < w.k[1]; ++kh)
      for (int64_t kw = 0; kw < w.k[2]; ++kw, ++row)
        std::memcpy(cols + row * ld, xp + c * plane + kh * w.d[1] * wide_.Wp + kw * w.d[2],
                    static_cast<size_t>(wide_.Pc) * sizeof(float));
}

void Conv::from_columns(const float* dcols, int64_t ld, float* xp, float* dxi) const {
  if (!wide()) return col2im(g_.w, g_.C, dcols, dxi, ld);
  const Window& w = g_.w;
  const int64_t plane = wide_.Hp * wide_.Wp, Pc = wide_.Pc;
  std::fill(xp, xp + wide_.image, 0.0f);
  int64_t row = 0;
  for (int64_t c = 0; c < g_.C; ++c)
    for (int64_t kh = 0; kh < w.k[1]; ++kh)
      for (int64_t kw = 0; kw < w.k[2]; ++kw, ++row) {
        float* d = xp + c * plane + kh * w.d[1] * wide_.Wp + kw * w.d[2];
        const float* s = dcols + row * ld;
        if (compact())  // output rows OW apart in dcols, Wp apart in the image
          for (int64_t r = 0; r < w.out[1]; ++r)
            for (int64_t q = 0; q < w.out[2]; ++q) d[r * wide_.Wp + q] += s[r * w.out[2] + q];
        else
          for (int64_t q = 0; q < Pc; ++q) d[q] += s[q];
      }
  // Crop the padding off (elements the windows never cover get zero).
  const int64_t H = w.in[1], Wd = w.in[2];
  for (int64_t c = 0; c < g_.C; ++c)
    for (int64_t h = 0; h < H; ++h) {
      float* out = dxi + (c * H + h) * Wd;
      const int64_t ph = h + w.lo[1];
      for (int64_t x = 0; x < Wd; ++x) {
        const int64_t px = x + w.lo[2];
        out[x] = ph < wide_.Hp && px < wide_.Wp ? xp[(c * wide_.Hp + ph) * wide_.Wp + px] : 0.0f;
      }
    }
}

void Conv::forward_blocks(ConstTensorView x, TensorView y) {
  const Geometry& g = g_;
  const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
  const int64_t in_stride = g.C * g.w.in_vol(), OW = g.w.out[2], rows = P / OW, Wp = wide_.Wp;
  const float* W = dense_weights();
  const float* bias = o_.bias == BiasKind::none ? nullptr : params_[1].w;
  // One sample's y[K, P] from the product's result (src(k, q) at src[k * ks + q * qs]: y
  // itself, or y^T), with the bias and the activation. qs is a constant 1 for y itself, so
  // that loop stays contiguous.
  const auto finish_output = [&](const float* src, int64_t ks, auto qs, float* yi) {
    for (int64_t k = 0; k < K; ++k) {
      float* yk = yi + k * P;
      const float* sk = src + k * ks;
      const float* bl = o_.bias == BiasKind::location ? bias + k * P : nullptr;
      const float b = o_.bias == BiasKind::channel ? bias[k] : 0.0f;
      for (int64_t q = 0; q < P; ++q) {
        const float v = sk[q * qs] + (bl ? bl[q] : b);
        yk[q] = o_.relu && !(v > 0) ? 0.0f : v;
      }
    }
  };
  // Columns per sample in the block's matrices; implicit: rows of the column matrix read
  // in place from each sample's padded image.
  const bool implicit = this->implicit();
  const int64_t sc = wide_.Pcp, image = wide_.image;
  if (plan_ == Plan::positions)  // W^T of each group, [CgK, Kg], side by side: [CgK, K]
    for (int64_t k = 0; k < K; ++k)
      for (int64_t q = 0; q < CgK; ++q) w_fwd_.data()[q * K + k] = W[k * CgK + q];
  parallel_chunks(n, std::max(nb_, sample_grain(2 * g.blocks * g.kvol() * P)), [&](int64_t n0, int64_t n1) {
    float* cols = scratch_.local().data();
    const int64_t ld_max = block_ld(sc * nb_);
    float* yb = cols + 2 * cols_floats();
    float* xp = yb + align_floats(K * ld_max);
    for (int64_t b0 = n0; b0 < n1; b0 += nb_) {
      const int64_t nb = std::min(nb_, n1 - b0);
      // One sample in the plain layout: straight into y. Otherwise [K, ld], then each
      // sample's planes.
      const bool direct = nb == 1 && !wide();
      const int64_t L = direct ? P : block_ld(nb * sc);
      float* Y = direct ? y.data() + b0 * K * P : yb;
      if (plan_ == Plan::positions) {
        // Positions as rows: y^T[P, K] = cols^T W^T, row q of cols^T read at position q's
        // start in the padded image (pmap) through the tap offsets, one group's filters a
        // panel; then y with bias and activation.
        for (int64_t j = 0; j < nb; ++j) {
          pad_input(x.data() + (b0 + j) * in_stride, xp + j * image);
          for (int64_t gr = 0; gr < g.groups; ++gr)
            columns_t_times_weights_t(P, Kg, CgK, xp + j * image, wide_.pmap.data(), wide_.off.data() + gr * CgK,
                                      w_fwd_.data() + gr * Kg, K, yb + gr * Kg, K);
          finish_output(yb, 1, K, y.data() + (b0 + j) * K * P);
        }
        continue;
      }
      if (compact()) {
        // Output rows of whole panels: each panel's columns from its own image row, the
        // product straight into y (no wide positions), then bias and activation in place.
        for (int64_t j = 0; j < nb; ++j) {
          pad_input(x.data() + (b0 + j) * in_stride, xp + j * image);
          float* yi = y.data() + (b0 + j) * K * P;
          for (int64_t gr = 0; gr < g.groups; ++gr) {
            const ImageColumns columns{xp + j * image, wide_.off.data() + gr * CgK, OW, Wp};
            weights_times_columns(Kg, P, CgK, W + gr * Kg * CgK, CgK, columns, yi + gr * Kg * P, P);
          }
          finish_output(yi, P, std::integral_constant<int64_t, 1>{}, yi);
        }
        continue;
      }
      if (implicit) {
        for (int64_t j = 0; j < nb; ++j) pad_input(x.data() + (b0 + j) * in_stride, xp + j * image);
        for (int64_t gr = 0; gr < g.groups; ++gr)
          for (int64_t j = 0; j < nb; ++j)
            weights_times_columns(Kg, sc, CgK, W + gr * Kg * CgK, CgK, {xp + j * image, wide_.off.data() + gr * CgK},
                                  Y + gr * Kg * L + j * sc, L);
      } else {
        for (int64_t j = 0; j < nb; ++j) to_columns(x.data() + (b0 + j) * in_stride, xp, cols + j * sc, L);
        zero_columns(cols, CK, nb * sc, L);
        for (int64_t gr = 0; gr < g.groups; ++gr)
          gemm(false, false, Kg, L, CgK, 1.0f, W + gr * Kg * CgK, CgK, cols + gr * CgK * L, L, 0.0f, Y + gr * Kg * L,
               L);
      }
      for (int64_t j = 0; j < nb; ++j) {
        float* yi = y.data() + (b0 + j) * K * P;
        if (direct) {
          add_bias(o_.bias, bias, K, P, yi);
          if (o_.relu) apply_relu(yi, K * P);
          continue;
        }
        // The copy (dropping the wide positions), the bias and the activation in one pass.
        const bool relu = o_.relu;
        for (int64_t k = 0; k < K; ++k)
          for (int64_t r = 0; r < rows; ++r) {
            const float* src = yb + k * L + j * sc + r * (wide() ? Wp : OW);
            float* dst = yi + k * P + r * OW;
            if (o_.bias == BiasKind::location) {
              const float* b = bias + k * P + r * OW;
              for (int64_t q = 0; q < OW; ++q) dst[q] = src[q] + b[q];
            } else {
              const float b = bias ? bias[k] : 0.0f;
              for (int64_t q = 0; q < OW; ++q) dst[q] = src[q] + b;
            }
            if (relu)
              for (int64_t q = 0; q < OW; ++q) dst[q] = dst[q] > 0 ? dst[q] : 0.0f;
          }
      }
    }
  });
}

void Conv::backward_blocks(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx) {
  const Geometry& g = g_;
  const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
  const int64_t in_stride = g.C * g.w.in_vol(), OW = g.w.out[2], rows = P / OW, Wp = wide_.Wp;
  // Compact (output rows of whole panels): dy keeps its own layout, P columns per sample,
  // and the products skip the padding between output rows (see forward_blocks).
  const bool compact = this->compact();
  const int64_t Pc = compact ? P : wide_.Pc, row_stride = compact || !wide() ? OW : Wp;
  const float* W = dense_weights();
  const int64_t dense = K * CgK;
  const int64_t slots = max_partials(partial_size_, max_batch_);
  const int64_t chunk = backward_chunk(n, std::max(nb_, sample_grain(4 * g.blocks * g.kvol() * P)), slots);
  const int64_t chunks = (n + chunk - 1) / chunk;
  // Implicit (see forward_blocks): the weight gradient is a product with the column
  // matrix read in place. With whole panels of filters it is made transposed, dW^T = cols
  // dY^T (the nn kernel, A read in place, dy^T as B), otherwise as dW = dY cols^T by dot
  // products (the nt kernel); the input gradient is dcols = W^T dY, then col2im.
  const bool implicit = this->implicit(), transposed = transposed_grad_;
  const int64_t sc = compact ? P : wide_.Pcp, image = wide_.image;
  parallel_chunks(chunks, 1, [&](int64_t c0, int64_t c1) {
    float* cols = scratch_.local().data();
    const int64_t ld_max = block_ld(sc * nb_);
    float* dcols = cols + cols_floats();
    float* dyb = cols + 2 * cols_floats();
    float* xp = dyb + align_floats(K * ld_max);
    float* dyt = cols;  // transposed: dy^T of the block, [nb * sc, K]
    for (int64_t c = c0; c < c1; ++c) {
      float* dW = partials_.data() + c * partial_size_;
      float* db = dW + dense;
      const int64_t end = std::min(n, (c + 1) * chunk);
      for (int64_t b0 = c * chunk; b0 < end; b0 += nb_) {
        const int64_t nb = std::min(nb_, end - b0);
        const bool first = b0 == c * chunk, direct = nb == 1 && !wide() && !o_.relu;
        // The columns past nb * sc are zero in cols and dy (and, implicit, those past Pc
        // in each sample's dy): they add nothing.
        const int64_t L = direct ? P : block_ld(nb * sc);
        if (!implicit) zero_columns(cols, CK, nb * sc, L);
        if (!direct) zero_columns(dyb, K, nb * sc, L);
        for (int64_t j = 0; j < nb; ++j) {
          const int64_t i = b0 + j;
          if (implicit)
            pad_input(x.data() + i * in_stride, xp + j * image);
          else
            to_columns(x.data() + i * in_stride, xp, cols + j * sc, L);
          const float* dyi = dy.data() + i * K * P;
          if (direct) {
            bias_gradient(o_.bias, dyi, K, P, first && j == 0, db);
            continue;
          }
          // dy into the block's matrix; with the fused activation, dy where y > 0.
          const float* yi = y.data() + i * K * P;
          for (int64_t k = 0; k < K; ++k)
            for (int64_t r = 0; r < rows; ++r) {
              float* d = dyb + k * L + j * sc + r * row_stride;
              const float* src = dyi + k * P + r * OW;
              if (o_.relu) {
                const float* yr = yi + k * P + r * OW;
                for (int64_t q = 0; q < OW; ++q) {
                  const float v = src[q];  // read unconditionally: a select, not a masked load
                  d[q] = yr[q] > 0 ? v : 0.0f;
                }
              } else {
                for (int64_t q = 0; q < OW; ++q) d[q] = src[q];  // short rows: no call per row
              }
              if (row_stride > OW) std::fill(d + OW, d + row_stride, 0.0f);  // the wide positions
            }
          if (sc > Pc)
            for (int64_t k = 0; k < K; ++k) std::fill(dyb + k * L + j * sc + Pc, dyb + k * L + (j + 1) * sc, 0.0f);
          bias_gradient_rows(o_.bias, dyb + j * sc, L, rows, row_stride, OW, K, first && j == 0, db);
          if (transposed)  // dy^T in tiles of 8 positions: short rows read, a small block written
            for (int64_t q0 = 0; q0 < sc; q0 += 8) {
              float* t = dyt + (j * sc + q0) * K;
              const int64_t qn = std::min<int64_t>(8, sc - q0);  // positions may not be whole 8s
              for (int64_t k = 0; k < K; ++k) {
                const float* src = dyb + k * L + j * sc + q0;
                for (int64_t q = 0; q < qn; ++q) t[q * K + k] = src[q];
              }
            }
        }
        const float* D = direct ? dy.data() + b0 * K * P : dyb;
        for (int64_t gr = 0; gr < g.groups; ++gr) {
          if (transposed)  // [CgK, Kg] per group, accumulated sample by sample
            for (int64_t j = 0; j < nb; ++j)
              columns_times_grad_t(CgK, Kg, sc, xp + j * image, wide_.off.data() + gr * CgK,
                                   compact ? wide_.pmap.data() : nullptr, dyt + j * sc * K + gr * Kg, K,
                                   first && j == 0 ? 0.0f : 1.0f, dW + gr * Kg * CgK, Kg);
          else if (compact)  // per sample: one piece of each dot product per output row
            for (int64_t j = 0; j < nb; ++j)
              grad_times_columns_t(Kg, CgK, OW, D + gr * Kg * L + j * sc, L, xp + j * image,
                                   wide_.off.data() + gr * CgK, first && j == 0 ? 0.0f : 1.0f, dW + gr * Kg * CgK, CgK,
                                   rows, OW, Wp);
          else if (implicit)  // one dot product per weight over the block's samples, each in its image
            grad_times_columns_t(Kg, CgK, sc, D + gr * Kg * L, L, xp, wide_.off.data() + gr * CgK, first ? 0.0f : 1.0f,
                                 dW + gr * Kg * CgK, CgK, nb, sc, image);
          else
            gemm(false, true, Kg, CgK, L, 1.0f, D + gr * Kg * L, L, cols + gr * CgK * L, L, first ? 0.0f : 1.0f,
                 dW + gr * Kg * CgK, CgK);
        }
        if (dx.empty()) continue;
        for (int64_t gr = 0; gr < g.groups; ++gr) {
          if (implicit)
            kernel_gemm_nn(true, CgK, L, Kg, 1.0f, W + gr * Kg * CgK, CgK, D + gr * Kg * L, L, 0.0f,
                           dcols + gr * CgK * L, L);
          else
            gemm(true, false, CgK, L, Kg, 1.0f, W + gr * Kg * CgK, CgK, D + gr * Kg * L, L, 0.0f, dcols + gr * CgK * L,
                 L);
        }
        for (int64_t j = 0; j < nb; ++j) from_columns(dcols + j * sc, L, xp, dx.data() + (b0 + j) * in_stride);
      }
    }
  });
  const int64_t bias_size = o_.bias == BiasKind::none ? 0 : o_.bias == BiasKind::channel ? K : K * P;
  float* dw_dense = g.table ? partials_.data() : params_[0].dw;
  if (transposed) {
    float* t = w_t_.data();
    reduce_partials(partials_.data(), chunks, partial_size_, dense, t);
    for (int64_t gr = 0; gr < g.groups; ++gr)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t q = 0; q < CgK; ++q) dw_dense[(gr * Kg + k) * CgK + q] = t[(gr * CgK + q) * Kg + k];
  } else {
    reduce_partials(partials_.data(), chunks, partial_size_, dense, dw_dense);
  }
  if (bias_size) reduce_partials(partials_.data() + dense, chunks, partial_size_, bias_size, params_[1].dw);
  if (g.table) scatter_table_gradient(dw_dense);
}

void Conv::forward(ConstTensorView x, TensorView y, const StepContext&) {
  if (!o_.reference && g_.T == 1) return forward_blocks(x, y);  // the activation fused
  if (o_.reference)
    forward_reference(x, y);
  else
    forward_tiled(x, y);
  if (o_.relu) apply_relu(y.data(), y.numel());
}

void Conv::backward(ConstTensorView x, ConstTensorView y, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (!o_.reference && g_.T == 1) return backward_blocks(x, y, dy, dx);  // the activation fused
  ConstTensorView d = dy;
  if (o_.relu) {  // dy where y > 0
    float* m = masked_.data();
    const float *yp = y.data(), *dp = dy.data();
    parallel_chunks(dy.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float v = dp[i];
        m[i] = yp[i] > 0 ? v : 0.0f;
      }
    });
    d = ConstTensorView(m, dy.shape());
  }
  if (o_.reference)
    backward_reference(x, d, dx);
  else
    backward_tiled(x, d, dx);
}

void Conv::forward_tiled(ConstTensorView x, TensorView y) {
  const Geometry& g = g_;
  const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
  const int64_t in_stride = g.C * g.w.in_vol();
  const bool pointwise = g.w.is_pointwise(), tiled = g.T > 1;
  const float* W = dense_weights();
  const float* bias = o_.bias == BiasKind::none ? nullptr : params_[1].w;
  parallel_chunks(n, sample_grain(2 * g.blocks * g.kvol() * P), [&](int64_t n0, int64_t n1) {
    float* cols = scratch_.local().data();
    float* cols_t = tiled ? cols + 2 * align_floats(CK * P) : nullptr;
    float* y_t = tiled ? cols + 4 * align_floats(CK * P) : nullptr;
    for (int64_t i = n0; i < n1; ++i) {
      const float* xi = x.data() + i * in_stride;
      float* yi = y.data() + i * K * P;
      const float* c = xi;
      if (!pointwise) {
        im2col(g.w, g.C, xi, cols);
        c = cols;
      }
      if (tiled) gather_columns(c, cols_t, CK, order_);
      const float* B = tiled ? cols_t : c;
      float* Y = tiled ? y_t : yi;
      for (int64_t t = 0; t < g.T; ++t) {
        const int64_t p0 = tile_begin_[t], pn = tile_begin_[t + 1] - p0;
        for (int64_t gr = 0; gr < g.groups; ++gr)
          gemm(false, false, Kg, pn, CgK, 1.0f, W + (t * K + gr * Kg) * CgK, CgK, B + gr * CgK * P + p0, P, 0.0f,
               Y + gr * Kg * P + p0, P);
      }
      if (tiled) scatter_columns(y_t, yi, K, order_);
      add_bias(o_.bias, bias, K, P, yi);
    }
  });
}

void Conv::backward_tiled(ConstTensorView x, ConstTensorView dy, TensorView dx) {
  const Geometry& g = g_;
  const int64_t n = x.batch(), P = g.P(), CK = g.C * g.kvol(), CgK = g.Cg * g.kvol(), K = g.K, Kg = g.Kg;
  const int64_t in_stride = g.C * g.w.in_vol();
  const bool pointwise = g.w.is_pointwise(), tiled = g.T > 1;
  const float* W = dense_weights();
  const int64_t dense = g.T * K * CgK;
  const int64_t slots = max_partials(partial_size_, max_batch_);
  const int64_t chunk = backward_chunk(n, sample_grain(4 * g.blocks * g.kvol() * P), slots);
  const int64_t chunks = (n + chunk - 1) / chunk;
  parallel_chunks(chunks, 1, [&](int64_t c0, int64_t c1) {
    float* cols = scratch_.local().data();
    float* dcols = cols + align_floats(CK * P);
    float* cols_t = tiled ? cols + 2 * align_floats(CK * P) : nullptr;
    float* dcols_t = tiled ? cols + 3 * align_floats(CK * P) : nullptr;
    float* dy_t = tiled ? cols + 4 * align_floats(CK * P) : nullptr;
    for (int64_t c = c0; c < c1; ++c) {
      float* dW = partials_.data() + c * partial_size_;
      float* db = dW + dense;
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        const bool first = i == c * chunk;
        const float* xi = x.data() + i * in_stride;
        const float* dyi = dy.data() + i * K * P;
        const float* cx = xi;
        if (!pointwise) {
          im2col(g.w, g.C, xi, cols);
          cx = cols;
        }
        if (tiled) {
          gather_columns(cx, cols_t, CK, order_);
          gather_columns(dyi, dy_t, K, order_);
        }
        const float* B = tiled ? cols_t : cx;
        const float* D = tiled ? dy_t : dyi;
        for (int64_t t = 0; t < g.T; ++t) {
          const int64_t p0 = tile_begin_[t], pn = tile_begin_[t + 1] - p0;
          for (int64_t gr = 0; gr < g.groups; ++gr)
            gemm(false, true, Kg, CgK, pn, 1.0f, D + gr * Kg * P + p0, P, B + gr * CgK * P + p0, P, first ? 0.0f : 1.0f,
                 dW + (t * K + gr * Kg) * CgK, CgK);
        }
        bias_gradient(o_.bias, dyi, K, P, first, db);
        if (dx.empty()) continue;
        float* dxi = dx.data() + i * in_stride;
        float* target = tiled ? dcols_t : pointwise ? dxi : dcols;
        for (int64_t t = 0; t < g.T; ++t) {
          const int64_t p0 = tile_begin_[t], pn = tile_begin_[t + 1] - p0;
          for (int64_t gr = 0; gr < g.groups; ++gr)
            gemm(true, false, CgK, pn, Kg, 1.0f, W + (t * K + gr * Kg) * CgK, CgK, D + gr * Kg * P + p0, P, 0.0f,
                 target + gr * CgK * P + p0, P);
        }
        if (tiled) scatter_columns(dcols_t, pointwise ? dxi : dcols, CK, order_);
        if (!pointwise) col2im(g.w, g.C, dcols, dxi);
      }
    }
  });
  // Chunk partials, added in chunk order.
  const int64_t bias_size = o_.bias == BiasKind::none ? 0 : o_.bias == BiasKind::channel ? K : K * P;
  float* dw_dense = g.table ? partials_.data() : params_[0].dw;
  reduce_partials(partials_.data(), chunks, partial_size_, dense, dw_dense);
  if (bias_size) reduce_partials(partials_.data() + dense, chunks, partial_size_, bias_size, params_[1].dw);
  if (g.table) scatter_table_gradient(dw_dense);
}

void Conv::scatter_table_gradient(const float* dw_dense) {
  const Geometry& g = g_;
  const int64_t kvol = g.kvol(), K = g.K;
  float* dw = params_[0].dw;
  for (int64_t t = 0; t < g.T; ++t)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = g.first_block[k]; j < g.first_block[k + 1]; ++j) {
        const int64_t ch = o_.connections[static_cast<size_t>(k)][static_cast<size_t>(j - g.first_block[k])];
        std::memcpy(dw + (t * g.blocks + j) * kvol, dw_dense + ((t * K + k) * g.C + ch) * kvol,
                    static_cast<size_t>(kvol) * sizeof(float));
      }
}

// The reference path: the definition, loop by loop, with the weight of each
// (filter, input channel) pair looked up through the connectivity.
namespace {
template <class F>
void for_each_input(const Conv::Geometry& g, const std::vector<std::vector<int64_t>>& table, int64_t k, F&& f) {
  if (g.table) {
    for (int64_t j = g.first_block[k]; j < g.first_block[k + 1]; ++j)
      f(table[static_cast<size_t>(k)][static_cast<size_t>(j - g.first_block[k])], j);
  } else {
    const int64_t gr = k / g.Kg;
    for (int64_t cl = 0; cl < g.Cg; ++cl) f(gr * g.Cg + cl, k * g.Cg + cl);
  }
}

}  // namespace

void Conv::forward_reference(ConstTensorView x, TensorView y) const {
  const Geometry& g = g_;
  const int64_t P = g.P(), kvol = g.kvol(), iv = g.w.in_vol();
  const float* W = params_[0].w;
  const float* bias = o_.bias == BiasKind::none ? nullptr : params_[1].w;
  parallel_chunks(x.batch(), 1, [&](int64_t n0, int64_t n1) {
    for (int64_t i = n0; i < n1; ++i)
      for (int64_t k = 0; k < g.K; ++k) {
        int64_t p = 0;
        for (int64_t od = 0; od < g.w.out[0]; ++od)
          for (int64_t oh = 0; oh < g.w.out[1]; ++oh)
            for (int64_t ow = 0; ow < g.w.out[2]; ++ow, ++p) {
              const int64_t t = g.tile_of(od, oh, ow);
              double acc = !bias ? 0.0 : o_.bias == BiasKind::channel ? bias[k] : bias[k * P + p];
              for_each_input(g, o_.connections, k, [&](int64_t c, int64_t blk) {
                const float* wb = W + (t * g.blocks + blk) * kvol;
                const float* xc = x.data() + (i * g.C + c) * iv;
                for_each_tap(g.w, od, oh, ow,
                             [&](int64_t kk, int64_t q) { acc += static_cast<double>(wb[kk]) * xc[q]; });
              });
              y.data()[(i * g.K + k) * P + p] = static_cast<float>(acc);
            }
      }
  });
}

void Conv::backward_reference(ConstTensorView x, ConstTensorView dy, TensorView dx) const {
  const Geometry& g = g_;
  const int64_t P = g.P(), kvol = g.kvol(), iv = g.w.in_vol();
  const float* W = params_[0].w;
  float* dW = params_[0].dw;
  float* db = o_.bias == BiasKind::none ? nullptr : params_[1].dw;
  std::fill(dW, dW + params_[0].numel(), 0.0f);
  if (db) std::fill(db, db + params_[1].numel(), 0.0f);
  if (!dx.empty()) std::fill(dx.data(), dx.data() + dx.numel(), 0.0f);
  for (int64_t i = 0; i < x.batch(); ++i)
    for (int64_t k = 0; k < g.K; ++k) {
      int64_t p = 0;
      for (int64_t od = 0; od < g.w.out[0]; ++od)
        for (int64_t oh = 0; oh < g.w.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.w.out[2]; ++ow, ++p) {
            const int64_t t = g.tile_of(od, oh, ow);
            const float d = dy.data()[(i * g.K + k) * P + p];
            if (db) db[o_.bias == BiasKind::channel ? k : k * P + p] += d;
            for_each_input(g, o_.connections, k, [&](int64_t c, int64_t blk) {
              const int64_t wo = (t * g.blocks + blk) * kvol;
              const float* xc = x.data() + (i * g.C + c) * iv;
              float* dxc = dx.empty() ? nullptr : dx.data() + (i * g.C + c) * iv;
              for_each_tap(g.w, od, oh, ow, [&](int64_t kk, int64_t q) {
                dW[wo + kk] += d * xc[q];
                if (dxc) dxc[q] += d * W[wo + kk];
              });
            });
          }
    }
}

// ---------------------------------------------------------------------------------------
// ConvTranspose

ConvTranspose::ConvTranspose(Options o) : o_(std::move(o)) {}

std::unique_ptr<Layer> ConvTranspose::from_config(const Config& c, int rank) {
  Options o;
  o.window = WindowOptions::parse(c, rank, false);
  o.filters = c.get<int64_t>("filters");
  if (o.filters <= 0) c.at("filters").fail(cat("filters must be positive; got ", o.filters));
  if (auto p = c.find("output_padding")) o.output_padding = parse_dims(*p, rank, "output_padding", 0);
  o.groups = c.get<int64_t>("groups", 1);
  if (o.groups <= 0) c.at("groups").fail(cat("groups must be positive; got ", o.groups));
  o.bias = parse_bias(c, true);
  if (auto i = c.find("init")) o.w_init = Init::parse(*i);
  if (auto i = c.find("bias_init")) o.b_init = Init::parse(*i);
  o.reference = reference_impl(c);
  return std::make_unique<ConvTranspose>(std::move(o));
}

std::string ConvTranspose::type() const { return "conv_transpose" + rank_suffix(o_.window.rank); }

std::string ConvTranspose::describe() const {
  std::string s = cat(o_.filters, " filters ", o_.window.describe());
  if (!o_.output_padding.empty()) {
    s += ", output padding ";
    for (size_t i = 0; i < o_.output_padding.size(); ++i) s += cat(i ? "," : "", o_.output_padding[i]);
  }
  if (o_.groups > 1) s += cat(", ", o_.groups, " groups");
  s += bias_name(o_.bias);
  if (o_.reference) s += ", reference kernel";
  return s;
}

Window ConvTranspose::window(const Shape& x) const {
  if (x.rank() < 2 || x.rank() > 4) shape_error(cat("expects [C, W], [C, H, W] or [C, D, H, W]; got ", x.str()));
  if (x[0] % o_.groups) shape_error(cat(o_.groups, " groups do not divide the ", x[0], " input channels"));
  if (o_.filters % o_.groups) shape_error(cat(o_.groups, " groups do not divide the ", o_.filters, " filters"));
  const auto spatial = spatial_of(x);
  return resolve_transposed_window(o_.window, spatial, o_.output_padding,
                                   [this](const std::string& m) { shape_error(m); });
}

Shape ConvTranspose::output_shape(const Shape& x) const { return window(x).in_shape(o_.filters); }

std::vector<ParamSpec> ConvTranspose::param_specs(const Shape& x) const {
  const Window w = window(x);
  const int64_t Cg = x[0] / o_.groups, Kg = o_.filters / o_.groups, kvol = w.k_vol();
  std::array<int64_t, 5> d{x[0], Kg, 0, 0, 0};
  for (int i = 0; i < w.rank; ++i) d[2 + i] = w.k[3 - w.rank + i];
  Shape ws(std::span<const int64_t>(d.data(), static_cast<size_t>(2 + w.rank)));
  std::vector<ParamSpec> p{{"w", ws, o_.w_init, Cg * kvol, Kg * kvol, true}};
  if (o_.bias == BiasKind::channel) p.push_back({"b", {o_.filters}, o_.b_init, Cg * kvol, Kg * kvol, false});
  if (o_.bias == BiasKind::location) p.push_back({"b", w.in_shape(o_.filters), o_.b_init, Cg * kvol, Kg * kvol, false});
  return p;
}

int64_t ConvTranspose::flops(std::span<const Shape> x, const Shape& y) const {
  const Window w = window(x[0]);
  return 2 * x[0][0] * (o_.filters / o_.groups) * w.k_vol() * w.out_vol() + (o_.bias == BiasKind::none ? 0 : y.numel());
}

void ConvTranspose::bind(const Binding& b) {
  UnaryLayer::bind(b);
  w_ = window(b.x[0]);
  C_ = b.x[0][0];
  K_ = o_.filters;
  Cg_ = C_ / o_.groups;
  Kg_ = K_ / o_.groups;
  if (o_.reference) return;
  const int64_t bias = o_.bias == BiasKind::none ? 0 : o_.bias == BiasKind::channel ? K_ : K_ * w_.in_vol();
  partial_size_ = align_floats(params_[0].numel() + bias);
  partials_ = AlignedBuffer(max_partials(partial_size_, b.max_batch) * partial_size_);
  scratch_size_ = align_floats(K_ * w_.k_vol() * w_.out_vol());
  const int64_t n = scratch_size_;
  scratch_ =
      tbb::enumerable_thread_specific<AlignedBuffer>([n] { return AlignedBuffer(n, AlignedBuffer::Uninitialized{}); });
}

void ConvTranspose::forward(ConstTensorView x, TensorView y, const StepContext&) {
  if (o_.reference) return forward_reference(x, y);
  const int64_t n = x.batch(), P = w_.out_vol(), IV = w_.in_vol(), KgK = Kg_ * w_.k_vol();
  const bool pointwise = w_.is_pointwise();
  const float* W = params_[0].w;
  const float* bias = o_.bias == BiasKind::none ? nullptr : params_[1].w;
  parallel_chunks(n, sample_grain(2 * C_ * KgK * P), [&](int64_t n0, int64_t n1) {
    float* cols = scratch_.local().data();
    for (int64_t i = n0; i < n1; ++i) {
      const float* xi = x.data() + i * C_ * P;
      float* yi = y.data() + i * K_ * IV;
      float* target = pointwise ? yi : cols;
      // cols_g = W_g^T x_g: W_g is [Cg, Kg * kvol].
      for (int64_t gr = 0; gr < o_.groups; ++gr)
        gemm(true, false, KgK, P, Cg_, 1.0f, W + gr * Cg_ * KgK, KgK, xi + gr * Cg_ * P, P, 0.0f, target + gr * KgK * P,
             P);
      if (!pointwise) col2im(w_, K_, cols, yi);
      add_bias(o_.bias, bias, K_, IV, yi);
    }
  });
}

void ConvTranspose::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx,
                             const StepContext&) {
  if (o_.reference) return backward_reference(x, dy, dx);
  const int64_t n = x.batch(), P = w_.out_vol(), IV = w_.in_vol(), KgK = Kg_ * w_.k_vol();
  const bool pointwise = w_.is_pointwise();
  const float* W = params_[0].w;
  const int64_t wsize = params_[0].numel();
  const int64_t slots = max_partials(partial_size_, partials_.size() / partial_size_);
  const int64_t chunk = backward_chunk(n, sample_grain(4 * C_ * KgK * P), slots);
  const int64_t chunks = (n + chunk - 1) / chunk;
  parallel_chunks(chunks, 1, [&](int64_t c0, int64_t c1) {
    float* cols = scratch_.local().data();
    for (int64_t c = c0; c < c1; ++c) {
      float* dW = partials_.data() + c * partial_size_;
      float* db = dW + wsize;
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        const bool first = i == c * chunk;
        const float* xi = x.data() + i * C_ * P;
        const float* dyi = dy.data() + i * K_ * IV;
        const float* dc = dyi;
        if (!pointwise) {
          im2col(w_, K_, dyi, cols);
          dc = cols;
        }
        for (int64_t gr = 0; gr < o_.groups; ++gr) {
          // dW_g += x_g dcols_g^T; dx_g = W_g dcols_g.
          gemm(false, true, Cg_, KgK, P, 1.0f, xi + gr * Cg_ * P, P, dc + gr * KgK * P, P, first ? 0.0f : 1.0f,
               dW + gr * Cg_ * KgK, KgK);
          if (!dx.empty())
            gemm(false, false, Cg_, P, KgK, 1.0f, W + gr * Cg_ * KgK, KgK, dc + gr * KgK * P, P, 0.0f,
                 dx.data() + i * C_ * P + gr * Cg_ * P, P);
        }
        bias_gradient(o_.bias, dyi, K_, IV, first, db);
      }
    }
  });
  reduce_partials(partials_.data(), chunks, partial_size_, wsize, params_[0].dw);
  if (o_.bias != BiasKind::none)
    reduce_partials(partials_.data() + wsize, chunks, partial_size_, params_[1].numel(), params_[1].dw);
}

void ConvTranspose::forward_reference(ConstTensorView x, TensorView y) const {
  const int64_t P = w_.out_vol(), IV = w_.in_vol(), kvol = w_.k_vol();
  const float* W = params_[0].w;
  const float* bias = o_.bias == BiasKind::none ? nullptr : params_[1].w;
  parallel_chunks(x.batch(), 1, [&](int64_t n0, int64_t n1) {
    for (int64_t i = n0; i < n1; ++i) {
      float* yi = y.data() + i * K_ * IV;
      for (int64_t q = 0; q < K_ * IV; ++q)
        yi[q] = !bias ? 0.0f : o_.bias == BiasKind::channel ? bias[q / IV] : bias[q];
      for (int64_t c = 0; c < C_; ++c) {
        const int64_t gr = c / Cg_;
        int64_t p = 0;
        for (int64_t od = 0; od < w_.out[0]; ++od)
          for (int64_t oh = 0; oh < w_.out[1]; ++oh)
            for (int64_t ow = 0; ow < w_.out[2]; ++ow, ++p) {
              const float v = x.data()[(i * C_ + c) * P + p];
              for (int64_t kl = 0; kl < Kg_; ++kl) {
                const int64_t k = gr * Kg_ + kl;
                const float* wb = W + (c * Kg_ + kl) * kvol;
                for_each_tap(w_, od, oh, ow, [&](int64_t kk, int64_t q) { yi[k * IV + q] += v * wb[kk]; });
              }
            }
      }
    }
  });
}

void ConvTranspose::backward_reference(ConstTensorView x, ConstTensorView dy, TensorView dx) const {
  const int64_t P = w_.out_vol(), IV = w_.in_vol(), kvol = w_.k_vol();
  const float* W = params_[0].w;
  float* dW = params_[0].dw;
  float* db = o_.bias == BiasKind::none ? nullptr : params_[1].dw;
  std::fill(dW, dW + params_[0].numel(), 0.0f);
  if (db) std::fill(db, db + params_[1].numel(), 0.0f);
  for (int64_t i = 0; i < x.batch(); ++i) {
    const float* dyi = dy.data() + i * K_ * IV;
    if (db)
      for (int64_t q = 0; q < K_ * IV; ++q) db[o_.bias == BiasKind::channel ? q / IV : q] += dyi[q];
    for (int64_t c = 0; c < C_; ++c) {
      const int64_t gr = c / Cg_;
      int64_t p = 0;
      for (int64_t od = 0; od < w_.out[0]; ++od)
        for (int64_t oh = 0; oh < w_.out[1]; ++oh)
          for (int64_t ow = 0; ow < w_.out[2]; ++ow, ++p) {
            const float v = x.data()[(i * C_ + c) * P + p];
            double g = 0;
            for (int64_t kl = 0; kl < Kg_; ++kl) {
              const int64_t k = gr * Kg_ + kl;
              const int64_t wo = (c * Kg_ + kl) * kvol;
              for_each_tap(w_, od, oh, ow, [&](int64_t kk, int64_t q) {
                g += static_cast<double>(dyi[k * IV + q]) * W[wo + kk];
                dW[wo + kk] += v * dyi[k * IV + q];
              });
            }
            if (!dx.empty()) dx.data()[(i * C_ + c) * P + p] = static_cast<float>(g);
          }
    }
  }
}

// ---------------------------------------------------------------------------------------
// True convolution

Tensor convolve(ConstTensorView f, ConstTensorView g, ConvolveMode mode) {
  const int r = f.shape().rank();
  if (r < 1 || r > 3 || g.shape().rank() != r)
    throw ShapeError(
        cat("convolve: f and g need the same rank, 1 to 3; got ", f.shape().str(), " and ", g.shape().str()));
  Dims3 m{1, 1, 1}, k{1, 1, 1};
  for (int i = 0; i < r; ++i) {
    m[3 - r + i] = f.shape()[i];
    k[3 - r + i] = g.shape()[i];
  }
  const float* fp = f.data();
  const float* gp = g.data();
  if (mode == ConvolveMode::valid) {
    bool f_larger = true, g_larger = true;
    for (int t = 0; t < 3; ++t) {
      f_larger = f_larger && m[t] >= k[t];
      g_larger = g_larger && k[t] >= m[t];
    }
    if (!f_larger && !g_larger)
      throw ShapeError(
          cat("convolve: in valid mode one input must be at least as large as the other in every "
              "dimension; got ",
              f.shape().str(), " and ", g.shape().str()));
    if (!f_larger) {  // convolution commutes, as numpy and scipy use
      std::swap(m, k);
      std::swap(fp, gp);
    }
  }
  Dims3 out{}, start{};
  for (int t = 0; t < 3; ++t) {
    switch (mode) {
      case ConvolveMode::full:
        out[t] = m[t] + k[t] - 1, start[t] = 0;
        break;
      case ConvolveMode::same:
        out[t] = m[t], start[t] = (k[t] - 1) / 2;
        break;
      case ConvolveMode::valid:
        out[t] = m[t] - k[t] + 1, start[t] = k[t] - 1;
        break;
    }
  }
  std::array<int64_t, 3> dims{};
  for (int i = 0; i < r; ++i) dims[i] = out[3 - r + i];
  Tensor y(Shape(std::span<const int64_t>(dims.data(), static_cast<size_t>(r))));
  int64_t o = 0;
  // y[j] = sum_i f[i] g[j - i], j in full coordinates.
  for (int64_t a = 0; a < out[0]; ++a)
    for (int64_t b = 0; b < out[1]; ++b)
      for (int64_t c = 0; c < out[2]; ++c, ++o) {
        const int64_t j0 = a + start[0], j1 = b + start[1], j2 = c + start[2];
        double s = 0;
        for (int64_t i0 = std::max<int64_t>(0, j0 - k[0] + 1); i0 <= std::min(j0, m[0] - 1); ++i0)
          for (int64_t i1 = std::max<int64_t>(0, j1 - k[1] + 1); i1 <= std::min(j1, m[1] - 1); ++i1)
            for (int64_t i2 = std::max<int64_t>(0, j2 - k[2] + 1); i2 <= std::min(j2, m[2] - 1); ++i2)
              s += static_cast<double>(fp[(i0 * m[1] + i1) * m[2] + i2]) *
                   gp[((j0 - i0) * k[1] + (j1 - i1)) * k[2] + (j2 - i2)];
        y[o] = static_cast<float>(s);
      }
  return y;
}

}  // namespace hubel::layers
