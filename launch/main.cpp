// The hubel command: `hubel train EXP`, `hubel summary EXP`.
// Exit codes: 0 success; 1 a usage or input error (bad options, experiment file, data);
// 2 a failure during training (divergence, I/O, MPI).
#include <boost/program_options.hpp>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "comm/mpi_communicator.hpp"
#include "datasets/convert.hpp"
#include "datasets/loader.hpp"
#include "datasets/open.hpp"
#include "framework/checkpoint.hpp"
#include "framework/error.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/run_lock.hpp"
#include "framework/runtime.hpp"
#include "framework/schedule.hpp"
#include "framework/stall.hpp"
#include "framework/trainer.hpp"
#include "launch/report.hpp"
#include "launch/run_log.hpp"
#include "launch/visualize.hpp"
#include "datasets/subset.hpp"
#include "layers/builtin.hpp"
#include "layers/gemm_kernels.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace hubel;
using hubel::launch::RunLog;

namespace {

constexpr int kOk = 0, kInputError = 1, kTrainingError = 2;

const char* kUsage =
    "usage: hubel <command> [options]\n"
    "\n"
    "commands:\n"
    "  train EXP      train the model an experiment file describes\n"
    "  summary EXP    print the model: layers, output shapes, parameter counts, FLOPs\n"
    "  eval EXP --checkpoint FILE\n"
    "                 loss, accuracy and confusion matrix of a checkpoint on a split\n"
    "  inspect FILE   a checkpoint: experiment, position, metrics, parameters (--export-weights OUT.h5)\n"
    "  visualize CHECKPOINT --sample K\n"
    "                 PNG images of the first convolution's filters and every convolution and\n"
    "                 pooling layer's feature maps for sample K\n"
    "  convert idx|cifar10 DIR OUT.h5\n"
    "                 convert IDX (MNIST, Fashion-MNIST) or CIFAR-10 binary files to HDF5\n"
    "\n"
    "`hubel <command> --help` lists a command's options. Under mpirun or srun, train runs\n"
    "data-parallel on every rank; without them it is a one-rank run.\n"
    "exit codes: 0 success, 1 usage or input error, 2 failure during training\n";

struct Common {
  std::string experiment;
  std::vector<std::string> sets;
  int threads = 0;
  long long seed = -1;
  std::string run_dir;
  po::variables_map vm;
};

po::options_description common_options(Common& c) {
  po::options_description d("options");
  d.add_options()("help,h", "show this help")(
      "set", po::value(&c.sets)->composing(), "override an experiment value: --set optimizer.lr=0.05 (repeatable)")(
      "threads", po::value(&c.threads), "worker threads of this rank (default: the cores it may use)")(
      "seed", po::value(&c.seed), "the seed (same as --set train.seed=N)");
  return d;
}

// Parses options and the positional arguments, bound in order to `positional`. Options are
// never abbreviated: --thread is a typo, not --threads.
po::variables_map parse_command(int argc, char** argv, const po::options_description& opts,
                                const std::vector<std::pair<const char*, std::string*>>& positional) {
  po::positional_options_description pos;
  po::options_description hidden;
  for (const auto& [name, target] : positional) {
    pos.add(name, 1);
    hidden.add_options()(name, po::value(target));
  }
  po::options_description all;
  all.add(opts).add(hidden);
  po::variables_map vm;
  const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).style(style).run(), vm);
  po::notify(vm);
  return vm;
}

// Parses `hubel <cmd> EXP [options]` into c (c.vm keeps the switches); returns false when
// help was printed.
bool parse(int argc, char** argv, const std::string& cmd, po::options_description& opts, Common& c) {
  const po::variables_map vm = parse_command(argc, argv, opts, {{"experiment", &c.experiment}});
  c.vm = vm;
  if (vm.count("help")) {
    std::cout << "usage: hubel " << cmd << " EXPERIMENT.yaml [options]\n\n" << opts;
    return false;
  }
  if (c.experiment.empty()) throw po::error("missing the experiment file: hubel " + cmd + " EXPERIMENT.yaml");
  if (c.threads < 0) throw po::error("--threads must be positive");
  if (c.seed >= 0) c.sets.push_back("train.seed=" + std::to_string(c.seed));
  return true;
}

int cmd_summary(int argc, char** argv) {
  Common c;
  auto opts = common_options(c);
  if (!parse(argc, argv, "summary", opts, c)) return kOk;
  Experiment exp = Experiment::load(c.experiment, c.sets);
  Model model = build_model(exp.model, layers::builtin_registry());
  std::cout << "model of " << c.experiment << " (loss: " << model.loss->type() << ")\n";
  model.net.summary(std::cout);
  return kOk;
}

