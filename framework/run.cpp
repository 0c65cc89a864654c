// A training run: lock, lineage, resume, checkpoint policy, signals, the log.
#include "framework/run.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "framework/error.hpp"

namespace hubel {

namespace fs = std::filesystem;

namespace {

// SIGUSR1 and SIGUSR2 are what Open MPI's mpirun forwards to the ranks (it answers SIGTERM
// by stopping the job itself, and then exits 1 whatever the ranks did); SIGINT is Ctrl-C in
// a terminal, and a second one stops at once. The handler only records (async-signal-safe).
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  if (sig == SIGINT && g_signal.load() == SIGINT) {
    constexpr char msg[] = "\nhubel: interrupted again: stopping now, without a checkpoint\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(130);
  }
  if (sig == SIGINT && g_signal.load() == 0) {
    constexpr char msg[] =
        "\nhubel: interrupted: finishing the step and writing a checkpoint (Ctrl-C again stops at once)\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  }
  g_signal = sig;
}
constexpr int kSignals[] = {SIGTERM, SIGUSR1, SIGUSR2, SIGINT};

// The handlers for the length of train(); the previous ones come back after.
class SignalScope {
 public:
  explicit SignalScope(bool install) : installed_(install) {
    if (!installed_) return;
    g_signal = 0;
    for (size_t i = 0; i < std::size(kSignals); ++i) previous_[i] = std::signal(kSignals[i], on_signal);
  }
  ~SignalScope() {
    if (installed_)
      for (size_t i = 0; i < std::size(kSignals); ++i) std::signal(kSignals[i], previous_[i]);
  }

