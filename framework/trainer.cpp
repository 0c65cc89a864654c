// The training loop.
#include "framework/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"

namespace hubel {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Deterministic and parallel: is every value finite?
bool all_finite(std::span<const float> v) {
  const float* p = v.data();
  return deterministic_sum<int64_t>(static_cast<int64_t>(v.size()), 65536, [&](int64_t b, int64_t e) {
           int64_t bad = 0;
           for (int64_t i = b; i < e; ++i) bad += !std::isfinite(p[i]);
           return bad;
         }) == 0;
}
}  // namespace

int64_t default_chunk(int64_t batch) {
  int64_t chunks = 1;
  while (chunks < 8 && batch % (2 * chunks) == 0) chunks *= 2;
  return batch / chunks;
}

int64_t TrainOptions::chunk_size() const { return chunk > 0 ? chunk : default_chunk(batch); }

std::string ExactPlan::describe(int ranks) const {
  if (!exact) return cat("exact: no (", why_not, ")");
  const int64_t total = chunks * ranks;
  return cat("exact: yes (", total, " chunks of ", chunk, " samples; any power-of-two number of ranks up to ", total,
             " gives the same bits)");
}

ExactPlan plan_exactness(const TrainOptions& o, const Net& net, int ranks) {
  ExactPlan plan;
  if (o.exact == TrainOptions::Exact::off) {
    plan.why_not = "train.exact is false";
    return plan;
  }
  const int64_t chunk = o.chunk_size(), total = o.batch / chunk;
  if (total % ranks)
    plan.why_not = cat(ranks, " ranks do not divide the ", total, " chunks of ", chunk,
                       " samples; use a power-of-two number of ranks up to ", total, ", or a smaller train.chunk");
  for (size_t i = 0; i < net.size() && plan.why_not.empty(); ++i)
    if (const std::string why = net.layer(i).inexact_reason(); !why.empty())
      plan.why_not = cat("layer ", net.layer(i).name(), " ", why);
  if (!plan.why_not.empty()) {
    if (o.exact == TrainOptions::Exact::on) throw ConfigError(cat("train.exact is true but ", plan.why_not));
    return plan;
  }
  plan.exact = true;
  plan.chunk = chunk;
  plan.chunks = total / ranks;
  return plan;
}

TrainOptions TrainOptions::parse(const Config& c) {
  TrainOptions o;
  o.epochs = c.get<int64_t>("epochs", o.epochs);
  o.batch = c.get<int64_t>("batch", o.batch);
  o.seed = c.get<uint64_t>("seed", o.seed);
  o.max_steps = c.get<int64_t>("max_steps", o.max_steps);
  o.shuffle = c.get<bool>("shuffle", o.shuffle);
  o.accumulate = c.get<int64_t>("accumulate", o.accumulate);
  o.bucket_mb = c.get<double>("bucket_mb", o.bucket_mb);
  o.comm_timeout = c.get<double>("comm_timeout", o.comm_timeout);
  o.log_every = c.get<int64_t>("log_every", o.log_every);
  if (o.log_every < 0) c.at("log_every").fail(cat("log_every must be >= 0 (0: no step records); got ", o.log_every));
  if (o.accumulate < 1) c.at("accumulate").fail(cat("accumulate must be at least 1; got ", o.accumulate));
  if (!(o.bucket_mb > 0)) c.at("bucket_mb").fail(cat("bucket_mb must be positive; got ", o.bucket_mb));
  if (!(o.comm_timeout >= 0))
    c.at("comm_timeout").fail(cat("comm_timeout must be >= 0 (0: wait forever); got ", o.comm_timeout));
  if (o.epochs <= 0) c.at("epochs").fail(cat("epochs must be positive; got ", o.epochs));
  if (o.batch <= 0) c.at("batch").fail(cat("batch must be positive; got ", o.batch));
  if (o.max_steps < 0) c.at("max_steps").fail(cat("max_steps must be >= 0 (0 = no limit); got ", o.max_steps));
  if (c.find("exact")) {
    const std::string e = c.choice("exact", {"auto", "true", "false"}, "auto");
    o.exact = e == "true" ? Exact::on : e == "false" ? Exact::off : Exact::automatic;
  }
  o.chunk = c.get<int64_t>("chunk", 0);
  if (c.find("chunk")) {
    if (o.chunk <= 0) c.at("chunk").fail(cat("chunk must be positive (samples per chunk); got ", o.chunk));
    const int64_t chunks = o.batch / o.chunk;
    if (o.batch % o.chunk || (chunks & (chunks - 1)))
      c.at("chunk").fail(cat("chunk must cut the global batch (", o.batch,
                             ") into a power of two of whole chunks; got ", o.chunk, " (default ",
                             default_chunk(o.batch), ")"));
  }
  if (auto e = c.find("early_stop")) o.early_stop = EarlyStop::parse(*e);
  if (c.find("precision"))
    o.precision = c.choice("precision", {"fp32", "bf16"}, "fp32") == "bf16" ? Precision::bf16 : Precision::fp32;
  o.eval_batches = c.get<int64_t>("eval_batches", 0);
  if (o.eval_batches < 0)
    c.at("eval_batches").fail(cat("eval_batches must be >= 0 (0: the whole held-out set); got ", o.eval_batches));
  c.finish();
  return o;
}

