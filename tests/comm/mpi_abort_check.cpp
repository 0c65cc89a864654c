// Rank 1 fails in the middle of a loop of allreduces, as a bad file or a NaN would make
// it; it reports and aborts the job, as `hubel train` does. The others must not hang.
#include <cstdio>
#include <memory>
#include <vector>

#include "comm/mpi_communicator.hpp"
#include "framework/error.hpp"

int main(int argc, char** argv) {
  auto comm = hubel::comm::make_communicator(&argc, &argv);
  try {
    std::vector<float> v(1000, 1.0f);
    for (int step = 0; step < 1000000; ++step) {
      if (comm->rank() == 1 && step == 3) throw hubel::DataError("rank 1 found a bad file at step 4");
      comm->allreduce_sum(v);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hubel (rank %d): error: %s\n", comm->rank(), e.what());
    static_cast<hubel::comm::MpiCommunicator&>(*comm).abort(2);
  }
  return 0;
}