 private:
  bool installed_;
  void (*previous_[std::size(kSignals)])(int) = {};
};

}  // namespace

CheckpointPolicy CheckpointPolicy::parse(const std::optional<Config>& c, const std::string& run_dir) {
  CheckpointPolicy o;
  o.dir = (fs::path(run_dir) / "checkpoints").string();
  if (!c || c->is_null()) return o;
  o.dir = c->get<std::string>("dir", o.dir);
  o.every_steps = c->get<int64_t>("every_steps", 0);
  o.every_epochs = c->get<int64_t>("every_epochs", 1);
  o.every_minutes = c->get<double>("every_minutes", 0);
  o.keep = c->get<int>("keep", 3);
  if (auto b = c->find("best")) {
    if (b->is_map()) {
      o.best = Monitor::parse(*b);
      b->finish();
    } else if (b->as<bool>()) {
      o.best = Monitor{};
    }
  }
  if (o.every_steps < 0) c->at("every_steps").fail("every_steps must be >= 0 (0: off)");
  if (o.every_epochs < 0) c->at("every_epochs").fail("every_epochs must be >= 0 (0: off)");
  if (!(o.every_minutes >= 0)) c->at("every_minutes").fail("every_minutes must be >= 0 (0: off)");
  if (o.keep < 1) c->at("keep").fail("keep must be at least 1");
  c->finish();
  return o;
}

std::unique_ptr<Schedule> create_run_schedule(const std::optional<Config>& schedule, const Optimizer& optimizer,
                                              const TrainOptions& train) {
  const auto& c = optimizer.common();
  if (!c.scale_lr_with_batch) return Schedule::create(schedule, optimizer.base_lr(), train.epochs);
  const int64_t batch = train.batch * train.accumulate;
  const double lr = static_cast<double>(c.lr) * static_cast<double>(batch) / static_cast<double>(c.reference_batch);
  auto s = Schedule::create(schedule, lr, train.epochs);
  s->set_default_warmup(std::min(5.0, static_cast<double>(train.epochs) / 2));
  s->set_note(cat("optimizer.lr ", c.lr, " x ", batch, "/", c.reference_batch, ": scale_lr_with_batch"));
  return s;
}

Run::Run(const Experiment& exp, BuiltModel& model, comm::Communicator& comm, RunData data, RunOptions options)
    : exp_(exp), net_(model.net), comm_(comm), data_(data), o_(std::move(options)) {
  if (!data_.train) throw Error("Run: no training data");
  if (o_.run_dir.empty()) throw Error("Run: no run directory");
  if (o_.weights_only && o_.resume.empty()) throw ConfigError("weights only needs a checkpoint to resume from");
  if (o_.experiment_text.empty()) o_.experiment_text = exp.root.text();
  const int64_t local_batch = (exp.train.batch + comm.size() - 1) / comm.size();
  if (!net_.built()) {
    net_.set_precision(exp.train.precision);
    net_.build(local_batch, exp.train.seed);
  }
  optimizer_ = Optimizer::create(exp.optimizer, net_);
  schedule_ = create_run_schedule(exp.schedule, *optimizer_, exp.train);
  trainer_ = std::make_unique<Trainer>(net_, *model.loss, *optimizer_, *schedule_, comm, exp.train);
  policy_ = CheckpointPolicy::parse(exp.checkpoint, o_.run_dir);
  dir_ = std::make_unique<CheckpointDir>(policy_.dir, policy_.keep);
  const bool root = comm.rank() == 0;
  // One run at a time in a run directory (and in its checkpoint directory, when apart).
  if (root) {
    run_lock_ = std::make_unique<RunLock>(o_.run_dir);
    std::error_code ec;
    const fs::path rd = fs::weakly_canonical(o_.run_dir, ec), cd = fs::weakly_canonical(policy_.dir, ec);
    if (std::mismatch(rd.begin(), rd.end(), cd.begin(), cd.end()).first != rd.end())
      checkpoint_lock_ = std::make_unique<RunLock>(policy_.dir);
  }
  resume_or_start(model);
  if (root) check_lineage();
  if (run_id_.empty()) run_id_ = new_run_id();
  // Every rank starts from rank 0's parameters and optimizer state.
  if (comm.size() > 1) {
    comm::ScopedActivity act("the broadcast of rank 0's starting state");
    comm.broadcast(net_.state(), 0);
    for (auto& [name, state] : optimizer_->state()) comm.broadcast(state, 0);
  }
  if (policy_.best && policy_.best->needs_heldout() && !data_.heldout)
    throw ConfigError(cat("checkpoint.best watches ", policy_.best->metric,
                          " but the run has no held-out set (data.val or data.val_fraction); or monitor train_loss"));
  trainer_->check_data(*data_.train);
  if (data_.heldout) trainer_->check_data(*data_.heldout);
  if (data_.test) trainer_->check_data(*data_.test);
  if (root) {
    std::error_code ec;
    fs::create_directories(o_.run_dir, ec);
    if (ec) throw DataError(cat("cannot create the run directory ", o_.run_dir, ": ", ec.message()));
    std::ofstream yaml(fs::path(o_.run_dir) / "experiment.yaml");
    yaml << o_.experiment_text;
    if (!yaml.flush()) throw DataError(cat("cannot write ", (fs::path(o_.run_dir) / "experiment.yaml").string()));
    RunLog::Options lo;
    lo.dir = o_.run_dir;
    lo.append = resumed_step_ >= 0;
    // The log goes back to the checkpoint's step: what came after it is trained again.
    if (lo.append) RunLog::cut_to_step(o_.run_dir, resumed_step_);
    lo.epochs = exp.train.epochs;
    lo.max_steps = exp.train.max_steps;
    lo.log_every = exp.train.log_every;
    lo.progress_seconds = o_.progress_seconds;
    lo.terminal = o_.terminal;
    lo.accuracy = model.loss->reports_accuracy(data_.train->num_classes());
    lo.heldout_name = data_.heldout_name;
    log_.emplace(lo);
    trainer_->set_eval_hook([this](const BatchSource& d, int64_t done, int64_t total) {
      log_->evaluating(&d == data_.heldout ? data_.heldout_name : "test", done, total);
    });
  }
  meta_.seed = exp.train.seed;
  meta_.ranks = comm.size();
  meta_.experiment = o_.experiment_text;
  meta_.experiment_dir = exp.root.base();
  meta_.hubel_version = HUBEL_VERSION;
  meta_.run_id = run_id_;
}

Run::~Run() = default;

namespace {

// path -> value of every leaf of a configuration (lists by index), for comparing two.
void flatten(const Config& c, const std::string& path, std::map<std::string, std::string>& out) {
  if (c.is_map()) {
    for (const auto& k : c.keys()) flatten(c.at(k), path.empty() ? k : path + "." + k, out);
  } else if (c.is_sequence()) {
    const auto items = c.items();
    for (size_t i = 0; i < items.size(); ++i) flatten(items[i], cat(path, "[", i, "]"), out);
    if (items.empty()) out[path] = "[]";
  } else {
    out[path] = c.is_null() ? "null" : c.as<std::string>();
  }
}

// Keys a resumed run may change without --accept-changes: how long it goes on, how it
// saves and logs, where its data lives, how it waits. Everything else (the model, the
// optimizer, the schedule, the batch, the seed, the data's content) would make the resumed
// run another run.
bool may_change_on_resume(const std::string& key) {
  for (const char* k : {"train.epochs", "train.max_steps", "train.log_every", "train.comm_timeout", "train.bucket_mb",
                        "data.file", "data.prefetch", "data.timeout", "data.decode_threads", "data.memory_mb"})
    if (key == k) return true;
  return key.rfind("checkpoint.", 0) == 0 || key == "checkpoint";
}

}  // namespace

// The experiment of a resumed run against the checkpoint's: every difference printed;
// one outside may_change_on_resume refused unless accepted.
void Run::compare_with_checkpoint(const std::string& stored, const std::string& path) const {
  if (stored.empty()) return;  // an older checkpoint without its experiment
  std::map<std::string, std::string> then, now;
  flatten(Config::parse(stored, path + " (its experiment)"), "", then);
  // (Relative paths compare as written: moving the experiment file is no change.)
  flatten(exp_.root, "", now);
  std::vector<std::string> lines, refused;
  for (const auto& [key, value] : now) {
    const auto it = then.find(key);
    if (it != then.end() && it->second == value) continue;
    lines.push_back(cat("  ", key, ": ", it == then.end() ? std::string("(absent)") : it->second, " -> ", value));
    if (!may_change_on_resume(key)) refused.push_back(key);
  }
  for (const auto& [key, value] : then)
    if (!now.count(key)) {
      lines.push_back(cat("  ", key, ": ", value, " -> (absent)"));
      if (!may_change_on_resume(key)) refused.push_back(key);
    }
  if (lines.empty()) return;
  if (comm_.rank() == 0) {
    std::cout << "the experiment differs from the one " << path << " was trained with:\n";
    for (const auto& l : lines) std::cout << l << "\n";
  }
  if (!refused.empty() && !o_.accept_changes)
    throw ConfigError(cat("resuming would change ", join(refused, ", "),
                          " (not only how long the run goes on, how it saves and logs, or where its data is): give "
                          "the values it was trained with (its run directory's experiment.yaml), or --accept-changes "
                          "to resume as another run"));
}

void Run::resume_or_start(BuiltModel& model) {
  const bool root = comm_.rank() == 0;
  // Fine-tuning: trained weights by name (a resumed run has its own instead).
  if (model.weights && o_.resume.empty()) {
    const WeightsReport w = load_weights_by_name(model.weights->file, net_, model.weights->exclude);
    if (root) {
      std::cout << "weights: " << w.values << " values from " << w.file;
      if (!w.fresh.empty()) std::cout << "; initialized fresh: " << join(w.fresh, ", ");
      if (!w.unused.empty()) std::cout << "; not in this model: " << join(w.unused, ", ");
      std::cout << "\n";
    }
  }
  if (o_.resume.empty()) return;
  std::optional<std::string> path;
  if (o_.resume == "auto")
    path = dir_->newest_good();
  else if (fs::is_directory(o_.resume))
    path = CheckpointDir(o_.resume, policy_.keep).newest_good();
  else
    path = o_.resume;
  if (!path && o_.resume != "auto") throw DataError(cat(o_.resume, ": no readable checkpoint there"));
  if (!path) {
    if (root) std::cout << "no checkpoint in " << policy_.dir << ": starting from the beginning\n";
    return;
  }
  resumed_from_ = *path;
  if (o_.weights_only) {
    load_checkpoint(*path, net_, nullptr, nullptr);
  } else {
    compare_with_checkpoint(read_checkpoint_meta(*path).experiment, *path);
    const CheckpointMeta meta = load_checkpoint(*path, net_, optimizer_.get(), schedule_.get());
    run_id_ = meta.run_id;
    resumed_step_ = meta.step;
    if (meta.seed != exp_.train.seed && root)
      std::cout << "note: the checkpoint was trained with seed " << meta.seed << "; continuing with train.seed "
                << exp_.train.seed << "\n";
    trainer_->set_start(meta.epoch, meta.batch, meta.step, meta.history);
    past_ = meta.history;
  }
  if (root) std::cout << "resumed from " << resumed_from_ << (o_.weights_only ? " (weights only)" : "") << "\n";
}

void Run::check_lineage() {
  // A new run never mixes its checkpoints with another run's: pruning would delete them
  // and `--resume auto` could pick them up.
  const auto existing = dir_->list();
  bool same_lineage = false;
  if (resumed_step_ >= 0) {
    std::error_code ec;
    if (fs::equivalent(fs::path(resumed_from_).parent_path(), policy_.dir, ec)) same_lineage = true;
    for (const auto& [step, file] : existing) {
      if (same_lineage || run_id_.empty()) break;
      try {
        same_lineage = read_checkpoint_meta(file).run_id == run_id_;
      } catch (const Error&) {
      }
    }
  }
  if (existing.empty() || same_lineage) return;
  if (!o_.new_run)
    throw DataError(
        cat(policy_.dir,
            " holds the checkpoints of another run (newest: ", fs::path(existing.front().second).filename().string(),
            "): continue that run with --resume auto, train into another --run-dir, or start a new run here with "
            "--new-run (which moves them and the run's logs to ",
            policy_.dir, "/previous-<time>/)"));
  const std::string aside = dir_->move_aside();
  std::error_code ec;
  for (const char* f : {"metrics.jsonl", "metrics.csv", "report.html", "experiment.yaml"})
    if (fs::exists(fs::path(o_.run_dir) / f, ec)) fs::rename(fs::path(o_.run_dir) / f, fs::path(aside) / f, ec);
  std::cout << "new run: the previous run's checkpoints and logs moved to " << aside << "\n";
}

void Run::write_checkpoint(int64_t epoch, int64_t batch, int64_t step, bool best) {
  if (batch >= data_.train->batches_per_epoch()) ++epoch, batch = 0;
  meta_.epoch = epoch;
  meta_.batch = batch;
  meta_.step = step;
  meta_.schedule = schedule_->state();
  meta_.history = past_;
  if (log_) {
    log_->sync();  // the log reaches at least as far as the checkpoint
    std::string path;
    try {
      path = dir_->write(net_, *optimizer_, *schedule_, meta_);
    } catch (const DataError& e) {
      // A failure during training (exit code 2), not an input error.
      throw Error(cat("writing the checkpoint of step ", step, " failed: ", e.what(), "; the previous checkpoints and ",
                      (fs::path(dir_->dir()) / "latest").string(), " are unchanged"));
    }
    log_->note("checkpoint: " + path);
    if (best) {
      const Monitor::Best b = policy_.best->best_of(past_);
      log_->note(cat("best checkpoint: ", dir_->mark_best(path), " (epoch ", b.epoch, ", ", policy_.best->metric, " ",
                     b.value, ")"));
    }
  }
  comm::ScopedActivity act("the checkpoint barrier");
  comm_.barrier();  // no rank goes on before rank 0 has written (a failure there aborts all)
  last_written_ = step;
}

RunResult Run::train() {
  const bool root = comm_.rank() == 0;
  SignalScope signals(o_.handle_signals);
  RunResult result;
  auto last_time = std::chrono::steady_clock::now();
  bool checkpoint_at_epoch_end = false;  // due at an epoch's last step: written with its metrics
  trainer_->set_step_hook([&](int64_t epoch, int64_t batches_done, int64_t step) {
    // Ranks agree on signals and on rank 0's clock: one tiny allreduce per step.
    const bool due = policy_.every_minutes > 0 &&
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - last_time).count() >=
                         60 * policy_.every_minutes;
    // With them, the epoch's training statistics so far, so that the step records are the
    // whole batch's, the same on any number of ranks (the losses are exact sums: loss.hpp).
    Trainer::Progress progress = trainer_->progress();
    double flags[5] = {g_signal != 0 ? static_cast<double>(g_signal.load()) : 0.0, root && due ? 1.0 : 0.0,
                       progress.stats.loss, static_cast<double>(progress.stats.correct),
                       static_cast<double>(progress.stats.count)};
    if (comm_.size() > 1) {
      comm::ScopedActivity act("the per-step agreement on signals and checkpoints");
      comm_.allreduce_sum(std::span<double>(flags, 5));
      progress.stats = {flags[2], static_cast<int64_t>(flags[3]), static_cast<int64_t>(flags[4])};
    }
    const bool signalled = flags[0] > 0;
    if (log_) log_->step(progress, step);  // before the checkpoint: see RunLog::cut_to_step
    if (signalled || flags[1] > 0 || (policy_.every_steps > 0 && step % policy_.every_steps == 0)) {
      // At an epoch's end (or max_steps's, which ends a part of an epoch) the checkpoint
      // is written after the epoch's line, with its metrics.
      const bool last = exp_.train.max_steps > 0 && step >= exp_.train.max_steps;
      if (!signalled && (batches_done >= data_.train->batches_per_epoch() || last))
        checkpoint_at_epoch_end = true;
      else
        write_checkpoint(epoch, batches_done, step);
      last_time = std::chrono::steady_clock::now();
    }
    if (signalled) result.signal = g_signal != 0 ? g_signal.load() : SIGTERM;
    return signalled;
  });
  result.history = trainer_->fit(*data_.train, data_.heldout, [&](const EpochMetrics& m) {
    // (Not when max_steps cut the epoch short: the final checkpoint records where, and the
    // resumed run reports the whole epoch.)
    const bool cut = m.partial;
    if (!cut) past_.push_back(m);
    if (log_) log_->epoch(m);
    if (on_epoch_) on_epoch_(m);
    // A new best epoch is written (whatever the policy says) and linked as best.h5.
    const bool best = policy_.best && policy_.best->best_of(past_).epoch == m.epoch;
    if (cut && checkpoint_at_epoch_end)
      write_checkpoint(trainer_->stop_epoch(), trainer_->stop_batch(), m.steps);
    else if (checkpoint_at_epoch_end || best ||
             (!cut && policy_.every_epochs > 0 && m.epoch % policy_.every_epochs == 0))
      write_checkpoint(m.epoch, 0, m.steps, best);
    checkpoint_at_epoch_end = false;
  });
  trainer_->set_step_hook({});
  result.steps = trainer_->step();
  result.early_stop = trainer_->early_stop_reason();
  if (log_ && !result.early_stop.empty()) log_->note(result.early_stop);
  if (result.signal) {
    if (root) {
      std::cout << "stopped by signal " << result.signal << " at step " << trainer_->step();
      if (!o_.resume_command.empty()) std::cout << "; resume with: " << o_.resume_command;
      std::cout << "\n";
    }
    return result;
  }
  if (last_written_ != trainer_->step() && trainer_->step() > 0)
    write_checkpoint(trainer_->stop_epoch(), trainer_->stop_batch(), trainer_->step());
  // The final evaluation on the test split (the held-out one if there is no test split).
  BatchSource* final_set = data_.test ? data_.test : data_.heldout;
  if (final_set && !result.history.empty()) {
    result.final = trainer_->evaluate_full(*final_set);
    result.final_name = data_.test ? "test" : data_.heldout_name;
    const auto& e = *result.final;
    const double n = static_cast<double>(std::max<int64_t>(1, e.stats.count));
    if (log_) log_->test(e.stats.loss / n, static_cast<double>(e.stats.correct) / n, e.stats.count);
  }
  return result;
}

}  // namespace hubel