Trainer::Trainer(Net& net, const Loss& loss, Optimizer& opt, Schedule& schedule, comm::Communicator& comm,
                 const TrainOptions& options)
    : net_(net),
      loss_(loss),
      opt_(opt),
      schedule_(schedule),
      comm_(comm),
      o_(options),
      sync_(comm.gradient_exchange(static_cast<int64_t>(net.grads().size()),
                                   static_cast<int64_t>(options.bucket_mb * (1 << 20) / 4))) {
  comm_.set_timeout(o_.comm_timeout);
  if (o_.batch < comm_.size())
    throw ConfigError(cat("train.batch is ", o_.batch, ", fewer than the ", comm_.size(),
                          " ranks: the batch is global, each rank takes batch/ranks rows; raise it to at least ",
                          comm_.size()));
  const int64_t local = (o_.batch + comm_.size() - 1) / comm_.size();
  if (!net_.built()) throw Error("Trainer: build the Net first");
  if (net_.max_batch() < local)
    throw Error(cat("Trainer: the Net was built for ", net_.max_batch(), " rows; this rank needs ", local));
  if (o_.accumulate > 1) accum_ = Tensor(Shape{static_cast<int64_t>(net_.grads().size())});
  reducer_.sync = sync_.get();
  for (size_t i = 0; i < net_.size(); ++i) reduces_ = reduces_ || net_.layer(i).reduces_across_ranks();
  exact_ = plan_exactness(o_, net_, comm_.size());
  if (exact_.exact && comm_.size() > 1) comm_.set_ordered(true);
  for (const auto& p : net_.param_info())
    if (p.average_over_ranks) buffer_scratch_.resize(buffer_scratch_.size() + static_cast<size_t>(p.size));
}

void Trainer::average_buffers() {
  if (comm_.size() == 1 || buffer_scratch_.empty()) return;
  const std::span<float> state = net_.state();
  size_t k = 0;
  for (const auto& p : net_.param_info())
    if (p.average_over_ranks)
      for (int64_t i = 0; i < p.size; ++i) buffer_scratch_[k++] = state[static_cast<size_t>(p.offset + i)];
  {
    comm::ScopedActivity act("the averaging of per-rank buffers (batch-norm running statistics)");
    comm_.allreduce_sum(std::span<double>(buffer_scratch_));
  }
  const double inv = 1.0 / comm_.size();
  k = 0;
  for (const auto& p : net_.param_info())
    if (p.average_over_ranks)
      for (int64_t i = 0; i < p.size; ++i)
        state[static_cast<size_t>(p.offset + i)] = static_cast<float>(buffer_scratch_[k++] * inv);
}

void Trainer::check_data(const BatchSource& data) const {
  if (data.sample_shape() != net_.input_shape())
    throw ShapeError(cat(data.name(), ": samples have shape ", data.sample_shape().str(), " but model.input is ",
                         net_.input_shape().str()));
  if (data.size() <= 0) throw DataError(cat(data.name(), ": the data set is empty"));
  if (loss_.targets_are_inputs()) {
    if (net_.output_shape() != net_.input_shape())
      throw ShapeError(cat("the loss reconstructs the input (", loss_.type(),
                           " with target: input): the network must output the input's shape ", net_.input_shape().str(),
                           ", not ", net_.output_shape().str()));
    return;
  }
  loss_.check(net_.output_shape(), data.num_classes());
  if (data.num_classes() == 0 && data.target_shape() != net_.output_shape())
    throw ShapeError(cat(data.name(), ": targets have shape ", data.target_shape().str(), " but the network outputs ",
                         net_.output_shape().str()));
}