int cmd_inspect(int argc, char** argv) {
  std::string file, out;
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")("export-weights", po::value(&out),
                                                  "write the weights alone (/model) to this HDF5 file");
  const po::variables_map vm = parse_command(argc, argv, opts, {{"file", &file}});
  if (vm.count("help")) {
    std::cout << "usage: hubel inspect CHECKPOINT.h5 [--export-weights OUT.h5]\n\n" << opts;
    return kOk;
  }
  if (file.empty()) throw po::error("missing the checkpoint: hubel inspect CHECKPOINT.h5");
  verify_checkpoint(file);  // all of it: inspect is where a user asks whether a file is whole
  const CheckpointMeta m = read_checkpoint_meta(file);
  const auto params = read_checkpoint_params(file);
  std::cout << file << ": hubel checkpoint written by hubel " << m.hubel_version << " on " << m.ranks << " rank(s)\n"
            << "position: epoch " << m.epoch + 1 << ", " << m.batch << " minibatches into it, step " << m.step << ", seed "
            << m.seed << "\n";
  if (!m.history.empty()) {
    std::cout << "metrics:\n  epoch    steps        lr  train_loss  train_acc   test_loss   test_acc\n";
    for (const auto& h : m.history)
      std::cout << std::fixed << std::setprecision(4) << "  " << std::setw(5) << h.epoch << std::setw(9) << h.steps << std::setw(10)
                << h.lr << std::setw(12) << h.train_loss << std::setw(11) << h.train_accuracy << std::setw(12)
                << (h.has_test ? h.test_loss : 0.0) << std::setw(11) << (h.has_test ? h.test_accuracy : 0.0) << "\n";
  }
  std::cout << "parameters:\n";
  int64_t total = 0;
  for (const auto& p : params) {
    double sq = 0;
    for (float v : p.values) sq += static_cast<double>(v) * v;
    total += static_cast<int64_t>(p.values.size());
    std::cout << "  " << std::left << std::setw(24) << p.name << std::setw(18) << p.shape.str() << std::right << std::setw(10)
              << p.values.size() << "  norm " << std::setprecision(4) << std::sqrt(sq) << "\n";
  }
  std::cout << "  total " << total << " parameters\n";
  std::cout << "experiment:\n" << m.experiment << (m.experiment.empty() || m.experiment.back() == '\n' ? "" : "\n");
  if (!out.empty()) {
    export_weights(out, file);
    std::cout << "weights written to " << out << "\n";
  }
  return kOk;
}

int cmd_eval(int argc, char** argv, comm::Communicator& comm) {
  Common c;
  std::string checkpoint, split = "test";
  auto opts = common_options(c);
  opts.add_options()("checkpoint", po::value(&checkpoint), "the checkpoint (or exported weights) to evaluate")(
      "split", po::value(&split), "the data split: test (default), train, or val");
  if (!parse(argc, argv, "eval", opts, c)) return kOk;
  if (checkpoint.empty()) throw po::error("missing --checkpoint FILE");
  Experiment exp = Experiment::load(c.experiment, c.sets);
  Model model = build_model(exp.model, layers::builtin_registry());
  datasets::Splits data = datasets::open(exp.data);
  const datasets::Dataset* set = split == "train" ? data.train.get() : split == "test" ? data.test.get() : split == "val" && data.heldout_name == "val" ? data.heldout.get() : nullptr;
  if (!set) throw ConfigError(cat("the experiment's data has no '", split, "' split"));
  Runtime runtime(c.threads);
  const int64_t local = (exp.train.batch + comm.size() - 1) / comm.size();
  model.net.build(local, exp.train.seed);
  load_checkpoint(checkpoint, model.net, nullptr, nullptr);
  datasets::Loader loader(*set, data.transform.get(), {exp.train.batch, comm.rank(), comm.size(), false, false, false, exp.train.seed, data.prefetch, data.timeout});
  Evaluation e;
  runtime.run([&] { e = evaluate(model.net, *model.loss, loader, comm, exp.train.seed); });
  const int64_t K = e.classes;
  const double sums[3] = {e.stats.loss, static_cast<double>(e.stats.correct), static_cast<double>(e.stats.count)};
  if (comm.rank() != 0) return kOk;
  std::cout << std::fixed << std::setprecision(4) << checkpoint << " on " << set->name() << ": " << static_cast<int64_t>(sums[2])
            << " samples, loss " << sums[0] / sums[2];
  if (model.loss->reports_accuracy(set->num_classes())) std::cout << ", accuracy " << sums[1] / sums[2];
  std::cout << "\n";
  if (K > 0 && K <= 100) {
    std::cout << "confusion matrix (rows: true class, columns: predicted):\n       ";
    for (int64_t j = 0; j < K; ++j) std::cout << std::setw(7) << j;
    std::cout << "\n";
    for (int64_t i = 0; i < K; ++i) {
      std::cout << std::setw(7) << i;
      for (int64_t j = 0; j < K; ++j) std::cout << std::setw(7) << e.confusion[static_cast<size_t>(i * K + j)];
      std::cout << "\n";
    }
  }
  return kOk;
}

