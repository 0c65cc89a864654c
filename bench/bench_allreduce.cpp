// Gradient allreduce under mpirun: one blocking MPI_Allreduce of the whole arena (through
// the Communicator) against the GradientSync (fixed 128 KiB pieces, grouped in buckets),
// for a LeNet-sized arena (61,706 floats) and a 10-million-float arena; reports the time
// and the bus bandwidth 2(p-1)/p * bytes / time. Then exact training's ordered allreduce
// (Communicator::set_ordered: the tree's grouping, hubel's own reduce-scatter and
// allgather) against MPI_Allreduce of the same arena, blocking and through GradientSync.
//
//   mpirun -np 2 build/bench/bench_allreduce
// Open MPI's choice of algorithm matters for large arrays: compare with
//   mpirun -np 2 --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4 ...  (ring)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "comm/gradient_sync.hpp"
#include "comm/mpi_communicator.hpp"

using namespace hubel;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  auto comm = comm::make_communicator(&argc, &argv);
  const int p = comm->size();
  for (int64_t n : {int64_t{61706}, int64_t{1} << 20, int64_t{10'000'000}}) {
    std::vector<float> v(static_cast<size_t>(n), 1.0f);
    const int reps = n > 5'000'000 ? 10 : 200;
    auto time = [&](auto&& f) {
      f();  // warm-up
      comm->barrier();
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
      }
      return best;
    };
    const double raw = time([&] { comm->allreduce_sum(v); });
    for (double mb : {0.125, 1.0, 4.0, 64.0}) {
      comm::GradientSync sync(*comm, n, static_cast<int64_t>(mb * (1 << 20) / 4));
      const double t = time([&] {
        sync.begin(v, 0);
        sync.finish();
      });
      if (comm->rank() == 0) {
        const double bus = 2.0 * (p - 1) / p * static_cast<double>(n) * 4 / t / 1e9;
        std::printf(
            "%9lld floats, %d ranks: MPI_Allreduce %8.1f us; GradientSync bucket %6.3f MiB %8.1f us, bus %6.2f GB/s, "
            "%5.1f%% of raw\n",
            static_cast<long long>(n), p, raw * 1e6, mb, t * 1e6, bus, 100 * raw / t);
      }
    }
    if (p & (p - 1)) continue;  // the ordered allreduce needs a power-of-two number of ranks
    comm->set_ordered(true);
    const double ordered = time([&] { comm->allreduce_sum(v); });
    comm::GradientSync sync(*comm, n, (1 << 20) / 4);
    const double ordered_sync = time([&] {
      sync.begin(v, 0);
      sync.finish();
    });
    comm->set_ordered(false);
    if (comm->rank() == 0)
      std::printf(
          "%9lld floats, %d ranks: ordered allreduce %8.1f us (%.2f x MPI_Allreduce), through GradientSync (1 MiB "
          "buckets) %8.1f us; %.1f MB sent per rank\n",
          static_cast<long long>(n), p, ordered * 1e6, ordered / raw, ordered_sync * 1e6,
          2.0 * (p - 1) / p * static_cast<double>(n) * 4 / 1e6);
  }
  return 0;
}
