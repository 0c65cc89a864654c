// The Communicator's default gradient exchange: GradientSync over its collectives.
#include "comm/communicator.hpp"

#include "comm/gradient_sync.hpp"

namespace hubel::comm {

std::unique_ptr<GradientExchange> Communicator::gradient_exchange(int64_t arena_floats, int64_t bucket_floats) {
  return std::make_unique<GradientSync>(*this, arena_floats, bucket_floats);
}

}  // namespace hubel::comm
