// MPI communicator: blocking collectives on MPI_COMM_WORLD.
#include "comm/mpi_communicator.hpp"

#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "comm/gradient_sync.hpp"
#include "comm/watchdog.hpp"
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
  for (size_t off = 0; off < data.size(); off += kMax)
    f(data.data() + off, static_cast<int>(std::min(kMax, data.size() - off)));
}

}  // namespace

// Request slots: an id indexes a slot; a completed request leaves MPI_REQUEST_NULL there,
// and free slots are reused, so the step allocates nothing once the pool has grown.
struct MpiCommunicator::Pending {
  std::vector<MPI_Request> slots;
  std::vector<int64_t> free;
};

namespace {
// The watchdog's way out: the message, then MPI_Abort (mpirun stops every rank, a stopped
// one included); should that not end this process within 5 s, SIGALRM's default action does.
[[noreturn]] void stop_job(int rank, const std::string& message) {
  const std::string line = cat("hubel (rank ", rank, "): error: ", message, "\n");
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  ::alarm(5);
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::_Exit(2);
}

// Marks a blocking call as a wait for the watchdog.
struct Watched {
  explicit Watched(Communicator& c) : c_(c) { c_.begin_wait(); }
  ~Watched() { c_.end_wait(); }
  Communicator& c_;
};
}  // namespace

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) : pending_(std::make_unique<Pending>()) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "initialization");
  serialized_ = provided >= MPI_THREAD_SERIALIZED;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (size_ > 1) {
    const int rank = rank_;
    // The same default as train.comm_timeout; the Trainer sets the experiment's.
    watchdog_ = std::make_unique<Watchdog>(rank, 300.0, [rank](const std::string& m) { stop_job(rank, m); });
  }
  if (const char* v = std::getenv("HUBEL_TEST_STALL")) {
    const std::string spec(v);
    const size_t a = spec.find(':'), b = spec.rfind(':');
    if (a != std::string::npos && b > a) {
      stall_rank_ = std::atoi(spec.substr(0, a).c_str());
      stall_what_ = spec.substr(a + 1, b - a - 1);
      stall_at_ = std::atoll(spec.c_str() + b + 1);
    }
  }
}

std::unique_ptr<GradientExchange> MpiCommunicator::gradient_exchange(int64_t arena_floats, int64_t bucket_floats) {
  return std::make_unique<GradientSync>(*this, arena_floats, bucket_floats);
}

void MpiCommunicator::set_timeout(double seconds) {
  if (watchdog_) watchdog_->set_timeout(seconds);
}

void MpiCommunicator::note_step(int64_t step) {
  if (watchdog_) watchdog_->note_step(step);
}

void MpiCommunicator::begin_wait() {
  if (stall_rank_ == rank_ && std::strstr(t_activity.what, stall_what_.c_str()) && ++stall_seen_ == stall_at_) {
    const std::string line =
        cat("hubel (rank ", rank_, "): test: stopping myself (SIGSTOP) before ", t_activity.what, "\n");
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    ::raise(SIGSTOP);
  }
  if (watchdog_) watchdog_->begin();
}

void MpiCommunicator::end_wait() {
  if (watchdog_) watchdog_->end();
}

MpiCommunicator::~MpiCommunicator() {
  watchdog_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiCommunicator::allreduce_sum(std::span<float> data) {
  Watched w(*this);
  in_pieces(data, [](float* p, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  });
}

void MpiCommunicator::allreduce_sum(std::span<double> data) {
  Watched w(*this);
  in_pieces(data, [](double* p, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  });
}

void MpiCommunicator::broadcast(std::span<float> data, int root) {
  Watched w(*this);
  in_pieces(data, [root](float* p, int n) { check(MPI_Bcast(p, n, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast"); });
}

void MpiCommunicator::broadcast(std::span<double> data, int root) {
  Watched w(*this);
  in_pieces(data, [root](double* p, int n) { check(MPI_Bcast(p, n, MPI_DOUBLE, root, MPI_COMM_WORLD), "broadcast"); });
}

Communicator::Request MpiCommunicator::start_allreduce_sum(std::span<float> data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) throw Error("a non-blocking allreduce of more than 2^31 floats");
  Pending& p = *pending_;
  int64_t id;
  if (!p.free.empty()) {
    id = p.free.back();
    p.free.pop_back();
  } else {
    id = static_cast<int64_t>(p.slots.size());
    p.slots.push_back(MPI_REQUEST_NULL);
  }
  check(MPI_Iallreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &p.slots[static_cast<size_t>(id)]),
        "non-blocking allreduce");
  return id;
}

bool MpiCommunicator::test(Request r) {
  Pending& p = *pending_;
  MPI_Request& req = p.slots.at(static_cast<size_t>(r));
  int done = 0;
  check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "test");
  if (done) p.free.push_back(r);
  return done != 0;
}

void MpiCommunicator::progress() {
  // One MPI_Test on any pending request drives Open MPI's progress engine for all of them.
  for (auto& req : pending_->slots)
    if (req != MPI_REQUEST_NULL) {
      // A completed request becomes MPI_REQUEST_NULL; its slot is released by test(id).
      int flag = 0;
      MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      return;
    }
}

void MpiCommunicator::barrier() {
  Watched w(*this);
  check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

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
