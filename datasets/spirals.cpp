// Spiral generation.
#include "datasets/spirals.hpp"

#include <cmath>

#include "framework/error.hpp"
#include "framework/random.hpp"

namespace hubel::datasets {

Spirals::Spirals(const Options& o, std::string label) : o_(o), name_("spirals(" + label + ")") {
  if (o.samples <= 0 || o.classes < 2) throw ConfigError(cat(name_, ": needs samples > 0 and at least 2 classes"));
  Rng rng(o.seed);
  xy_.resize(2 * o.samples);
  labels_.resize(o.samples);
  // Sample i lies on arm i % classes at a uniformly drawn position t along the arm:
  // radius t, angle 2 pi (turns t + arm / classes).
  for (int64_t i = 0; i < o.samples; ++i) {
    const int32_t arm = static_cast<int32_t>(i % o.classes);
    const double t = 0.05 + 0.95 * rng.uniform();
    const double a = 2 * M_PI * (o.turns * t + static_cast<double>(arm) / static_cast<double>(o.classes));
    xy_[2 * i] = static_cast<float>(t * std::cos(a) + o.noise * rng.normal());
    xy_[2 * i + 1] = static_cast<float>(t * std::sin(a) + o.noise * rng.normal());
    labels_[i] = arm;
  }
}

void Spirals::read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const {
  for (size_t i = 0; i < idx.size(); ++i) {
    const int64_t s = idx[i];
    if (s < 0 || s >= o_.samples)
      throw DataError(cat(name_, ": sample index ", s, " out of range [0, ", o_.samples, ")"));
    x[2 * i] = xy_[2 * s];
    x[2 * i + 1] = xy_[2 * s + 1];
    if (labels) labels[i] = labels_[s];
  }
}

}  // namespace hubel::datasets