int cmd_visualize(int argc, char** argv) {
  std::string file, out, split = "test", experiment;
  int64_t sample = 0;
  std::vector<std::string> sets;
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")("sample", po::value(&sample), "the sample of the split to draw (default 0)")(
      "split", po::value(&split), "test (default), train or val")(
      "out", po::value(&out), "the directory for the PNG files (default: <run dir>/visualize)")(
      "experiment", po::value(&experiment), "the experiment (default: the one the checkpoint holds)")(
      "set", po::value(&sets)->composing(), "override an experiment value, e.g. --set data.file=other.h5");
  const po::variables_map vm = parse_command(argc, argv, opts, {{"checkpoint", &file}});
  if (vm.count("help")) {
    std::cout << "usage: hubel visualize CHECKPOINT [--sample K] [options]\n\n" << opts;
    return kOk;
  }
  if (file.empty()) throw po::error("missing the checkpoint: hubel visualize CHECKPOINT --sample K");
  if (sample < 0) throw po::error("--sample must be >= 0");
  Config root = [&] {
    if (!experiment.empty()) return Config::load_file(experiment);
    const CheckpointMeta meta = read_checkpoint_meta(file);
    if (meta.experiment.empty()) throw ConfigError(cat(file, ": holds no experiment; name one with --experiment EXP.yaml"));
    return Config::parse(meta.experiment, file + " (its experiment)");
  }();
  for (const auto& s : sets) root.apply_override(s);
  Experiment exp = Experiment::from_config(root);
  Model model = build_model(exp.model, layers::builtin_registry());
  datasets::Splits data = datasets::open(exp.data);
  const datasets::Dataset* set = split == "train" ? data.train.get() : split == "test" ? data.test.get() : split == "val" && data.heldout_name == "val" ? data.heldout.get() : nullptr;
  if (!set) throw ConfigError(cat("the experiment's data has no '", split, "' split"));
  if (sample >= set->size()) throw po::error(cat("--sample ", sample, " is past the end of ", set->name(), " (", set->size(), " samples)"));
  model.net.build(1, exp.train.seed);
  load_checkpoint(file, model.net, nullptr, nullptr);
  // The sample, transformed as in evaluation.
  auto base = std::shared_ptr<const datasets::Dataset>(set, [](const datasets::Dataset*) {});
  datasets::Subset one(base, {sample}, cat("sample ", sample));
  datasets::Loader loader(one, data.transform.get(), {1, 0, 1, false, false, false, exp.train.seed, 0});
  loader.start(0);
  Batch b;
  if (!loader.next(b) || b.rows != 1) throw DataError(cat("cannot read sample ", sample, " of ", set->name()));
  std::copy(b.x.data(), b.x.data() + model.net.input(1).numel(), model.net.input(1).data());
  const ConstTensorView y = model.net.forward(1, {false, exp.train.seed, 0, 0});
  if (out.empty()) out = (fs::path(file).parent_path().parent_path() / "visualize").string();
  std::cout << set->name() << ", sample " << sample;
  if (b.labels) {
    const auto names = set->class_names();
    const int32_t label = b.labels[0];
    std::cout << ": class " << label;
    if (label >= 0 && static_cast<size_t>(label) < names.size()) std::cout << " (" << names[static_cast<size_t>(label)] << ")";
    if (y.stride0() == set->num_classes()) {
      const int64_t pred = std::max_element(y.data(), y.data() + y.stride0()) - y.data();
      std::cout << ", predicted " << pred;
      if (static_cast<size_t>(pred) < names.size()) std::cout << " (" << names[static_cast<size_t>(pred)] << ")";
    }
  }
  std::cout << "\n";
  for (const auto& p : launch::draw_network(model.net, out))
    std::cout << p.path << "  " << p.width << "x" << p.height << "  " << p.what << "\n";
  return kOk;
}

