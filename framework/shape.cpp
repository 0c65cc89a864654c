// Shape arithmetic and printing.
#include "framework/shape.hpp"

#include "framework/error.hpp"

namespace hubel {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxRank))
    throw ShapeError(cat("a tensor has at most ", kMaxRank, " dimensions (N, C, D, H, W); got ", dims.size()));
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) d_[i] = dims[i];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i)
    if (__builtin_mul_overflow(n, d_[i], &n)) throw ShapeError(cat("shape ", str(), " has more than 2^63 elements"));
  return n;
}

Shape Shape::with_batch(int64_t n) const {
  if (rank_ == kMaxRank)
    throw ShapeError(cat("sample shape ", str(), " has ", kMaxRank, " dimensions: no room for the batch dimension"));
  Shape s;
  s.rank_ = rank_ + 1;
  s.d_[0] = n;
  for (int i = 0; i < rank_; ++i) s.d_[i + 1] = d_[i];
  return s;
}

Shape Shape::drop_first() const {
  Shape s;
  if (rank_ == 0) return s;
  s.rank_ = rank_ - 1;
  for (int i = 1; i < rank_; ++i) s.d_[i - 1] = d_[i];
  return s;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (d_[i] != o.d_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + "]";
}

}  // namespace hubel
