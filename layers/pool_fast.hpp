// The fast paths of window pooling (Pool's plans other than the reference loops), each
// tested against those loops: the same taps in the same order, so the same results and
// the same ties.
#pragma once

#include <cstdint>

#include "layers/pool.hpp"
#include "layers/window.hpp"

namespace hubel::layers::pool_fast {

// One plane of max, average or L2 pooling through the offsets of windows that all lie
// inside the input (window.hpp); max also writes the index of each maximum within the
// plane (argmax).
void pool_plane(PoolKind kind, const WindowOffsets& o, const float* x, float* y, int32_t* argmax);

// The common 2x2 max window at stride 2 (2-D, no dilation, no padding).
bool max_2x2_applies(const Window& w);
// One plane of it, branch-free (selects by masks: the comparisons of random data are
// unpredictable).
void max_2x2_plane(const Window& w, const float* x, float* y, int32_t* argmax);
// Its backward: the whole plane of dx (every input, in a window or not) from dy and the
// argmax the forward wrote; an argmax of -1 gives its window zeros (a convolution with a
// ReLU that computes the pooling marks so the windows whose maximum is not positive:
// Conv::fuse). dx's rows lie ld apart (0: W), columns [0, W) of each written.
void max_2x2_backward_plane(const Window& w, const float* dy, const int32_t* argmax, float* dx, int64_t ld = 0);

}  // namespace hubel::layers::pool_fast
