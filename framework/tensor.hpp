// Tensor: float32 storage, 64-byte aligned, up to five dimensions; and non-owning views.
// Buffers are allocated and zero-touched once, when a Net is built, and reused every step.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>

#include "framework/shape.hpp"

namespace hubel {

inline constexpr size_t kAlignment = 64;
inline constexpr int64_t kAlignFloats = kAlignment / sizeof(float);

// Rounds a float count up to a whole number of 64-byte lines.
constexpr int64_t align_floats(int64_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

// An aligned, zero-initialized float array. Zeroing touches every page at allocation
// time, so the first training step does not pay the page faults.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t n);
  // Not zeroed: for scratch that is always written before it is read. Pages never
  // touched (a part a layer does not need in this net) then cost no resident memory.
  struct Uninitialized {};
  AlignedBuffer(int64_t n, Uninitialized);
  float* data() { return p_.get(); }
  const float* data() const { return p_.get(); }
  int64_t size() const { return n_; }
  std::span<float> span() { return {p_.get(), static_cast<size_t>(n_)}; }
  std::span<const float> span() const { return {p_.get(), static_cast<size_t>(n_)}; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> p_;
  int64_t n_ = 0;
};

// A view of a dense, row-major tensor. T is float or const float.
template <class T>
class BasicView {
 public:
  BasicView() = default;
  BasicView(T* data, Shape shape) : data_(data), shape_(shape) {}
  // A mutable view converts to a const one.
  template <class U, class = std::enable_if_t<std::is_const_v<T> && !std::is_const_v<U>>>
  BasicView(const BasicView<U>& o) : data_(o.data()), shape_(o.shape()) {}

  T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  bool empty() const { return data_ == nullptr; }
  // First dimension (the batch, for activations).
  int64_t batch() const { return shape_.rank() ? shape_[0] : 1; }
  // Elements per item of the first dimension.
  int64_t stride0() const { return shape_.rank() ? shape_.numel() / shape_[0] : 1; }
  std::span<T> span() const { return {data_, static_cast<size_t>(numel())}; }
  T& operator[](int64_t i) const {
    assert(i >= 0 && i < numel());
    return data_[i];
  }
  // Items [begin, begin + count) of the first dimension.
  BasicView rows(int64_t begin, int64_t count) const {
    Shape s = shape_;
    s[0] = count;
    return {data_ + begin * stride0(), s};
  }
  // The same data seen with another shape of equal size.
  BasicView reshaped(const Shape& s) const {
    assert(s.numel() == numel());
    return {data_, s};
  }

 private:
  T* data_ = nullptr;
  Shape shape_;
};

using TensorView = BasicView<float>;
using ConstTensorView = BasicView<const float>;

// Owns aligned storage for one shape.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& shape) : buf_(shape.numel()), shape_(shape) {}

  float* data() { return buf_.data(); }
  const float* data() const { return buf_.data(); }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  float& operator[](int64_t i) { return buf_.data()[i]; }
  float operator[](int64_t i) const { return buf_.data()[i]; }
  std::span<float> span() { return {data(), static_cast<size_t>(numel())}; }
  std::span<const float> span() const { return {data(), static_cast<size_t>(numel())}; }

  TensorView view() { return {data(), shape_}; }
  ConstTensorView view() const { return {data(), shape_}; }
  operator TensorView() { return view(); }
  operator ConstTensorView() const { return view(); }

 private:
  AlignedBuffer buf_;
  Shape shape_;
};

}  // namespace hubel
