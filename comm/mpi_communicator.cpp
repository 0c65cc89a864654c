// MPI communicator: blocking collectives on MPI_COMM_WORLD.
#include "comm/mpi_communicator.hpp"

#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
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

// The ordered allreduce (Communicator::set_ordered): a sum whose grouping is one fixed
// binary tree over the ranks, ((r0 + r1) + (r2 + r3)) + ..., whatever MPI would choose, so
// that it continues the tree each rank's chunks were added in (framework/chunks.hpp).
// Rabenseifner's scheme, in the tree's order: a reduce-scatter by recursive halving with
// the partner distance growing 1, 2, 4, ... (at distance d each rank adds its partner's
// half to its own: the sum of two aligned blocks of d ranks), then an allgather by
// recursive doubling in reverse. Each rank sends and receives 2 n (p - 1) / p values, as a
// ring allreduce does. The size is a power of two (the caller checks). tmp: scratch.
template <class T>
void ordered_allreduce(T* data, int64_t n, MPI_Datatype type, int rank, int size, std::vector<T>& tmp) {
  struct Range {
    int64_t lo, hi;
  };
  Range levels[32];
  int depth = 0;
  int64_t lo = 0, hi = n;
  for (int mask = 1; mask < size; mask <<= 1) {
    const int partner = rank ^ mask;
    const int64_t mid = lo + (hi - lo) / 2;
    const bool lower = (rank & mask) == 0;
    const int64_t keep_lo = lower ? lo : mid, keep_hi = lower ? mid : hi;
    const int64_t send_lo = lower ? mid : lo, send_hi = lower ? hi : mid;
    tmp.resize(static_cast<size_t>(std::max<int64_t>(keep_hi - keep_lo, 1)));
    check(MPI_Sendrecv(data + send_lo, static_cast<int>(send_hi - send_lo), type, partner, 71, tmp.data(),
                       static_cast<int>(keep_hi - keep_lo), type, partner, 71, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
          "ordered allreduce");
    for (int64_t i = keep_lo; i < keep_hi; ++i) data[i] += tmp[static_cast<size_t>(i - keep_lo)];
    levels[depth++] = {lo, hi};
    lo = keep_lo;
    hi = keep_hi;
  }
  for (int mask = size >> 1; mask >= 1; mask >>= 1) {
    const Range whole = levels[--depth];
    const int partner = rank ^ mask;
    const int64_t other_lo = lo == whole.lo ? hi : whole.lo, other_hi = lo == whole.lo ? whole.hi : lo;
    check(MPI_Sendrecv(data + lo, static_cast<int>(hi - lo), type, partner, 72, data + other_lo,
                       static_cast<int>(other_hi - other_lo), type, partner, 72, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
          "ordered allreduce");
    lo = whole.lo;
    hi = whole.hi;
  }
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
  // The ranks on this node, as the launcher says (no collective: MPI_Comm_split_type made
  // the next allreduce hang across network namespaces that share a host name).
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"})
    if (const char* n = std::getenv(v); n && std::atoi(n) > 0) {
      node_size_ = std::atoi(n);
      break;
    }
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

void MpiCommunicator::set_ordered(bool on) {
  if (on && (size_ & (size_ - 1)))
    throw Error(cat("the ordered allreduce needs a power-of-two number of ranks; this job has ", size_));
  ordered_ = on;
}

void MpiCommunicator::allreduce_sum(std::span<float> data) {
  Watched w(*this);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  in_pieces(data, [this](float* p, int n) {
    if (ordered_)
      ordered_allreduce(p, n, MPI_FLOAT, rank_, size_, tmp_float_);
    else
      check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  });
}

void MpiCommunicator::allreduce_sum(std::span<double> data) {
  Watched w(*this);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  in_pieces(data, [this](double* p, int n) {
    if (ordered_)
      ordered_allreduce(p, n, MPI_DOUBLE, rank_, size_, tmp_double_);
    else
      check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  });
}

void MpiCommunicator::broadcast(std::span<float> data, int root) {
  Watched w(*this);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  in_pieces(data, [root](float* p, int n) { check(MPI_Bcast(p, n, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast"); });
}

void MpiCommunicator::broadcast(std::span<double> data, int root) {
  Watched w(*this);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  in_pieces(data, [root](double* p, int n) { check(MPI_Bcast(p, n, MPI_DOUBLE, root, MPI_COMM_WORLD), "broadcast"); });
}

Communicator::Request MpiCommunicator::start_allreduce_sum(std::span<float> data) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
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
  if (ordered_) {  // no non-blocking form: done now (GradientSync overlaps it on its thread instead)
    allreduce_sum(data);
    return id;  // the slot holds MPI_REQUEST_NULL: complete
  }
  check(MPI_Iallreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &p.slots[static_cast<size_t>(id)]),
        "non-blocking allreduce");
  return id;
}

bool MpiCommunicator::test(Request r) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  Pending& p = *pending_;
  MPI_Request& req = p.slots.at(static_cast<size_t>(r));
  int done = 0;
  check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "test");
  if (done) p.free.push_back(r);
  return done != 0;
}

void MpiCommunicator::progress() {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  // One MPI_Test on any pending request drives Open MPI's progress engine for all of them.
  for (auto& req : pending_->slots)
    if (req != MPI_REQUEST_NULL) {
      // A completed request becomes MPI_REQUEST_NULL; its slot is released by test(id).
      int flag = 0;
      MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      return;
    }
}

namespace {
// A channel of its own (MPI_Comm_dup), so that a loader thread's exchanges never match
// another thread's collectives. MPI is called under the communicator's lock, and never
// blocks there: a non-blocking exchange tested with short sleeps between (a blocking call
// would also spin while it waits for the other ranks' loader threads, taking a core from
// the training).
class MpiExchanger final : public Exchanger {
 public:
  MpiExchanger(Communicator& owner, std::recursive_mutex& mutex) : owner_(owner), mutex_(mutex) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "communicator duplication");
    MPI_Comm_size(comm_, &size_);
    send_counts_.resize(static_cast<size_t>(size_));
    recv_counts_.resize(static_cast<size_t>(size_));
    send_displs_.resize(static_cast<size_t>(size_));
    recv_displs_.resize(static_cast<size_t>(size_));
  }
  ~MpiExchanger() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      std::lock_guard<std::recursive_mutex> lock(mutex_);
      if (type_ != MPI_DATATYPE_NULL) MPI_Type_free(&type_);
      MPI_Comm_free(&comm_);
    }
  }
  void alltoallv(const uint8_t* send, const int64_t* send_rows, uint8_t* recv, const int64_t* recv_rows,
                 int64_t row_bytes) override {
    std::unique_lock<std::recursive_mutex> lock(mutex_);
    if (row_bytes != type_bytes_) {  // a row is one element: counts stay small
      if (type_ != MPI_DATATYPE_NULL) MPI_Type_free(&type_);
      if (row_bytes > INT_MAX) throw Error(cat("a data exchange of rows of ", row_bytes, " bytes"));
      check(MPI_Type_contiguous(static_cast<int>(row_bytes), MPI_BYTE, &type_), "datatype");
      check(MPI_Type_commit(&type_), "datatype");
      type_bytes_ = row_bytes;
    }
    int64_t s = 0, r = 0;
    for (int d = 0; d < size_; ++d) {
      if (s + send_rows[d] > INT_MAX || r + recv_rows[d] > INT_MAX) throw Error("a data exchange of over 2^31 rows");
      send_counts_[d] = static_cast<int>(send_rows[d]);
      recv_counts_[d] = static_cast<int>(recv_rows[d]);
      send_displs_[d] = static_cast<int>(s);
      recv_displs_[d] = static_cast<int>(r);
      s += send_rows[d];
      r += recv_rows[d];
    }
    ScopedActivity a("the partitioned store's data exchange");
    Watched w(owner_);
    MPI_Request req = MPI_REQUEST_NULL;
    check(MPI_Ialltoallv(send, send_counts_.data(), send_displs_.data(), type_, recv, recv_counts_.data(),
                         recv_displs_.data(), type_, comm_, &req),
          "data exchange (alltoallv)");
    for (int done = 0;;) {
      if (!lock.owns_lock()) lock.lock();
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "data exchange (alltoallv)");
      if (done) break;
      lock.unlock();
      ::usleep(100);
    }
  }

 private:
  Communicator& owner_;
  std::recursive_mutex& mutex_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int size_ = 1;
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  int64_t type_bytes_ = 0;
  std::vector<int> send_counts_, recv_counts_, send_displs_, recv_displs_;
};
}  // namespace

std::unique_ptr<Exchanger> MpiCommunicator::exchanger(bool single_thread) {
  if (!single_thread && !serialized_)
    throw Error(
        "this MPI library does not allow calls from a second thread (MPI_THREAD_SERIALIZED), which the "
        "partitioned data store's loader thread needs: set data.prefetch: 0, or data.store: resident or streaming");
  return std::make_unique<MpiExchanger>(*this, mutex_);
}

void MpiCommunicator::barrier() {
  Watched w(*this);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
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
