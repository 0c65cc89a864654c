// The Trainer: epochs of shuffled minibatches, forward, loss, backward, gradient
// averaging across ranks, optimizer step; then evaluation on the held-out set.
// `batch` is the global minibatch: each of the W ranks takes its B/W rows of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "framework/batch_source.hpp"
#include "framework/gradient_exchange.hpp"
#include "framework/loss.hpp"
#include "framework/monitor.hpp"
#include "framework/net.hpp"
#include "framework/optimizer.hpp"
#include "framework/schedule.hpp"

namespace hubel {

class Config;

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch = 32;     // global minibatch
  uint64_t seed = 42;     // initialization, shuffling, stochastic layers
  int64_t max_steps = 0;  // stop after this many steps; 0 = no limit
  bool shuffle = true;
  int64_t accumulate = 1;     // micro-batches (of `batch` each) per optimizer step
  double bucket_mb = 1.0;     // gradient allreduce bucket size (MiB), see GradientSync
  double comm_timeout = 300;  // seconds a rank waits for the others' gradients before giving up
  int64_t log_every = 50;     // steps between step records in metrics.jsonl (0: epochs only)
  // Exact training (docs/many-ranks.md): the same bits on any number of ranks that divides
  // the chunks. auto: where the run allows it, saying so in the banner; on: refuse a run
  // that does not; off: each rank sums its rows as it likes (MPI's allreduce).
  enum class Exact { off, automatic, on } exact = Exact::automatic;
  int64_t chunk = 0;                    // samples per chunk; 0: the default, default_chunk(batch)
  std::optional<EarlyStop> early_stop;  // stop when a monitored metric stops improving
  int64_t eval_batches = 0;             // per-epoch held-out evaluation: this many batches (0: all)
  // The layers' arithmetic (Net::set_precision): bf16 products with fp32 sums in the
  // layers that have them, where the CPU has AVX512_BF16 (elsewhere fp32, and the banner
  // says so).
  Precision precision = Precision::fp32;

  // train: {epochs, batch, seed, max_steps, shuffle, accumulate, bucket_mb, comm_timeout,
  //         log_every, exact: auto | true | false, chunk, early_stop: {monitor, patience,
  //         min_delta, mode}, eval_batches, precision: fp32 | bf16}
  static TrainOptions parse(const Config& c);
  // The chunk the run uses: chunk, or default_chunk(batch).
  int64_t chunk_size() const;
};

// The default chunk: the global batch cut into up to 8 chunks, a power of two of them
// (64 -> 8 chunks of 8, exact on 1, 2, 4 and 8 ranks; 100 -> 4 chunks of 25; an odd batch
// -> 1 chunk). More chunks allow more ranks and cost a little more (bench/exact.sh).
int64_t default_chunk(int64_t batch);

// Whether a run on `ranks` ranks is exact, and how (framework/chunks.hpp).
struct ExactPlan {
  bool exact = false;
  int64_t chunk = 0;   // samples per chunk (0: not exact)
  int64_t chunks = 0;  // chunks per rank
  std::string why_not;
  std::string describe(int ranks) const;  // the banner's "exact: yes (...)" or "exact: no (...)"
};
// Throws ConfigError when train.exact is on and the run cannot be exact.
ExactPlan plan_exactness(const TrainOptions& o, const Net& net, int ranks);

struct EpochMetrics {
  int64_t epoch = 0;        // 1-based
  int64_t steps = 0;        // global steps so far
  double lr = 0;            // the rate of the epoch's last step
  double momentum = -1;     // set by a momentum schedule; -1: not scheduled
  bool lr_reduced = false;  // a plateau schedule reduced the rate after this epoch
  // max_steps ended training inside this epoch: its metrics are of the steps done; it is
  // not in a checkpoint's history (a resumed run trains and reports the whole epoch).
  bool partial = false;
  double train_loss = 0, train_accuracy = 0;
  bool has_test = false;
  double test_loss = 0, test_accuracy = 0;
  double seconds = 0;  // training time of this epoch (evaluation excluded)
  double samples_per_second = 0;
  double comm_wait_ms = 0;  // per step: time the rank waited for the gradient allreduce after backward
  // Per step, the ranks' time without that wait: the fastest and the slowest rank's (a
  // straggler shows as a slowest rank far above the fastest).
  double busy_ms_min = 0, busy_ms_max = 0;
  int slowest_rank = 0;
};

// A net's summed loss, accuracy and, with K classes, its K x K confusion matrix (rows:
// true class, columns: predicted) on a whole data set, in evaluation mode, sharded across
// the ranks and reduced.
struct Evaluation {
  LossStats stats;
  int64_t classes = 0;
  std::vector<int64_t> confusion;
  // The misclassified samples with the highest loss, worst first (at most kWorst, over all
  // ranks): their index in the data set, true and predicted class and loss.
  struct Mistake {
    int64_t index = 0, label = 0, predicted = 0;
    double loss = 0;
  };
  static constexpr int64_t kWorst = 16;
  std::vector<Mistake> worst;
};
// chunk: an exact run's chunk (ExactPlan), so that every row is computed alike on any
// number of ranks; the data's shards then sit at the chunks' places (LoaderOptions).
// max_batches: evaluate the first this many batches only (0: all; every rank counts the
// same batches). progress(batches done, batches in all) after each batch, if set.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;
Evaluation evaluate(Net& net, const Loss& loss, BatchSource& data, comm::Communicator& comm, uint64_t seed = 0,
                    uint64_t step = 0, int64_t chunk = 0, int64_t max_batches = 0, const EvalProgress& progress = {});