// Copies a batch into the Net's input; returns the targets the loss reads.
Targets Trainer::load(const Batch& b) {
  if (b.rows > 0) {
    if (b.rows > net_.max_batch())
      throw Error(cat("Trainer: a batch of ", b.rows, " rows for a Net built for ", net_.max_batch()));
    TensorView in = net_.input(b.rows);
    std::copy(b.x.data(), b.x.data() + in.numel(), in.data());
  }
  if (loss_.targets_are_inputs()) return Targets{nullptr, net_.input(std::max<int64_t>(b.rows, 1))};
  return Targets{b.labels, b.targets};
}

void Trainer::set_start(int64_t epoch, int64_t batch, int64_t step, std::vector<EpochMetrics> history) {
  start_epoch_ = epoch;
  start_batch_ = batch;
  step_ = step;
  history_ = std::move(history);
}

Evaluation evaluate(Net& net, const Loss& loss, BatchSource& data, comm::Communicator& comm, uint64_t seed,
                    uint64_t step, int64_t chunk, int64_t max_batches, const EvalProgress& progress) {
  Evaluation e;
  const int64_t K = data.num_classes();
  const bool classify = K > 0 && net.output_shape().numel() == K && !loss.targets_are_inputs();
  if (classify) e.classes = K;
  std::vector<double> confusion(static_cast<size_t>(e.classes * e.classes), 0.0);
  StepContext ctx{false, seed, step, 0};
  ctx.chunk = chunk;
  data.start(0, 0);
  Batch b;
  LossStats total;
  // The worst mistakes so far: a heap whose top is the mildest of them.
  std::vector<Evaluation::Mistake> worst;
  const auto by_loss = [](const Evaluation::Mistake& a, const Evaluation::Mistake& b) {
    return a.loss > b.loss || (a.loss == b.loss && a.index < b.index);
  };
  const int64_t batches = max_batches > 0 ? std::min(max_batches, data.batches_per_epoch()) : data.batches_per_epoch();
  for (int64_t done = 0; done < batches && data.next(b); ++done) {
    if (progress) progress(done, batches);
    if (b.rows == 0) continue;
    if (b.rows > net.max_batch())
      throw Error(cat("evaluate: a batch of ", b.rows, " rows for a Net built for ", net.max_batch()));
    TensorView in = net.input(b.rows);
    std::copy(b.x.data(), b.x.data() + in.numel(), in.data());
    ctx.first_sample = b.first_sample;
    const ConstTensorView y = net.forward(b.rows, ctx);
    const Targets t = loss.targets_are_inputs() ? Targets{nullptr, net.input(b.rows)} : Targets{b.labels, b.targets};
    total += loss.evaluate(y, t, TensorView(), 1.0f);
    if (classify && b.labels)
      for (int64_t r = 0; r < b.rows; ++r) {
        const float* row = y.data() + r * K;
        const int64_t pred = std::max_element(row, row + K) - row;
        confusion[static_cast<size_t>(b.labels[r] * K + pred)] += 1;
        if (pred != b.labels[r]) {  // (an evaluation's order is the data set's)
          const double l =
              loss.evaluate(ConstTensorView(row, Shape{1, K}), Targets{b.labels + r, {}}, TensorView(), 1).loss;
          worst.push_back({b.first_sample + r, b.labels[r], pred, l});
          std::push_heap(worst.begin(), worst.end(), by_loss);
          if (static_cast<int64_t>(worst.size()) > Evaluation::kWorst) {
            std::pop_heap(worst.begin(), worst.end(), by_loss);
            worst.pop_back();
          }
        }
      }
  }
  if (progress) progress(batches, batches);
  double sums[3] = {total.loss, static_cast<double>(total.correct), static_cast<double>(total.count)};
  comm::ScopedActivity act("the evaluation's sums");
  comm.allreduce_sum(std::span<double>(sums, 3));
  if (!confusion.empty()) comm.allreduce_sum(std::span<double>(confusion));
  e.stats = {sums[0], static_cast<int64_t>(sums[1]), static_cast<int64_t>(sums[2])};
  e.confusion.assign(confusion.begin(), confusion.end());
  if (classify) {
    // Every rank's worst in its own slots (index + 1, label, prediction, loss; 0: none),
    // summed: all ranks get all, and keep the worst of them in the same order.
    const auto W = static_cast<size_t>(comm.size()), k = static_cast<size_t>(Evaluation::kWorst);
    std::vector<double> slots(W * k * 4, 0.0);
    for (size_t i = 0; i < worst.size(); ++i) {
      double* s = &slots[(static_cast<size_t>(comm.rank()) * k + i) * 4];
      s[0] = static_cast<double>(worst[i].index + 1), s[1] = static_cast<double>(worst[i].label),
      s[2] = static_cast<double>(worst[i].predicted), s[3] = worst[i].loss;
    }
    if (W > 1) comm.allreduce_sum(std::span<double>(slots));
    for (size_t i = 0; i < W * k; ++i)
      if (slots[i * 4] > 0)
        e.worst.push_back({static_cast<int64_t>(slots[i * 4]) - 1, static_cast<int64_t>(slots[i * 4 + 1]),
                           static_cast<int64_t>(slots[i * 4 + 2]), slots[i * 4 + 3]});
    std::sort(e.worst.begin(), e.worst.end(), by_loss);
    if (static_cast<int64_t>(e.worst.size()) > Evaluation::kWorst) e.worst.resize(k);
  }
  return e;
}

