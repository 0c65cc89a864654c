// Add and concat.
#include "layers/joins.hpp"

#include <cstring>

#include "framework/config.hpp"
#include "framework/parallel.hpp"
#include "layers/conv.hpp"

namespace hubel::layers {

Add::Add(Project p) : project_(p) {}
Add::~Add() = default;

std::unique_ptr<Layer> Add::from_config(const Config& c) {
  const std::string p = c.choice("project", {"never", "auto", "always"}, "never");
  return std::make_unique<Add>(p == "auto" ? Project::auto_ : p == "always" ? Project::always : Project::never);
}

std::string Add::describe() const {
  return project_ == Project::never ? "" : project_ == Project::auto_ ? "project: auto" : "project: always";
}

bool Add::projects(std::span<const Shape> x) const {
  return x.size() == 2 && (project_ == Project::always || (project_ == Project::auto_ && x[0] != x[1]));
}

std::unique_ptr<Conv> Add::projection(std::span<const Shape> x) const {
  const Shape& main = x[0];
  const Shape& cut = x[1];
  if (main.rank() < 2 || main.rank() != cut.rank())
    shape_error(cat("the projection of the shortcut (input 1, ", cut.str(), ") to input 0 (", main.str(),
                    ") needs two inputs [channels, spatial...] of the same rank"));
  Conv::Options o;
  o.filters = main[0];
  o.bias = BiasKind::none;
  o.window.rank = main.rank() - 1;
  o.window.kernel.assign(static_cast<size_t>(main.rank() - 1), 1);
  o.window.stride.clear();
  for (int d = 1; d < main.rank(); ++d) {
    const int64_t s = (cut[d] + main[d] - 1) / main[d];  // ceil
    if (main[d] > cut[d] || (cut[d] - 1) / s + 1 != main[d])
      shape_error(cat("cannot project the shortcut ", cut.str(), " to ", main.str(), ": spatial size ", cut[d], " does not reduce to ",
                      main[d], " by an integer stride"));
    o.window.stride.push_back(s);
  }
  o.window.stride_given = true;
  o.window.rounding = Rounding::floor;
  auto conv = std::make_unique<Conv>(std::move(o));
  conv->set_name(name() + ".proj");
  return conv;
}

Shape Add::output_shape(std::span<const Shape> x) const {
  if (x.size() < 2) shape_error(cat("adds two or more inputs; got ", x.size(), " (name them with 'inputs: [a, b]')"));
  if (project_ != Project::never && x.size() != 2)
    shape_error(cat("a projected shortcut needs exactly two inputs [main, shortcut]; got ", x.size()));
  if (projects(x)) {
    const Shape y = projection(x)->output_shape(x[1]);
    if (y != x[0]) shape_error(cat("the projected shortcut has shape ", y.str(), ", not ", x[0].str()));
    return x[0];
  }
  for (size_t i = 1; i < x.size(); ++i)
    if (x[i] != x[0])
      shape_error(cat("inputs must have equal shapes; input 0 is ", x[0].str(), ", input ", i, " is ", x[i].str(),
                      project_ == Project::never && x.size() == 2 ? " (project: auto adds a 1x1 convolution on the shortcut)" : ""));
  return x[0];
}

std::vector<ParamSpec> Add::param_specs(std::span<const Shape> x) const {
  if (!projects(x)) return {};
  auto specs = projection(x)->param_specs(x[1]);
  for (auto& s : specs) s.name = "proj_" + s.name;
  return specs;
}

int64_t Add::flops(std::span<const Shape> x, const Shape& y) const {
  const int64_t adds = y.numel() * static_cast<int64_t>(x.size() - 1);
  return projects(x) ? adds + projection(x)->flops(x.subspan(1, 1), y) : adds;
}

void Add::bind(const Binding& b) {
  Layer::bind(b);
  if (!projects(b.x)) return;
  proj_ = projection(b.x);
  proj_->bind(Binding{b.x.subspan(1, 1), b.y, b.max_batch, b.params});
  proj_y_ = Tensor(b.y.with_batch(b.max_batch));
}

void Add::forward(std::span<const ConstTensorView> x, TensorView y, const StepContext& ctx) {
  ConstTensorView second = x.size() > 1 ? x[1] : ConstTensorView();
  if (proj_) {
    TensorView p(proj_y_.data(), y.shape());
    proj_->forward(x[1], p, ctx);
    second = p;
  }
  float* yp = y.data();
  parallel_chunks(y.numel(), 16384, [&](int64_t b, int64_t e) {
    const float* x0 = x[0].data();
    for (int64_t j = b; j < e; ++j) yp[j] = x0[j];
    for (size_t i = 1; i < x.size(); ++i) {
      const float* xi = i == 1 ? second.data() : x[i].data();
      for (int64_t j = b; j < e; ++j) yp[j] += xi[j];
    }
  });
}

void Add::backward(std::span<const ConstTensorView> x, ConstTensorView, ConstTensorView dy, std::span<const TensorView> dx,
                   const StepContext& ctx) {
  for (size_t i = 0; i < dx.size(); ++i) {
    if (i == 1 && proj_) {
      proj_->backward(x[1], ConstTensorView(proj_y_.data(), dy.shape()), dy, dx[1], ctx);
      continue;
    }
    if (!dx[i].empty()) std::memcpy(dx[i].data(), dy.data(), dy.numel() * sizeof(float));
  }
}

std::unique_ptr<Layer> Concat::from_config(const Config&) { return std::make_unique<Concat>(); }

Shape Concat::output_shape(std::span<const Shape> x) const {
  if (x.size() < 2) shape_error(cat("concatenates two or more inputs; got ", x.size(), " (name them with 'inputs: [a, b]')"));
  Shape out = x[0];
  for (size_t i = 1; i < x.size(); ++i) {
    bool ok = x[i].rank() == x[0].rank();
    for (int d = 1; ok && d < x[0].rank(); ++d) ok = x[i][d] == x[0][d];
    if (!ok)
      shape_error(cat("inputs must agree in every dimension but the first (channels); input 0 is ", x[0].str(), ", input ", i,
                      " is ", x[i].str()));
    out[0] += x[i][0];
  }
  return out;
}

// Each sample of y is the inputs' samples one after the other.
void Concat::forward(std::span<const ConstTensorView> x, TensorView y, const StepContext&) {
  const int64_t ys = y.stride0();
  parallel_chunks(y.batch(), grain_for(ys), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* dst = y.data() + r * ys;
      for (const auto& xi : x) {
        const int64_t s = xi.stride0();
        std::memcpy(dst, xi.data() + r * s, s * sizeof(float));
        dst += s;
      }
    }
  });
}

void Concat::backward(std::span<const ConstTensorView> x, ConstTensorView y, ConstTensorView dy,
                      std::span<const TensorView> dx, const StepContext&) {
  const int64_t ys = y.stride0();
  parallel_chunks(y.batch(), grain_for(ys), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = dy.data() + r * ys;
      for (size_t i = 0; i < dx.size(); ++i) {
        const int64_t s = x[i].stride0();
        if (!dx[i].empty()) std::memcpy(dx[i].data() + r * s, src, s * sizeof(float));
        src += s;
      }
    }
  });
}

}  // namespace hubel::layers