class Trainer {
 public:
  Trainer(Net& net, const Loss& loss, Optimizer& opt, Schedule& schedule, comm::Communicator& comm,
          const TrainOptions& options);

  // Trains; calls on_epoch (on every rank; print on rank 0) after each epoch. test (may be
  // null) is evaluated after each epoch.
  std::vector<EpochMetrics> fit(BatchSource& train, BatchSource* test,
                                const std::function<void(const EpochMetrics&)>& on_epoch = {});
  // Continue a run: the next step is minibatch `batch` of `epoch`, `step` steps were done,
  // and `history` holds the epochs finished before (fit returns it extended).
  void set_start(int64_t epoch, int64_t batch, int64_t step, std::vector<EpochMetrics> history);
  // Called on every rank after each optimizer step with the position reached (the epoch,
  // the minibatches of it done, the steps); returning true stops training there, on every
  // rank (the hook must answer the same on all ranks).
  using StepHook = std::function<bool(int64_t epoch, int64_t batches_done, int64_t step)>;
  void set_step_hook(StepHook hook) { step_hook_ = std::move(hook); }
  // The epoch so far, for progress displays (read it in the step hook). The loss and
  // accuracy are this rank's share of the minibatches (no communication).
  struct Progress {
    int64_t epoch = 0;  // from 0
    int64_t batches_done = 0, batches_per_epoch = 0;
    LossStats stats;  // this rank's rows of this epoch
    double lr = 0;
    int64_t samples = 0;  // global rows trained this epoch
    double seconds = 0;   // since the epoch started
  };
  const Progress& progress() const { return progress_; }
  // Seconds spent, summed over the steps of fit(), outside the layers (which Net profiles).
  struct StepTimes {
    double data = 0;       // waiting for minibatches
    double loss = 0;       // the loss and its gradient
    double comm_wait = 0;  // waiting for the gradient allreduce after backward
    double optimizer = 0;  // the optimizer step (and buffer averaging)
    double total = 0;      // whole steps
    int64_t steps = 0;
  };
  const StepTimes& step_times() const { return times_; }
  int64_t step() const { return step_; }
  const ExactPlan& exactness() const { return exact_; }
  // Where fit stopped: the epoch, and the minibatches of it done (0: at its start).
  int64_t stop_epoch() const { return stop_epoch_; }
  int64_t stop_batch() const { return stop_batch_; }
  // Why fit stopped before its epochs were done by early stopping ("" if it did not).
  const std::string& early_stop_reason() const { return early_stop_reason_; }

  // Summed loss and accuracy over a data set (sharded across ranks, reduced): the first
  // max_batches batches (0: all of it).
  LossStats evaluate(BatchSource& data, int64_t max_batches = 0);
  Evaluation evaluate_full(BatchSource& data, int64_t max_batches = 0);
  // Called on every rank during evaluations, with the data set and the batches done of all.
  using EvalHook = std::function<void(const BatchSource& data, int64_t done, int64_t total)>;
  void set_eval_hook(EvalHook hook) { eval_hook_ = std::move(hook); }

  // One optimizer step of `epoch`: the next `accumulate` minibatches of `train` (fewer at
  // the end of the epoch), forward, loss, backward, the gradients summed over ranks
  // (overlapped with backward), the update. rows == 0: the epoch had no more data. fit()
  // is a loop of these; a caller with its own loop calls train.start(epoch) first.
  struct StepOutcome {
    int64_t rows = 0;      // global rows trained
    int64_t batches = 0;   // minibatches taken from train
    LossStats stats;       // this rank's rows
    double lr = 0;         // the rate used
    double comm_wait = 0;  // seconds waited for the gradient sum after backward
  };
  StepOutcome step(BatchSource& train, int64_t epoch, int64_t steps_per_epoch);

  // Checks that the data fits the network and the loss, with messages naming both.
  void check_data(const BatchSource& data) const;

 private:
  Targets load(const Batch& b);
  // Replaces the buffers that differ between ranks (per-rank statistics) by their mean.
  void average_buffers();

  // Layers' cross-rank sums, ordered with the gradient buckets.
  struct SyncReducer final : Reducer {
    GradientExchange* sync = nullptr;
    void sum(std::span<double> data) override { sync->reduce(data); }
  };

  Net& net_;
  const Loss& loss_;
  Optimizer& opt_;
  Schedule& schedule_;
  comm::Communicator& comm_;
  TrainOptions o_;
  int64_t step_ = 0;
  int64_t start_epoch_ = 0, start_batch_ = 0, stop_epoch_ = 0, stop_batch_ = 0;
  std::vector<EpochMetrics> history_;
  std::string early_stop_reason_;
  StepHook step_hook_;
  EvalHook eval_hook_;
  Progress progress_;
  StepTimes times_;
  std::unique_ptr<GradientExchange> sync_;
  Tensor accum_;  // the sum of the micro-batches' gradients, when accumulating
  SyncReducer reducer_;
  bool reduces_ = false;  // some layer reduces across ranks in training
  ExactPlan exact_;
  std::vector<double> buffer_scratch_, epoch_sums_;
};

}  // namespace hubel
