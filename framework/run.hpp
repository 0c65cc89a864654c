// A training run around the Trainer: what `hubel train` does, for any C++ user of the
// library. A Run owns one run directory and everything a cluster job needs around the
// steps:
//  - the directory's lock (one run at a time) and the run's lineage (run_id): a new run
//    into a directory holding another run's checkpoints is refused unless new_run;
//  - resume (auto, a checkpoint directory or file, or weights only), fine-tuning weights
//    (model.weights), and rank 0's starting state broadcast to every rank;
//  - the checkpoint policy of the experiment's `checkpoint` section (every K steps, every
//    T minutes, every E epochs, at the end, on a signal), agreed by all ranks each step;
//  - signals (SIGTERM, SIGUSR1, SIGUSR2, SIGINT; a second SIGINT stops at once): the step
//    finishes, a checkpoint is written, and train() returns with stopped_by_signal;
//  - the metrics log (RunLog: metrics.jsonl, metrics.csv, the progress display) and
//    experiment.yaml; the final evaluation.
//
//   Run run(exp, model, comm, data, {.run_dir = "runs/lenet", .resume = "auto"});
//   RunResult r = runtime.run([&] { return run.train(); });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "framework/batch_source.hpp"
#include "framework/checkpoint.hpp"
#include "framework/experiment.hpp"
#include "framework/monitor.hpp"
#include "framework/optimizer.hpp"
#include "framework/run_lock.hpp"
#include "framework/run_log.hpp"
#include "framework/schedule.hpp"
#include "framework/trainer.hpp"

namespace hubel {

// What the Run trains on and evaluates, as BatchSources (datasets::Loader, or the user's).
struct RunData {
  BatchSource* train = nullptr;
  BatchSource* heldout = nullptr;     // evaluated after every epoch; may be null
  BatchSource* test = nullptr;        // evaluated once at the end (else the held-out set); may be null
  std::string heldout_name = "test";  // "val" or "test", for the log
};

struct RunOptions {
  std::string run_dir;           // metrics, experiment.yaml, and checkpoints/ unless checkpoint.dir says otherwise
  std::string resume;            // "": a new run; "auto": this run's newest good checkpoint; a directory; a file
  bool weights_only = false;     // with resume: the weights only (a new optimizer, schedule and data order)
  bool new_run = false;          // into a directory holding another run's checkpoints: move them aside
  bool handle_signals = true;    // install the signal handlers for the length of train()
  double progress_seconds = 30;  // between plain progress lines when stderr is not a terminal
  int terminal = -1;             // -1: ask isatty(stderr)
  std::string experiment_text;   // the experiment as run (default: the file's text)
  std::string resume_command;    // printed after a stop by a signal (default: none)
  // Resume even though the experiment differs from the checkpoint's in keys that make it
  // another run (the model, optimizer, schedule, batch, seed, ...); the differences are
  // printed either way.
  bool accept_changes = false;
};

struct CheckpointPolicy {
  std::string dir;
  int64_t every_steps = 0, every_epochs = 1;
  double every_minutes = 0;
  int keep = 3;
  // best.h5 beside latest: the checkpoint of the best epoch by this metric so far, kept
  // whatever keep prunes.
  std::optional<Monitor> best;
  // checkpoint: {dir, every_steps, every_epochs, every_minutes, keep,
  //              best: true | {monitor: val_accuracy, mode: auto | min | max, min_delta}}
  static CheckpointPolicy parse(const std::optional<Config>& section, const std::string& run_dir);
};

struct RunResult {
  std::vector<EpochMetrics> history;  // every epoch, those before a resume included
  int64_t steps = 0;
  int signal = 0;                   // the signal that stopped the run (0: it ended by itself)
  std::optional<Evaluation> final;  // the test split (or the held-out one) at the end
  std::string final_name;           // which split that was ("test", "val")
  std::string early_stop;           // why early stopping ended the run ("" if it did not)
};

// A run's schedule: from optimizer.lr, or with optimizer.scale_lr_with_batch from
// lr x batch x accumulate / reference_batch with a warm-up of 5 epochs (at most half the
// run) unless the schedule has its own (Goyal et al. 2017).
std::unique_ptr<Schedule> create_run_schedule(const std::optional<Config>& schedule, const Optimizer& optimizer,
                                              const TrainOptions& train);

class Run {
 public:
  // Builds the net for this rank's share of the batch if it is not built, the optimizer,
  // schedule and trainer; takes the directory's lock; resumes or loads fine-tuning
  // weights; checks the lineage; broadcasts rank 0's state; opens the log. Rank 0 prints
  // what it did (resumed from, weights) on standard output.
  Run(const Experiment& exp, BuiltModel& model, comm::Communicator& comm, RunData data, RunOptions options);
  ~Run();
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Trains to the end (or max_steps, or a signal), writing checkpoints and the log, then
  // evaluates the test split. Call it inside the Runtime's arena.
  RunResult train();

  // Called on every rank after each epoch's record (rank 0 may write a report there).
  void on_epoch(std::function<void(const EpochMetrics&)> f) { on_epoch_ = std::move(f); }

  Trainer& trainer() { return *trainer_; }
  Optimizer& optimizer() { return *optimizer_; }
  Schedule& schedule() { return *schedule_; }
  const CheckpointPolicy& checkpoints() const { return policy_; }
  const std::string& resumed_from() const { return resumed_from_; }  // "" for a new run
  const std::string& run_id() const { return run_id_; }
  RunLog* log() { return log_ ? &*log_ : nullptr; }  // rank 0 only

 private:
  void resume_or_start(BuiltModel& model);
  void compare_with_checkpoint(const std::string& stored_experiment, const std::string& path) const;
  void check_lineage();
  void write_checkpoint(int64_t epoch, int64_t batch, int64_t step, bool best = false);

  const Experiment& exp_;
  Net& net_;
  comm::Communicator& comm_;
  RunData data_;
  RunOptions o_;
  CheckpointPolicy policy_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Schedule> schedule_;
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<CheckpointDir> dir_;
  std::unique_ptr<RunLock> run_lock_, checkpoint_lock_;
  std::optional<RunLog> log_;
  std::vector<EpochMetrics> past_;
  std::string resumed_from_, run_id_;
  int64_t resumed_step_ = -1;
  int64_t last_written_ = -1;
  CheckpointMeta meta_;
  std::function<void(const EpochMetrics&)> on_epoch_;
};

}  // namespace hubel