LossStats Trainer::evaluate(BatchSource& data, int64_t max_batches) { return evaluate_full(data, max_batches).stats; }

Evaluation Trainer::evaluate_full(BatchSource& data, int64_t max_batches) {
  check_data(data);
  EvalProgress progress;
  if (eval_hook_) progress = [&](int64_t done, int64_t total) { eval_hook_(data, done, total); };
  return hubel::evaluate(net_, loss_, data, comm_, o_.seed, static_cast<uint64_t>(step_), exact_.chunk, max_batches,
                         progress);
}

Trainer::StepOutcome Trainer::step(BatchSource& train, int64_t epoch, int64_t steps_per_epoch) {
  // Losses are summed (scale 1), gradients too; the optimizer divides by the rows.
  StepOutcome out;
  int64_t& rows_total = out.rows;
  LossStats& stats = out.stats;
  double& lr = out.lr;
  Batch b;
  const auto s0 = std::chrono::steady_clock::now();
  const std::span<float> grads = net_.grads();
  // Exact with accumulation: each micro-batch's gradient is summed over ranks before the
  // micro-batches are added (in order, on every rank alike), so the sum does not depend on
  // how the rows were spread.
  const bool sync_each = o_.accumulate > 1 && exact_.exact && comm_.size() > 1;
  double waited = 0;
  auto finish_sync = [&] {
    const auto w0 = std::chrono::steady_clock::now();
    sync_->finish();
    waited += seconds_since(w0);
  };
  if (!sync_each) sync_->begin(grads, step_);
  comm_.note_step(step_);
  for (int64_t micro = 0; micro < o_.accumulate; ++micro) {
    const auto d0 = std::chrono::steady_clock::now();
    const bool got = train.next(b);
    times_.data += seconds_since(d0);
    if (!got) break;
    ++out.batches;
    lr = schedule_.lr({epoch, step_, steps_per_epoch});
    StepContext ctx{true,
                    o_.seed,
                    static_cast<uint64_t>(step_),
                    b.first_sample,
                    comm_.size() > 1 ? &reducer_ : nullptr,
                    exact_.chunk,
                    exact_.chunks};
    const bool last = micro + 1 == o_.accumulate;
    // Layers that reduce across ranks need every rank in every step: a final batch
    // smaller than the number of ranks (some ranks would have no rows) is skipped; in an
    // exact run, where the rows sit at the chunks' places, any final batch smaller than
    // the global batch is.
    const bool skip = reduces_ && b.rows_global < (exact_.exact ? o_.batch : comm_.size());
    if (sync_each) sync_->begin(grads, step_);
    if (b.rows > 0 && !skip) {
      const Targets t = load(b);
      ConstTensorView y = net_.forward(b.rows, ctx);
      const auto l0 = std::chrono::steady_clock::now();
      const LossStats s = loss_.evaluate(y, t, net_.output_grad(b.rows), 1.0f);
      times_.loss += seconds_since(l0);
      if (!std::isfinite(s.loss)) {
        const auto bad = net_.first_nonfinite_output(b.rows);
        throw NumericError(
            cat("the loss became ", s.loss, " at epoch ", epoch + 1, ", step ", step_ + 1, " (rank ", comm_.rank(), ")",
                bad ? cat("; the first non-finite value is in ", bad->what) : std::string(),
                ": training diverged; lower optimizer.lr (now ", lr, "), add clip_norm, or check the data"));
      }
      stats += s;
      // Each bucket's allreduce starts as soon as backward has filled it (with accumulation,
      // only where each micro-batch is summed over ranks).
      if (o_.accumulate == 1 || sync_each)
        net_.backward(b.rows, ctx, [&](int64_t done) { sync_->ready(done); });
      else
        net_.backward(b.rows, ctx);
    } else {
      std::fill(grads.begin(), grads.end(), 0.0f);
    }
    if (sync_each) finish_sync();
    if (o_.accumulate > 1) {
      float* acc = accum_.data();
      const float* g = grads.data();
      const bool first = micro == 0;
      parallel_chunks(static_cast<int64_t>(grads.size()), 16384, [&](int64_t b0, int64_t b1) {
        for (int64_t j = b0; j < b1; ++j) acc[j] = first ? g[j] : acc[j] + g[j];
      });
    }
    if (!skip) rows_total += b.rows_global;
    if (last) break;
  }
  if (rows_total == 0) return out;  // on every rank alike (rows_global): nothing was started
  if (o_.accumulate > 1) std::copy(accum_.data(), accum_.data() + grads.size(), grads.data());
  if (!sync_each) finish_sync();
  out.comm_wait = waited;
  times_.comm_wait += waited;

  // A non-finite gradient (after the allreduce, so every rank agrees) stops training
  // before it reaches the weights.
  if (!all_finite(grads))
    if (const auto bad = net_.first_nonfinite_gradient())
      throw NumericError(cat("a non-finite gradient at epoch ", epoch + 1, ", step ", step_ + 1, ": the first is in ",
                             bad->what, "; training diverged: lower optimizer.lr (now ", lr,
                             "), add optimizer.clip_norm, or check the data"));
  const auto o0 = std::chrono::steady_clock::now();
  opt_.step(net_.params(), grads, static_cast<float>(lr), 1.0f / static_cast<float>(rows_total));
  average_buffers();
  times_.optimizer += seconds_since(o0);
  times_.total += seconds_since(s0);
  ++times_.steps;
  ++step_;
  return out;
}

