// Synthetic samples, each from its own generator.
#include "datasets/synthetic.hpp"

#include <algorithm>

#include "framework/error.hpp"
#include "framework/random.hpp"

namespace hubel::datasets {

Synthetic::Synthetic(const Options& o, std::string label) : o_(o), name_("synthetic(" + label + ")") {
  if (o.samples <= 0 || o.classes < 2) throw ConfigError(cat(name_, ": needs samples > 0 and at least 2 classes"));
  distinct_ = std::min<int64_t>(o.samples, 256);
  const int64_t numel = o.shape.numel();
  x_.resize(static_cast<size_t>(distinct_ * numel));
  labels_.resize(static_cast<size_t>(distinct_));
  Rng rng(o.seed);
  for (int64_t i = 0; i < distinct_; ++i) {
    for (int64_t j = 0; j < numel; ++j) x_[static_cast<size_t>(i * numel + j)] = static_cast<float>(rng.normal());
    labels_[static_cast<size_t>(i)] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(o.classes)));
  }
}

void Synthetic::read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const {
  const int64_t numel = o_.shape.numel();
  for (size_t i = 0; i < idx.size(); ++i) {
    const int64_t s = idx[i];
    if (s < 0 || s >= o_.samples)
      throw DataError(cat(name_, ": sample index ", s, " out of range [0, ", o_.samples, ")"));
    const int64_t d = s % distinct_;
    std::copy_n(x_.data() + d * numel, numel, x.data() + static_cast<int64_t>(i) * numel);
    if (labels) labels[i] = labels_[static_cast<size_t>(d)];
  }
}

}  // namespace hubel::datasets
