// A subset of a Dataset by index list: how a fraction of the training set is held out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"

namespace hubel::datasets {

class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices, std::string label)
      : base_(std::move(base)), idx_(std::move(indices)), label_(std::move(label)) {}
  std::string name() const override { return base_->name() + " (" + label_ + ")"; }
  void prepare() const override { base_->prepare(); }
  int64_t size() const override { return static_cast<int64_t>(idx_.size()); }
  Shape sample_shape() const override { return base_->sample_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  std::vector<std::string> class_names() const override { return base_->class_names(); }
  Shape target_shape() const override { return base_->target_shape(); }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const override {
    base_->read(map(idx), x, labels, targets);
  }
  void read_labels(std::span<const int64_t> idx, int32_t* labels) const override {
    base_->read_labels(map(idx), labels);
  }
  bool encoded() const override { return base_->encoded(); }
  void read_encoded(std::span<const int64_t> idx, std::vector<std::vector<uint8_t>>& bytes,
                    int32_t* labels) const override {
    base_->read_encoded(map(idx), bytes, labels);
  }
  int64_t stored_bytes() const override { return base_->stored_bytes(); }
  int64_t storage_rows() const override { return base_->storage_rows(); }
  bool stored_float() const override { return base_->stored_float(); }
  void read_stored(std::span<const int64_t> idx, uint8_t* rows, int32_t* labels) const override {
    base_->read_stored(map(idx), rows, labels);
  }
  bool collective() const override { return base_->collective(); }
  void read_global(std::span<const int64_t> ids, std::span<const int64_t> bounds, int rank, comm::Exchanger* ex,
                   ExchangeScratch& scratch, TensorView x, int32_t* labels, TensorView targets) const override {
    base_->read_global(map(ids), bounds, rank, ex, scratch, x, labels, targets);
  }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> idx_;
  std::string label_;
  // Called from one thread at a time (the loader's); the mapping buffer is reused.
  std::span<const int64_t> map(std::span<const int64_t> idx) const {
    mapped_.resize(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) mapped_[i] = idx_.at(static_cast<size_t>(idx[i]));
    return mapped_;
  }
  mutable std::vector<int64_t> mapped_;
};

}  // namespace hubel::datasets

namespace hubel::datasets {

// The samples of some classes only, relabeled 0..k-1 in the order given: fine-tuning a
// classifier on a subset of the classes (data.classes: [0, 2, 4]).
class ClassSubset : public Dataset {
 public:
  // Throws DataError when a class is out of range, listed twice, or has no sample.
  ClassSubset(std::shared_ptr<const Dataset> base, const std::vector<int64_t>& classes);
  std::string name() const override { return name_; }
  void prepare() const override { base_->prepare(); }
  int64_t size() const override { return static_cast<int64_t>(idx_.size()); }
  Shape sample_shape() const override { return base_->sample_shape(); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_); }
  std::vector<std::string> class_names() const override { return names_; }
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const override;
  void read_labels(std::span<const int64_t> idx, int32_t* labels) const override;
  bool encoded() const override { return base_->encoded(); }
  void read_encoded(std::span<const int64_t> idx, std::vector<std::vector<uint8_t>>& bytes,
                    int32_t* labels) const override;
  int64_t stored_bytes() const override { return base_->stored_bytes(); }
  int64_t storage_rows() const override { return base_->storage_rows(); }
  bool stored_float() const override { return base_->stored_float(); }
  void read_stored(std::span<const int64_t> idx, uint8_t* rows, int32_t* labels) const override;
  bool collective() const override { return base_->collective(); }
  void read_global(std::span<const int64_t> ids, std::span<const int64_t> bounds, int rank, comm::Exchanger* ex,
                   ExchangeScratch& scratch, TensorView x, int32_t* labels, TensorView targets) const override;

 private:
  std::span<const int64_t> map(std::span<const int64_t> idx) const;
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> idx_;
  std::vector<int32_t> remap_;  // old label -> new label, or -1
  size_t classes_ = 0;
  std::string name_;
  std::vector<std::string> names_;
  mutable std::vector<int64_t> mapped_;
};

}  // namespace hubel::datasets
