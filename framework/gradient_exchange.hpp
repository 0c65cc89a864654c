// The interface through which the Trainer sums the gradient arena over ranks while
// backward runs: comm::GradientSync implements it (buckets, a communication thread); the
// Communicator makes one (Communicator::gradient_exchange). framework/ owns the interface
// so that its dependencies point one way: comm/ implements what framework/ asks for.
#pragma once

#include <cstdint>
#include <span>

namespace hubel {

class GradientExchange {
 public:
  virtual ~GradientExchange() = default;
  // A new step over this gradient arena.
  virtual void begin(std::span<float> grads, int64_t step) = 0;
  // Gradients [0, prefix) are final: their reduction may start.
  virtual void ready(int64_t prefix) = 0;
  // A small blocking sum over ranks in the middle of a step (batch norm's statistics),
  // ordered with the gradient reductions already started.
  virtual void reduce(std::span<double> data) = 0;
  // Starts what is left and waits until the whole arena is summed.
  virtual void finish() = 0;
};

}  // namespace hubel
