// Sums over the samples of a minibatch that come out the same on any number of ranks and
// threads (docs/many-ranks.md, "Exact training"). A layer's parameter gradient (and batch
// norm's statistics) is formed per chunk of samples; in an exact run the chunks are
// ctx.chunk samples each, at fixed global sample indices (a rank holds ctx.chunks of
// them, those past its rows empty), and the chunks' partial sums are added in one fixed
// binary tree: pairs (0,1), (2,3), ... then (01,23), ... The ranks continue the same tree
// (comm/: the ordered allreduce), so the sum does not depend on where the chunks were.
#pragma once

#include <algorithm>
#include <cstdint>

#include "framework/layer.hpp"
#include "framework/parallel.hpp"

namespace hubel {

struct ChunkPlan {
  int64_t size = 1;   // samples per chunk
  int64_t count = 1;  // chunks: the rank's leaves of the tree (exact), or ceil(n / size)
  int64_t begin(int64_t c) const { return c * size; }
  int64_t end(int64_t c, int64_t n) const { return std::min(n, (c + 1) * size); }
};

// The chunks of n local rows: exact (ctx.chunk > 0), ctx.chunk samples each and
// ctx.chunks of them (rows may end before the last chunks: they are empty and their
// partials zero); otherwise `own` samples each (the layer's choice), as many as n needs.
inline ChunkPlan chunks_for(const StepContext& ctx, int64_t n, int64_t own) {
  if (ctx.chunk > 0) return {ctx.chunk, std::max<int64_t>(ctx.chunks, (n + ctx.chunk - 1) / ctx.chunk)};
  own = std::max<int64_t>(own, 1);
  return {own, std::max<int64_t>(1, (n + own - 1) / own)};
}

// Calls f(begin, end) for pieces of [0, n) of at most `piece` rows, in parallel. In an
// exact run no piece straddles a chunk: each chunk is cut from its own start, so a row's
// piece (the rows a product shares with it) is the same on any number of ranks; otherwise
// the pieces are parallel_chunks' (fixed by n, never by the thread count).
template <class F>
void for_each_piece(const StepContext& ctx, int64_t n, int64_t piece, F&& f) {
  piece = std::max<int64_t>(piece, 1);
  if (ctx.chunk <= 0) return parallel_chunks(n, piece, f);
  const int64_t chunk = ctx.chunk, per_chunk = (chunk + std::min(piece, chunk) - 1) / std::min(piece, chunk);
  const int64_t size = (chunk + per_chunk - 1) / per_chunk;  // rows per piece: the chunk cut evenly
  const int64_t chunks = (n + chunk - 1) / chunk;
  parallel_chunks(chunks * per_chunk, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c = t / per_chunk, b = c * chunk + t % per_chunk * size;
      const int64_t e = std::min({n, (c + 1) * chunk, b + size});
      if (b < e) f(b, e);
    }
  });
}

// out[i] = the tree sum over chunks c < count of partials[c * stride + i], for i < size.
// The partials are overwritten (the tree's inner nodes).
template <class T>
void tree_sum(T* partials, int64_t count, int64_t stride, int64_t size, T* out) {
  parallel_chunks(size, 4096, [&](int64_t b, int64_t e) {
    for (int64_t s = 1; s < count; s *= 2)
      for (int64_t c = 0; c + s < count; c += 2 * s) {
        T* dst = partials + c * stride;
        const T* src = partials + (c + s) * stride;
        for (int64_t i = b; i < e; ++i) dst[i] += src[i];
      }
    if (out != partials) std::copy(partials + b, partials + e, out + b);
  });
}

}  // namespace hubel
