// Aligned allocation for tensors and arenas.
#include "framework/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include "framework/error.hpp"

namespace hubel {

AlignedBuffer::AlignedBuffer(int64_t n) : AlignedBuffer(n, Uninitialized{}) {
  if (n_ > 0) std::memset(p_.get(), 0, static_cast<size_t>(align_floats(n_)) * sizeof(float));
}

AlignedBuffer::AlignedBuffer(int64_t n, Uninitialized) : n_(n) {
  if (n < 0) throw ShapeError(cat("negative buffer size ", n));
  if (n == 0) return;
  const size_t bytes = static_cast<size_t>(align_floats(n)) * sizeof(float);
  void* p = std::aligned_alloc(kAlignment, bytes);
  if (!p) throw Error(cat("out of memory allocating ", bytes, " bytes"));
  p_.reset(static_cast<float*>(p));
}

void AlignedBuffer::Free::operator()(float* p) const { std::free(p); }

}  // namespace hubel
