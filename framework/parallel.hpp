// Parallel loops over fixed chunks. The chunking depends only on the problem size, never
// on the number of threads, so every result (including reductions, which add chunk
// partials in chunk order) is bitwise the same whatever the thread count.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace hubel {

// Calls f(begin, end) for the chunks [k*grain, min(n, (k+1)*grain)) of [0, n), in parallel.
template <class F>
void parallel_chunks(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1) {
    f(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t c = r.begin(); c != r.end(); ++c) f(c * grain, std::min(n, (c + 1) * grain));
      },
      tbb::simple_partitioner());
}

// Deterministic parallel sum: f(begin, end) returns the partial for a chunk; partials are
// added in chunk order. At most kMaxChunks chunks (the grain grows for huge n), so the
// partials live on the stack and the step allocates nothing.
template <class T, class F>
T deterministic_sum(int64_t n, int64_t grain, F&& f) {
  constexpr int64_t kMaxChunks = 256;
  if (n <= 0) return T{};
  grain = std::max<int64_t>({grain, int64_t{1}, (n + kMaxChunks - 1) / kMaxChunks});
  const int64_t chunks = (n + grain - 1) / grain;
  std::array<T, kMaxChunks> partial{};
  parallel_chunks(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) partial[c] = f(c * grain, std::min(n, (c + 1) * grain));
  });
  T total{};
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

// A grain (items per chunk) that gives each chunk about `work` units when one item costs
// `per_item` units: chunks of tens of thousands of multiply-adds amortize task overhead.
inline int64_t grain_for(int64_t per_item, int64_t work = 32768) {
  return std::max<int64_t>(1, work / std::max<int64_t>(per_item, 1));
}

}  // namespace hubel