int cmd_convert(int argc, char** argv, comm::Communicator& comm) {
  std::string format, dir, out, classes;
  int compress = 0;
  int64_t chunk_rows = 256;
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")(
      "classes", po::value(&classes), "class names: mnist, fashion-mnist, cifar10, or a comma-separated list")(
      "compress", po::value(&compress), "gzip level 1-9 for the images (default 0: uncompressed, fastest to read)")(
      "chunk-rows", po::value(&chunk_rows), "samples per HDF5 chunk (default 256)")(
      "no-checksum", "leave out the Fletcher-32 checksums of the images and labels (on by default: damaged bytes are then an error)");
  const po::variables_map vm = parse_command(argc, argv, opts, {{"format", &format}, {"dir", &dir}, {"out", &out}});
  if (vm.count("help")) {
    std::cout << "usage: hubel convert idx DIR OUT.h5 [options]\n"
                 "       hubel convert cifar10 DIR OUT.h5 [options]\n\n"
                 "idx: DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and\n"
                 "     t10k-labels-idx1-ubyte, each optionally .gz (e.g. /usr/share/datasets/fashion-mnist)\n"
                 "cifar10: DIR holds data_batch_1.bin ... data_batch_5.bin and test_batch.bin\n"
                 "The output is written under a temporary name and renamed when complete.\n\n"
              << opts;
    return kOk;
  }
  if (format != "idx" && format != "cifar10")
    throw po::error(format.empty() ? "missing the input format: hubel convert idx|cifar10 DIR OUT.h5"
                                   : "unknown input format '" + format + "' (idx or cifar10)");
  if (dir.empty() || out.empty()) throw po::error("usage: hubel convert " + format + " DIR OUT.h5");
  if (compress < 0 || compress > 9) throw po::error("--compress must be 0 to 9");
  if (chunk_rows < 1) throw po::error("--chunk-rows must be positive");
  if (comm.rank() != 0) return kOk;
  datasets::ConvertOptions o;
  o.classes = classes;
  o.write.deflate = compress;
  o.write.chunk_rows = chunk_rows;
  o.write.checksum = vm.count("no-checksum") == 0;
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) throw DataError(cat("cannot create ", parent.string(), ": ", ec.message()));
  }
  const std::string summary = format == "idx" ? datasets::convert_idx_dir(dir, out, o) : datasets::convert_cifar10_dir(dir, out, o);
  std::cout << "wrote " << summary << "\n";
  return kOk;
}

// SIGTERM or SIGUSR1 (what schedulers send before a time limit): finish the step, write a
// checkpoint, exit 0.
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
  g_signal = sig;
}

struct CheckpointOptions {
  std::string dir;
  int64_t every_steps = 0, every_epochs = 1;
  double every_minutes = 0;
  int keep = 3;
};

CheckpointOptions read_checkpoint_options(const std::optional<Config>& c, const fs::path& run_dir) {
  CheckpointOptions o;
  o.dir = (run_dir / "checkpoints").string();
  if (!c || c->is_null()) return o;
  o.dir = c->get<std::string>("dir", o.dir);
  o.every_steps = c->get<int64_t>("every_steps", 0);
  o.every_epochs = c->get<int64_t>("every_epochs", 1);
  o.every_minutes = c->get<double>("every_minutes", 0);
  o.keep = c->get<int>("keep", 3);
  if (o.every_steps < 0) c->at("every_steps").fail("every_steps must be >= 0 (0: off)");
  if (o.every_epochs < 0) c->at("every_epochs").fail("every_epochs must be >= 0 (0: off)");
  if (!(o.every_minutes >= 0)) c->at("every_minutes").fail("every_minutes must be >= 0 (0: off)");
  if (o.keep < 1) c->at("keep").fail("keep must be at least 1");
  c->finish();
  return o;
}

// The experiment as run: the file's text, or, with --set overrides, the resolved YAML
// headed by the command line that made it.
std::string resolved_experiment(const Experiment& exp, const Common& c) {
  if (c.sets.empty()) return exp.root.text();
  std::string head = cat("# ", c.experiment, " as run with");
  for (const auto& s : c.sets) head += " --set " + s;
  return head + "\n" + exp.root.dump() + "\n";
}

