// Subsets of data sets.
#include "datasets/subset.hpp"

#include "framework/error.hpp"

namespace hubel::datasets {

ClassSubset::ClassSubset(std::shared_ptr<const Dataset> base, const std::vector<int64_t>& classes)
    : base_(std::move(base)), classes_(classes.size()) {
  const int64_t k = base_->num_classes();
  if (k <= 0) throw DataError(cat(base_->name(), ": has no class labels, so data.classes cannot select classes"));
  if (classes.empty()) throw DataError("data.classes is empty: list the classes to keep");
  remap_.assign(static_cast<size_t>(k), -1);
  std::string list;
  for (size_t i = 0; i < classes.size(); ++i) {
    const int64_t c = classes[i];
    if (c < 0 || c >= k)
      throw DataError(cat("data.classes: class ", c, " is out of range: ", base_->name(), " has classes 0 to ", k - 1));
    if (remap_[static_cast<size_t>(c)] >= 0) throw DataError(cat("data.classes: class ", c, " is listed twice"));
    remap_[static_cast<size_t>(c)] = static_cast<int32_t>(i);
    list += cat(i ? "," : "", c);
  }
  name_ = cat(base_->name(), " (classes ", list, ")");
  const auto names = base_->class_names();
  if (static_cast<int64_t>(names.size()) == k)
    for (int64_t c : classes) names_.push_back(names[static_cast<size_t>(c)]);
  // One pass over the labels, in chunks.
  const int64_t n = base_->size(), chunk = 1024;
  std::vector<int32_t> labels(static_cast<size_t>(chunk));
  std::vector<int64_t> rows;
  std::vector<int64_t> count(classes.size(), 0);
  for (int64_t b = 0; b < n; b += chunk) {
    const int64_t m = std::min(chunk, n - b);
    rows.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) rows[static_cast<size_t>(i)] = b + i;
    base_->read_labels(rows, labels.data());
    for (int64_t i = 0; i < m; ++i) {
      const int32_t l = labels[static_cast<size_t>(i)];
      if (l >= 0 && l < k && remap_[static_cast<size_t>(l)] >= 0) {
        idx_.push_back(b + i);
        ++count[static_cast<size_t>(remap_[static_cast<size_t>(l)])];
      }
    }
  }
  for (size_t i = 0; i < classes.size(); ++i)
    if (count[i] == 0) throw DataError(cat(base_->name(), ": class ", classes[i], " of data.classes has no sample"));
}

std::span<const int64_t> ClassSubset::map(std::span<const int64_t> idx) const {
  mapped_.resize(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) mapped_[i] = idx_.at(static_cast<size_t>(idx[i]));
  return mapped_;
}

void ClassSubset::read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const {
  base_->read(map(idx), x, labels, targets);
  if (labels)
    for (size_t i = 0; i < idx.size(); ++i) labels[i] = remap_[static_cast<size_t>(labels[i])];
}

void ClassSubset::read_stored(std::span<const int64_t> idx, uint8_t* rows, int32_t* labels) const {
  base_->read_stored(map(idx), rows, labels);
  if (labels)
    for (size_t i = 0; i < idx.size(); ++i) labels[i] = remap_[static_cast<size_t>(labels[i])];
}

void ClassSubset::read_global(std::span<const int64_t> ids, std::span<const int64_t> bounds, int rank,
                              comm::Exchanger* ex, ExchangeScratch& scratch, TensorView x, int32_t* labels,
                              TensorView targets) const {
  base_->read_global(map(ids), bounds, rank, ex, scratch, x, labels, targets);
  if (labels)
    for (int64_t i = 0; i < bounds[static_cast<size_t>(rank) + 1] - bounds[static_cast<size_t>(rank)]; ++i)
      labels[i] = remap_[static_cast<size_t>(labels[i])];
}

void ClassSubset::read_labels(std::span<const int64_t> idx, int32_t* labels) const {
  base_->read_labels(map(idx), labels);
  for (size_t i = 0; i < idx.size(); ++i) labels[i] = remap_[static_cast<size_t>(labels[i])];
}

void ClassSubset::read_encoded(std::span<const int64_t> idx, std::vector<std::vector<uint8_t>>& bytes,
                               int32_t* labels) const {
  base_->read_encoded(map(idx), bytes, labels);
  if (labels)
    for (size_t i = 0; i < idx.size(); ++i) labels[i] = remap_[static_cast<size_t>(labels[i])];
}

}  // namespace hubel::datasets
