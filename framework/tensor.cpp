// Aligned allocation for tensors and arenas.
#include "framework/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "framework/error.hpp"

namespace hubel {

namespace {
// Zeroed buffers of at least this size (activations, gradients, parameters: every page
// is used) sit on 2 MiB pages where the kernel allows it (transparent huge pages, even in
// "madvise" mode). A layer's pass streams megabytes of them, and on 4 KiB pages each new
// page stops the hardware prefetcher and costs a TLB walk: reading an 8 MB activation
// from memory measured 19 GB/s on 4 KiB pages and 29 GB/s on 2 MiB ones (Zen 4).
// Scratch left uninitialized keeps 4 KiB pages: its untouched parts cost no memory.
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeFrom = 2 * kHugePage;
}  // namespace

AlignedBuffer::AlignedBuffer(int64_t n) : n_(n) {
  if (n < 0) throw ShapeError(cat("negative buffer size ", n));
  if (n == 0) return;
  size_t bytes = static_cast<size_t>(align_floats(n)) * sizeof(float);
  const bool huge = bytes >= kHugeFrom;
  if (huge) bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(huge ? kHugePage : kAlignment, bytes);
  if (!p) throw Error(cat("out of memory allocating ", bytes, " bytes"));
  p_.reset(static_cast<float*>(p));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // advice: where it is refused, 4 KiB pages
#endif
  std::memset(p, 0, bytes);
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