int cmd_train(int argc, char** argv, comm::Communicator& comm) {
  Common c;
  std::string resume;
  double progress_seconds = 30;
  auto opts = common_options(c);
  opts.add_options()("progress-seconds", po::value(&progress_seconds),
                     "when standard error is not a terminal: seconds between progress lines (default 30)")("run-dir", po::value(&c.run_dir), "where metrics and the resolved experiment go (default: runs/<experiment name>)")(
      "resume", po::value(&resume), "continue from a checkpoint: a file, a checkpoint directory, or auto (the run's own)")(
      "weights-only", "with --resume: take only the weights, start the optimizer, schedule and data from the beginning")(
      "new-run", "start a new run in a run directory that holds another run's checkpoints (they and its logs are moved to checkpoints/previous-<time>/)")(
      "profile", "time every layer's forward and backward, the data wait, the allreduce wait and the optimizer; print a table at the end");
  if (!parse(argc, argv, "train", opts, c)) return kOk;
  if (!(progress_seconds > 0)) throw po::error("--progress-seconds must be positive");
  const bool weights_only = c.vm.count("weights-only") > 0;
  if (weights_only && resume.empty()) throw po::error("--weights-only needs --resume FILE");
  const bool root = comm.rank() == 0;

  // Everything is read and checked before anything is allocated or trained.
  Experiment exp = Experiment::load(c.experiment, c.sets);
  Model model = build_model(exp.model, layers::builtin_registry());
  datasets::Splits data = datasets::open(exp.data);
  Runtime runtime(c.threads);
  Net& net = model.net;
  const int64_t local_batch = (exp.train.batch + comm.size() - 1) / comm.size();
  net.build(local_batch, exp.train.seed);
  auto optimizer = Optimizer::create(exp.optimizer, net);
  auto schedule = Schedule::create(exp.schedule, optimizer->base_lr(), exp.train.epochs);
  Trainer trainer(net, *model.loss, *optimizer, *schedule, comm, exp.train);
  const fs::path run_dir = c.run_dir.empty() ? fs::path("runs") / fs::path(c.experiment).stem() : fs::path(c.run_dir);
  const CheckpointOptions ck = read_checkpoint_options(exp.checkpoint, run_dir);
  const CheckpointDir checkpoints(ck.dir, ck.keep);
  // One run at a time in a run directory (and in its checkpoint directory, when apart).
  std::unique_ptr<RunLock> run_lock, ck_lock;
  if (root) {
    run_lock = std::make_unique<RunLock>(run_dir.string());
    std::error_code ec;
    const fs::path rd = fs::weakly_canonical(run_dir, ec), cd = fs::weakly_canonical(ck.dir, ec);
    if (std::mismatch(rd.begin(), rd.end(), cd.begin(), cd.end()).first != rd.end()) ck_lock = std::make_unique<RunLock>(ck.dir);
  }
  std::vector<EpochMetrics> past;
  std::string resumed_from;
  std::string run_id;  // the lineage of this run's checkpoints
  // Fine-tuning: trained weights by name (a resumed run has its own instead).
  if (model.weights && resume.empty()) {
    const WeightsReport w = load_weights_by_name(model.weights->file, net, model.weights->exclude);
    if (root) {
      std::cout << "weights: " << w.values << " values from " << w.file;
      if (!w.fresh.empty()) std::cout << "; initialized fresh: " << join(w.fresh, ", ");
      if (!w.unused.empty()) std::cout << "; not in this model: " << join(w.unused, ", ");
      std::cout << "\n";
    }
  }
  int64_t resumed_step = -1;  // a full resume's position (its log is cut back to it)
  if (!resume.empty()) {
    std::optional<std::string> path;
    if (resume == "auto") path = checkpoints.newest_good();
    else if (fs::is_directory(resume)) path = CheckpointDir(resume, ck.keep).newest_good();
    else path = resume;
    if (!path && resume != "auto") throw DataError(cat(resume, ": no readable checkpoint there"));
    if (path) {
      resumed_from = *path;
      if (weights_only) {
        load_checkpoint(*path, net, nullptr, nullptr);
      } else {
        const CheckpointMeta meta = load_checkpoint(*path, net, optimizer.get(), schedule.get());
        run_id = meta.run_id;
        resumed_step = meta.step;
        if (meta.seed != exp.train.seed && root)
          std::cout << "note: the checkpoint was trained with seed " << meta.seed << "; continuing with train.seed "
                    << exp.train.seed << "\n";
        trainer.set_start(meta.epoch, meta.batch, meta.step, meta.history);
        past = meta.history;
      }
    } else if (root) {
      std::cout << "no checkpoint in " << ck.dir << ": starting from the beginning\n";
    }
  }
  // A new run never mixes its checkpoints with another run's: pruning would delete them
  // and `--resume auto` could pick them up.
  if (root) {
    const auto existing = checkpoints.list();
    bool same_lineage = false;
    if (resumed_step >= 0) {
      std::error_code ec;
      if (fs::equivalent(fs::path(resumed_from).parent_path(), ck.dir, ec)) same_lineage = true;
      for (const auto& [step, file] : existing) {
        if (same_lineage || run_id.empty()) break;
        try {
          same_lineage = read_checkpoint_meta(file).run_id == run_id;
        } catch (const Error&) {
        }
      }
    }
    if (!existing.empty() && !same_lineage) {
      if (!c.vm.count("new-run"))
        throw DataError(cat(ck.dir, " holds the checkpoints of another run (newest: ", fs::path(existing.front().second).filename().string(),
                            "): continue that run with --resume auto, train into another --run-dir, or start a new run here with "
                            "--new-run (which moves them and the run's logs to ", ck.dir, "/previous-<time>/)"));
      const std::string aside = checkpoints.move_aside();
      std::error_code ec;
      for (const char* f : {"metrics.jsonl", "metrics.csv", "report.html", "experiment.yaml"})
        if (fs::exists(run_dir / f, ec)) fs::rename(run_dir / f, fs::path(aside) / f, ec);
      std::cout << "new run: the previous run's checkpoints and logs moved to " << aside << "\n";
    }
  }
  if (run_id.empty()) run_id = new_run_id();
  // Every rank starts from rank 0's parameters and optimizer state.
  if (comm.size() > 1) {
    comm::ScopedActivity act("the broadcast of rank 0's starting state");
    comm.broadcast(net.state(), 0);
    for (auto& [name, state] : optimizer->state()) comm.broadcast(state, 0);
  }
  datasets::LoaderOptions lo{exp.train.batch, comm.rank(), comm.size(), exp.train.shuffle, data.drop_last, true,
                             exp.train.seed, data.prefetch, data.timeout};
  datasets::Loader train_loader(*data.train, data.transform.get(), lo);
  // Held-out and test sets: in order, every sample, no augmentation.
  datasets::LoaderOptions eval_lo = lo;
  eval_lo.shuffle = eval_lo.drop_last = eval_lo.augment = false;
  std::unique_ptr<datasets::Loader> heldout, test;
  if (data.heldout) heldout = std::make_unique<datasets::Loader>(*data.heldout, data.transform.get(), eval_lo);
  if (data.test && data.heldout_name != "test") test = std::make_unique<datasets::Loader>(*data.test, data.transform.get(), eval_lo);
  trainer.check_data(train_loader);
  if (heldout) trainer.check_data(*heldout);
  if (test) trainer.check_data(*test);

  const bool accuracy = model.loss->reports_accuracy(data.train->num_classes());
  // The experiment as run: the file, or with --set overrides applied.
  const std::string experiment_text = resolved_experiment(exp, c);
  std::optional<RunLog> log;
  if (root) {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec) throw DataError(cat("cannot create the run directory ", run_dir.string(), ": ", ec.message()));
    std::ofstream(run_dir / "experiment.yaml") << experiment_text;
    RunLog::Options lo;
    lo.dir = run_dir;
    lo.append = resumed_step >= 0;
    // The log goes back to the checkpoint's step: what came after it is trained again.
    if (lo.append) RunLog::cut_to_step(run_dir, resumed_step);
    lo.epochs = exp.train.epochs;
    lo.log_every = exp.train.log_every;
    lo.progress_seconds = progress_seconds;
    lo.accuracy = accuracy;
    lo.heldout_name = data.heldout_name;
    log.emplace(lo);
    if (!resumed_from.empty()) std::cout << "resumed from " << resumed_from << (weights_only ? " (weights only)" : "") << "\n";
    std::cout << "hubel " << HUBEL_VERSION << ": " << comm.size() << " rank(s) x " << runtime.threads() << " thread(s), "
              << (layers::kernel_width() ? std::to_string(layers::kernel_width()) + "-bit product kernels" : "BLAS products")
              << ", experiment " << c.experiment << "\n";
    std::cout << "data: " << data.train->name() << " " << data.train->size() << " samples of " << data.train->sample_shape().str();
    if (heldout) std::cout << "; held out (" << data.heldout_name << "): " << data.heldout->name() << " " << data.heldout->size() << " samples";
    if (test) std::cout << "; test: " << data.test->name() << " " << data.test->size() << " samples";
    std::cout << "\n";
    if (data.transform) std::cout << "transforms: " << data.transform->describe() << "\n";
    net.summary(std::cout);
    std::cout << "loss " << model.loss->type() << "; optimizer " << optimizer->describe() << "; schedule " << schedule->describe()
              << "; global batch " << exp.train.batch << ", " << exp.train.epochs << " epochs, seed " << exp.train.seed << "\n";
  }
  // Checkpoints: every K steps, every T minutes, every E epochs, on a signal, and at the end.
  CheckpointMeta meta;
  meta.seed = exp.train.seed;
  meta.ranks = comm.size();
  meta.experiment = experiment_text;
  meta.hubel_version = HUBEL_VERSION;
  meta.run_id = run_id;
  int64_t last_written = -1;
  auto write_checkpoint = [&](int64_t epoch, int64_t batch, int64_t step) {
    if (batch >= train_loader.batches_per_epoch()) ++epoch, batch = 0;
    meta.epoch = epoch;
    meta.batch = batch;
    meta.step = step;
    meta.schedule = schedule->state();
    meta.history = past;
    if (root) {
      std::string path;
      log->sync();  // the log reaches at least as far as the checkpoint
      try {
        path = checkpoints.write(net, *optimizer, *schedule, meta);
      } catch (const DataError& e) {
        // A failure during training (exit code 2), not an input error.
        throw Error(cat("writing the checkpoint of step ", step, " failed: ", e.what(), "; the previous checkpoints and ",
                        (fs::path(checkpoints.dir()) / "latest").string(), " are unchanged"));
      }
      log->note("checkpoint: " + path);
    }
    comm::ScopedActivity act("the checkpoint barrier");
    comm.barrier();  // no rank goes on before rank 0 has written (a failure there aborts all)
    last_written = step;
  };
  for (int sig : {SIGTERM, SIGUSR1, SIGUSR2, SIGINT}) std::signal(sig, on_signal);
  auto last_time = std::chrono::steady_clock::now();
  bool stopped_by_signal = false;
  bool checkpoint_at_epoch_end = false;  // due at an epoch's last step: written with its metrics
  trainer.set_step_hook([&](int64_t epoch, int64_t batches_done, int64_t step) {
    // Ranks agree on signals and on rank 0's clock: one tiny allreduce per step.
    const bool due = ck.every_minutes > 0 &&
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - last_time).count() >= 60 * ck.every_minutes;
    std::vector<double> flags{g_signal != 0 ? 1.0 : 0.0, root && due ? 1.0 : 0.0};
    if (comm.size() > 1) {
      comm::ScopedActivity act("the per-step agreement on signals and checkpoints");
      comm.allreduce_sum(flags);
    }
    const bool signalled = flags[0] > 0;
    if (log) log->step(trainer.progress(), step);  // before the checkpoint: see RunLog::cut_to_step
    if (signalled || flags[1] > 0 || (ck.every_steps > 0 && step % ck.every_steps == 0)) {
      if (batches_done >= train_loader.batches_per_epoch()) checkpoint_at_epoch_end = true;
      else write_checkpoint(epoch, batches_done, step);
      last_time = std::chrono::steady_clock::now();
    }
    stopped_by_signal = signalled;
    return signalled;
  });
  if (c.vm.count("profile")) net.set_profiling(true);
  launch::ReportInputs report;
  if (root) {
    std::ostringstream summary;
    net.summary(summary);
    report = {c.experiment, summary.str(), experiment_text, data.train->class_names(), "", 0, {}};
  }
  std::vector<EpochMetrics> history;
  runtime.run([&] {
    history = trainer.fit(train_loader, heldout.get(), [&](const EpochMetrics& m) {
      past.push_back(m);
      // (Not when max_steps cut the epoch short: the final checkpoint records where.)
      const bool cut = trainer.stop_epoch() == m.epoch - 1 && trainer.stop_batch() > 0;
      if (log) {
        log->epoch(m);
        launch::write_report(run_dir, report);
      }
      if (checkpoint_at_epoch_end || (!cut && ck.every_epochs > 0 && m.epoch % ck.every_epochs == 0)) write_checkpoint(m.epoch, 0, m.steps);
      checkpoint_at_epoch_end = false;
    });
  });
  if (stopped_by_signal) {
    if (root)
      std::cout << "stopped by signal " << g_signal << " at step " << trainer.step() << "; resume with: hubel train "
                << c.experiment << " --resume auto" << (c.run_dir.empty() ? "" : " --run-dir " + c.run_dir) << "\n";
    return kOk;
  }
  if (last_written != trainer.step() && trainer.step() > 0) write_checkpoint(trainer.stop_epoch(), trainer.stop_batch(), trainer.step());
  // A val split guided training: the test split is measured once, at the end.
  // The final evaluation on the test split (the held-out one if there is no test split),
  // with its confusion matrix for the report.
  double test_accuracy = -1, test_loss = -1;
  datasets::Loader* final_set = test ? test.get() : heldout.get();
  if (final_set && !history.empty()) {
    Evaluation e;
    runtime.run([&] { e = trainer.evaluate_full(*final_set); });
    const double n = static_cast<double>(std::max<int64_t>(1, e.stats.count));
    if (test || data.heldout_name == "test") {
      test_accuracy = static_cast<double>(e.stats.correct) / n;
      test_loss = e.stats.loss / n;
    }
    if (root) {
      log->test(e.stats.loss / n, static_cast<double>(e.stats.correct) / n, e.stats.count);
      report.eval_name = test ? "test" : data.heldout_name;
      report.classes = e.classes;
      report.confusion = e.confusion;
    }
  }
  if (root) launch::write_report(run_dir, report);
  if (root && c.vm.count("profile"))
    std::cout << launch::format_profile(net.layer_times(), trainer.step_times(), static_cast<double>(exp.train.batch) / comm.size());
  if (root && !history.empty()) {
    const auto& last = history.back();
    std::cout << "done: " << last.steps << " steps";
    if (accuracy && last.has_test && data.heldout_name == "val")
      std::cout << std::fixed << std::setprecision(4) << ", val accuracy " << last.test_accuracy;
    if (accuracy && test_accuracy >= 0) std::cout << std::fixed << std::setprecision(4) << ", test accuracy " << test_accuracy;
    if (!accuracy && test_loss >= 0) std::cout << std::setprecision(6) << ", test loss " << test_loss;
    std::cout << "\nrun directory: " << fs::absolute(run_dir).string()
              << " (report.html, metrics.jsonl, metrics.csv, experiment.yaml, checkpoints/)\n";
  }
  return kOk;
}

