// MPI communicator: blocking collectives on MPI_COMM_WORLD.
#include "comm/mpi_communicator.hpp"

#include <mpi.h>

#include <climits>
#include <cstdlib>

#include "framework/error.hpp"

namespace hubel::comm {

namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(cat("MPI ", what, " failed: ", std::string(msg, len)));
  }
}

// MPI counts are int: long spans go in pieces.
template <class T, class F>
void in_pieces(std::span<T> data, F&& f) {
  constexpr size_t kMax = INT_MAX / 2;
  for (size_t off = 0; off < data.size(); off += kMax) f(data.data() + off, static_cast<int>(std::min(kMax, data.size() - off)));
}

}  // namespace

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "initialization");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiCommunicator::allreduce_sum(std::span<float> data) {
  in_pieces(data, [](float* p, int n) { check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce"); });
}

void MpiCommunicator::allreduce_sum(std::span<double> data) {
  in_pieces(data, [](double* p, int n) { check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "allreduce"); });
}

void MpiCommunicator::broadcast(std::span<float> data, int root) {
  in_pieces(data, [root](float* p, int n) { check(MPI_Bcast(p, n, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast"); });
}

void MpiCommunicator::barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }

void MpiCommunicator::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv) {
  if (launched_by_mpi()) return std::make_unique<MpiCommunicator>(argc, argv);
  return std::make_unique<LocalCommunicator>();
}

}  // namespace hubel::comm
