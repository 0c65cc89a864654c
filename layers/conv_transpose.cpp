// The transposed convolution (the multiplication by the transposed convolution matrix,
// PyTorch's ConvTranspose) and the true convolution of signal processing (`convolve`).
#include <algorithm>
#include <array>

#include "framework/config.hpp"
#include "framework/parallel.hpp"
#include "layers/conv.hpp"
#include "layers/conv_algorithm.hpp"
#include "layers/gemm.hpp"

namespace hubel::layers {

using namespace conv_detail;

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
  if (!b.inference) partials_ = AlignedBuffer(max_partials(partial_size_, b.max_batch) * partial_size_);
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
                             const StepContext& ctx) {
  if (o_.reference) return backward_reference(x, dy, dx);
  const int64_t n = x.batch(), P = w_.out_vol(), IV = w_.in_vol(), KgK = Kg_ * w_.k_vol();
  const bool pointwise = w_.is_pointwise();
  const float* W = params_[0].w;
  const int64_t wsize = params_[0].numel();
  int64_t slots = partials_.size() / partial_size_;
  const ChunkPlan plan = chunks_for(ctx, n, std::max(sample_grain(4 * C_ * KgK * P), (n + slots - 1) / slots));
  if (plan.count > slots) {  // an exact run's chunks: more partials, allocated once
    slots = plan.count;
    partials_ = AlignedBuffer(slots * partial_size_);
  }
  const int64_t chunk = plan.size, chunks = plan.count;
  parallel_chunks(chunks, 1, [&](int64_t c0, int64_t c1) {
    float* cols = scratch_.local().data();
    for (int64_t c = c0; c < c1; ++c) {
      float* dW = partials_.data() + c * partial_size_;
      float* db = dW + wsize;
      if (c * chunk >= n) {  // an exact run's chunk past this rank's rows
        std::fill(dW, dW + partial_size_, 0.0f);
        continue;
      }
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
  tree_sum(partials_.data(), chunks, partial_size_, wsize, params_[0].dw);
  if (o_.bias != BiasKind::none)
    tree_sum(partials_.data() + wsize, chunks, partial_size_, params_[1].numel(), params_[1].dw);
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

void ConvTranspose::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>,
                            const std::string& y) const {
  if (w_.value != PadValue::zero) onnx_refuse("ConvTranspose pads with zeros only");
  std::vector<int64_t> wd{C_, Kg_}, kernel, strides, dilations, pads, hi, output_padding;
  for (int i = 3 - w_.rank; i < 3; ++i) {
    wd.push_back(w_.k[i]);
    kernel.push_back(w_.k[i]);
    strides.push_back(w_.s[i]);
    dilations.push_back(w_.d[i]);
    // Output position o = i*s + k*d - lo: ONNX's pads[begin] is lo; the end is cropped
    // (pads[end]) or extended (output_padding) to the output's size (w_.hi is the
    // equivalent forward convolution's padding, not a crop).
    pads.push_back(w_.lo[i]);
    const int64_t more = w_.in[i] - ((w_.out[i] - 1) * w_.s[i] + w_.d[i] * (w_.k[i] - 1) + 1 - w_.lo[i]);
    hi.push_back(std::max<int64_t>(0, -more));
    output_padding.push_back(std::max<int64_t>(0, more));
  }
  pads.insert(pads.end(), hi.begin(), hi.end());
  std::vector<std::string> in{x[0],
                              g.constant(name() + "_w", wd, std::span<const float>(params_[0].w, params_[0].numel()))};
  if (o_.bias == BiasKind::channel)
    in.push_back(g.constant(name() + "_b", {K_}, std::span<const float>(params_[1].w, K_)));
  const std::string out = o_.bias == BiasKind::location ? g.fresh(name() + "_conv") : y;
  g.node("ConvTranspose", in, {out},
         {onnx::attr("kernel_shape", kernel), onnx::attr("strides", strides), onnx::attr("dilations", dilations),
          onnx::attr("pads", pads), onnx::attr("output_padding", output_padding), onnx::attr("group", o_.groups)});
  if (o_.bias == BiasKind::location)
    g.node("Add",
           {out, g.constant(name() + "_b", onnx::dims(params_[1].shape),
                            std::span<const float>(params_[1].w, params_[1].numel()))},
           {y});
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