std::vector<EpochMetrics> Trainer::fit(BatchSource& train, BatchSource* test,
                                       const std::function<void(const EpochMetrics&)>& on_epoch) {
  check_data(train);
  if (test) check_data(*test);
  if (schedule_.watches_loss() && !schedule_.watches_train_loss() && (!test || test->size() == 0))
    throw ConfigError(
        "schedule: plateau watches the held-out loss but the data has no held-out split; add one, or set "
        "schedule.monitor: train_loss");
  if (schedule_.has_momentum() && !opt_.set_momentum(*schedule_.momentum(0)))
    throw ConfigError(cat("schedule.momentum needs an optimizer with momentum (sgd); optimizer.type is ", opt_.type()));
  const int64_t steps_per_epoch = std::max<int64_t>(1, (train.batches_per_epoch() + o_.accumulate - 1) / o_.accumulate);
  std::vector<EpochMetrics> history = history_;
  bool stop = false;
  stop_epoch_ = o_.epochs;
  stop_batch_ = 0;
  early_stop_reason_.clear();
  if (o_.early_stop && o_.early_stop->monitor.needs_heldout() && !test)
    throw ConfigError(cat("train.early_stop watches ", o_.early_stop->monitor.metric,
                          " but the run has no held-out set (data.val or data.val_fraction); or monitor train_loss"));
  // The training split's one-time read into memory, before the first epoch's clock starts.
  if (start_epoch_ < o_.epochs) train.prepare();
  for (int64_t epoch = start_epoch_; epoch < o_.epochs && !stop; ++epoch) {
    // Early stopping decides on the history alone, so a resumed run stops where the
    // uninterrupted one did (also when it resumes from the checkpoint of that epoch).
    if (o_.early_stop && !(early_stop_reason_ = o_.early_stop->reason_to_stop(history)).empty()) {
      stop_epoch_ = epoch;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    LossStats stats;
    double lr = schedule_.lr({epoch, step_, steps_per_epoch});
    const auto momentum = schedule_.momentum(epoch);
    if (momentum) opt_.set_momentum(*momentum);
    int64_t seen = 0, steps_this_epoch = 0;
    double wait_seconds = 0;
    // A resumed run starts its first epoch where the checkpoint stopped.
    int64_t batches_done = epoch == start_epoch_ ? std::min(start_batch_, train.batches_per_epoch()) : 0;
    if (batches_done == train.batches_per_epoch() && batches_done > 0) continue;  // stopped right at its end
    train.start(epoch, batches_done);
    bool interrupted = false;
    while (true) {
      if (o_.max_steps && step_ >= o_.max_steps) {
        stop = true;
        stop_epoch_ = epoch;
        stop_batch_ = batches_done;
        break;
      }
      const StepOutcome st = step(train, epoch, steps_per_epoch);
      batches_done += st.batches;
      if (st.rows == 0) break;
      stats += st.stats;
      lr = st.lr;
      wait_seconds += st.comm_wait;
      ++steps_this_epoch;
      seen += st.rows;
      progress_ = {epoch,
                   batches_done,
                   train.batches_per_epoch(),
                   stats,
                   lr,
                   seen,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
      if (step_hook_ && step_hook_(epoch, batches_done, step_)) {
        stop = interrupted = true;
        stop_epoch_ = epoch;
        stop_batch_ = batches_done;
        break;
      }
    }
    // Stopped inside the epoch by the hook (a checkpoint on a signal): its metrics would be
    // partial; the resumed run reports the epoch.
    if (interrupted && batches_done < train.batches_per_epoch()) break;
    if (seen == 0) break;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // With the sums, each rank's busy time per step (the step without the wait for the
    // others' gradients) in its own slot: the slowest rank is the one the others wait for.
    epoch_sums_.assign(3 + static_cast<size_t>(comm_.size()), 0.0);
    double* sums = epoch_sums_.data();
    sums[0] = stats.loss, sums[1] = static_cast<double>(stats.correct), sums[2] = static_cast<double>(stats.count);
    sums[3 + comm_.rank()] =
        1e3 * (seconds - wait_seconds) / static_cast<double>(std::max<int64_t>(1, steps_this_epoch));
    {
      comm::ScopedActivity act("the epoch's training metrics");
      comm_.allreduce_sum(std::span<double>(epoch_sums_));
    }
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.steps = step_;
    m.lr = lr;
    m.momentum = momentum ? *momentum : -1.0;
    m.train_loss = sums[0] / sums[2];
    m.train_accuracy = sums[1] / sums[2];
    m.seconds = seconds;
    m.samples_per_second = static_cast<double>(seen) / seconds;
    m.comm_wait_ms = steps_this_epoch ? 1e3 * wait_seconds / static_cast<double>(steps_this_epoch) : 0;
    m.busy_ms_min = m.busy_ms_max = sums[3];
    for (int r = 0; r < comm_.size(); ++r) {
      m.busy_ms_min = std::min(m.busy_ms_min, sums[3 + r]);
      if (sums[3 + r] > m.busy_ms_max) m.busy_ms_max = sums[3 + r], m.slowest_rank = r;
    }
    m.partial = batches_done < train.batches_per_epoch();
    if (test) {
      const LossStats t = evaluate(*test, o_.eval_batches);
      m.has_test = true;
      m.test_loss = t.loss / static_cast<double>(t.count);
      m.test_accuracy = static_cast<double>(t.correct) / static_cast<double>(t.count);
    }
    if (schedule_.watches_loss())
      m.lr_reduced = schedule_.end_epoch(schedule_.watches_train_loss() ? m.train_loss : m.test_loss);
    history.push_back(m);
    if (on_epoch) on_epoch(m);
    if (o_.early_stop && epoch + 1 < o_.epochs && !stop &&
        !(early_stop_reason_ = o_.early_stop->reason_to_stop(history)).empty())
      stop_epoch_ = epoch + 1, stop = true;
  }
  return history;
}

}  // namespace hubel