// A wait that outlived its bound (the loader thread): the message, then every rank stops.
comm::Communicator* g_comm = nullptr;
void stop_on_stall(const std::string& message) {
  const int rank = g_comm ? g_comm->rank() : 0, size = g_comm ? g_comm->size() : 1;
  const std::string line = (size > 1 ? cat("hubel (rank ", rank, "): error: ") : std::string("hubel: error: ")) + message + "\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  ::alarm(5);  // should MPI_Abort itself hang, SIGALRM ends the process
  if (size > 1) static_cast<comm::MpiCommunicator&>(*g_comm).abort(kTrainingError);
  std::_Exit(kTrainingError);
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<comm::Communicator> comm;
  try {
    comm = comm::make_communicator(&argc, &argv);
  } catch (const std::exception& e) {
    std::cerr << "hubel: error: " << e.what() << "\n";
    return kTrainingError;
  }
  g_comm = comm.get();
  set_stall_handler(stop_on_stall);
  // A file that outgrows `ulimit -f` is a write error (EFBIG) hubel reports, not a signal
  // that kills it.
  std::signal(SIGXFSZ, SIG_IGN);
  const std::string prefix = comm->size() > 1 ? cat("hubel (rank ", comm->rank(), "): error: ") : "hubel: error: ";
  int code = kOk;
  try {
    if (argc < 2) {
      std::cerr << kUsage;
      return kInputError;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::cout << kUsage;
      return kOk;
    }
    if (cmd == "--version" || cmd == "version") {
      std::cout << "hubel " << HUBEL_VERSION << "\n";
      return kOk;
    }
    if (cmd == "train") code = cmd_train(argc - 1, argv + 1, *comm);
    else if (cmd == "summary") code = cmd_summary(argc - 1, argv + 1);
    else if (cmd == "convert") code = cmd_convert(argc - 1, argv + 1, *comm);
    else if (cmd == "inspect") code = cmd_inspect(argc - 1, argv + 1);
    else if (cmd == "visualize") code = cmd_visualize(argc - 1, argv + 1);
    else if (cmd == "eval") code = cmd_eval(argc - 1, argv + 1, *comm);
    else throw po::error("unknown command '" + cmd + "'");
  } catch (const po::error& e) {
    std::cerr << prefix << e.what() << "\n\n" << kUsage;
    code = kInputError;
  } catch (const ConfigError& e) {
    std::cerr << prefix << e.what() << "\n";
    code = kInputError;
  } catch (const ShapeError& e) {
    std::cerr << prefix << e.what() << "\n";
    code = kInputError;
  } catch (const DataError& e) {
    std::cerr << prefix << e.what() << "\n";
    code = kInputError;
  } catch (const std::exception& e) {
    std::cerr << prefix << e.what() << "\n";
    code = kTrainingError;
  }
  // One failing rank stops all of them instead of leaving the others waiting.
  if (code != kOk && comm->size() > 1) static_cast<comm::MpiCommunicator&>(*comm).abort(code);
  return code;
}
