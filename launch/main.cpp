// The hubel command: `hubel train EXP`, `hubel summary EXP`.
// Exit codes: 0 success; 1 a usage or input error (bad options, experiment file, data);
// 2 a failure during training (divergence, I/O, MPI).
#include <tbb/parallel_for.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi_communicator.hpp"
#include "datasets/convert.hpp"
#include "datasets/encoded_images.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/images.hpp"
#include "datasets/loader.hpp"
#include "datasets/loaders.hpp"
#include "datasets/open.hpp"
#include "datasets/subset.hpp"
#include "framework/checkpoint.hpp"
#include "framework/error.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/run.hpp"
#include "framework/runtime.hpp"
#include "framework/schedule.hpp"
#include "framework/stall.hpp"
#include "framework/suggest.hpp"
#include "framework/trainer.hpp"
#include "inference/onnx_export.hpp"
#include "launch/inputs.hpp"
#include "launch/report.hpp"
#include "launch/visualize.hpp"
#include "layers/bf16_products.hpp"
#include "layers/builtin.hpp"
#include "layers/gemm_kernels.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace hubel;

namespace {

constexpr int kOk = 0, kInputError = 1, kTrainingError = 2;

const char* kUsage =
    "usage: hubel <command> [options]\n"
    "\n"
    "commands:\n"
    "  train EXP      train the model an experiment file describes\n"
    "  summary EXP    print the model (layers, output shapes, parameter counts, FLOPs) and\n"
    "                 check the whole experiment as train would\n"
    "  eval [EXP] --checkpoint CHECKPOINT\n"
    "                 loss, accuracy, per-class metrics and confusion matrix of a checkpoint\n"
    "                 (a file, a checkpoint directory or its latest) on a split\n"
    "  predict CHECKPOINT INPUT...\n"
    "                 the top classes of PNG/JPEG files, folders of them or DATA.h5:split\n"
    "  export CHECKPOINT MODEL.onnx\n"
    "                 the model as ONNX, its evaluation transform included\n"
    "  inspect FILE   a checkpoint: experiment, position, metrics, parameters (--export-weights OUT.h5)\n"
    "  visualize CHECKPOINT --sample K\n"
    "                 PNG images of the first convolution's filters and every convolution and\n"
    "                 pooling layer's feature maps for sample K\n"
    "  convert idx|cifar10|images DIR OUT.h5\n"
    "                 convert IDX (MNIST, Fashion-MNIST), CIFAR-10 binary files or image folders to HDF5\n"
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
  d.add_options()("help,h", "show this help")("set", po::value(&c.sets)->composing(),
                                              "override an experiment value: --set optimizer.lr=0.05 (repeatable)")(
      "threads", po::value(&c.threads), "worker threads of this rank (default: the cores it may use)")(
      "seed", po::value(&c.seed), "the seed (same as --set train.seed=N)");
  return d;
}

// Parses options and the positional arguments, bound in order to `positional`. Options are
// never abbreviated: --thread is a typo, not --threads.
// A command-line mistake in a subcommand: the message, and that subcommand's usage to show
// instead of the general one.
struct CommandError : po::error {
  CommandError(const std::string& what, std::string usage) : po::error(what), usage(std::move(usage)) {}
  std::string usage;
};

po::variables_map parse_command(int argc, char** argv, const po::options_description& opts,
                                const std::vector<std::pair<const char*, std::string*>>& positional,
                                const std::string& usage_line = {}) {
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
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).style(style).run(), vm);
    po::notify(vm);
  } catch (const po::unknown_option& e) {
    std::vector<std::string> names;
    for (const auto& o : opts.options()) names.push_back("--" + o->long_name());
    std::ostringstream usage;
    usage << usage_line << "\n\n" << opts;
    throw CommandError(cat(e.what(), did_you_mean(e.get_option_name(), names)), usage_line.empty() ? "" : usage.str());
  }
  return vm;
}

// Parses `hubel <cmd> EXP [options]` into c (c.vm keeps the switches); returns false when
// help was printed.
bool parse(int argc, char** argv, const std::string& cmd, po::options_description& opts, Common& c) {
  const po::variables_map vm = parse_command(argc, argv, opts, {{"experiment", &c.experiment}},
                                             "usage: hubel " + cmd + " EXPERIMENT.yaml [options]");
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
  opts.add_options()("no-data", "do not open the data file (the other sections are still checked)");
  if (!parse(argc, argv, "summary", opts, c)) return kOk;
  // Every section checked as train checks it, so that a mistake is found before a job
  // waits in a queue: the layers, optimizer, schedule, checkpoint policy and the data.
  Inputs in = read_inputs(c.experiment, c.sets, !c.vm.count("no-data"), 1,
                          (fs::path("runs") / fs::path(c.experiment).stem()).string());
  const Experiment& exp = *in.exp;
  BuiltModel& model = *in.model;
  std::cout << "model of " << c.experiment << " (loss: " << model.loss->type() << ")\n";
  model.net.summary(std::cout);
  const auto optimizer = Optimizer::create(exp.optimizer, model.net);
  const auto schedule = create_run_schedule(exp.schedule, *optimizer, exp.train);
  std::cout << "optimizer " << optimizer->describe() << "; schedule " << schedule->describe() << "\n";
  if (!in.data) {
    std::cout << "data: not opened (--no-data)\n";
    return kOk;
  }
  const datasets::Splits& data = *in.data;
  const Shape sample = data.transform ? data.transform->output_shape() : data.train->sample_shape();
  std::cout << "data: " << data.train->name() << " " << data.train->size() << " samples of " << sample.str()
            << (data.heldout ? cat("; held out (", data.heldout_name, "): ", data.heldout->size(), " samples") : "")
            << "\n";
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
            << "position: epoch " << m.epoch + 1 << ", " << m.batch << " minibatches into it, step " << m.step
            << ", seed " << m.seed << "\n";
  if (!m.history.empty()) {
    std::cout << "metrics:\n  epoch    steps        lr  train_loss  train_acc   test_loss   test_acc\n";
    for (const auto& h : m.history)
      std::cout << std::fixed << std::setprecision(4) << "  " << std::setw(5) << h.epoch << std::setw(9) << h.steps
                << std::setw(10) << h.lr << std::setw(12) << h.train_loss << std::setw(11) << h.train_accuracy
                << std::setw(12) << (h.has_test ? h.test_loss : 0.0) << std::setw(11)
                << (h.has_test ? h.test_accuracy : 0.0) << "\n";
  }
  std::cout << "parameters:\n";
  int64_t total = 0;
  for (const auto& p : params) {
    double sq = 0;
    for (float v : p.values) sq += static_cast<double>(v) * v;
    total += static_cast<int64_t>(p.values.size());
    std::cout << "  " << std::left << std::setw(24) << p.name << std::setw(18) << p.shape.str() << std::right
              << std::setw(10) << p.values.size() << "  norm " << std::setprecision(4) << std::sqrt(sq) << "\n";
  }
  std::cout << "  total " << total << " parameters\n";
  std::cout << "experiment:\n" << m.experiment << (m.experiment.empty() || m.experiment.back() == '\n' ? "" : "\n");
  if (!out.empty()) {
    export_weights(out, file);
    std::cout << "weights written to " << out << "\n";
  }
  return kOk;
}

int cmd_export(int argc, char** argv) {
  Common c;
  std::string checkpoint, out, batch = "dynamic", reference;
  int opset = 13;
  int64_t samples = 16;
  auto opts = common_options(c);
  opts.add_options()("batch", po::value(&batch), "the model's batch size: dynamic (default) or N")(
      "opset", po::value(&opset), "the ONNX operator set, 13 (default) to 17")(
      "reference", po::value(&reference),
      "also write PREFIX.input.f32, PREFIX.output.f32 and PREFIX.json: the first test samples as the model's "
      "input and hubel's outputs for them, to check a runtime against")("samples", po::value(&samples),
                                                                        "samples in the reference (default 16)");
  const std::string usage = "usage: hubel export CHECKPOINT MODEL.onnx [options]";
  c.vm = parse_command(argc, argv, opts, {{"checkpoint", &checkpoint}, {"out", &out}}, usage);
  if (c.vm.count("help")) {
    std::cout << usage
              << "\n\nWrites the checkpoint's model as ONNX: the evaluation transform of its data (scale,\n"
                 "normalization, padding) as the first nodes, then every layer. Its input \"input\" is the\n"
                 "stored samples' values as floats (pixels 0..255), its output the network's logits.\n"
                 "(hubel inspect --export-weights writes the weights alone to HDF5.)\n\n"
              << opts;
    return kOk;
  }
  if (checkpoint.empty() || out.empty()) throw po::error("missing arguments: " + usage);
  if (!out.ends_with(".onnx")) throw po::error(cat("the model file is MODEL.onnx; got '", out, "'"));
  inference::OnnxOptions o;
  o.opset = opset;
  if (batch != "dynamic") {
    try {
      size_t used = 0;
      o.batch = std::stoll(batch, &used);
      if (used != batch.size() || o.batch < 1) throw std::invalid_argument(batch);
    } catch (const std::exception&) {
      throw po::error(cat("--batch is dynamic or a positive number; got '", batch, "'"));
    }
  }
  if (samples < 1) throw po::error("--samples must be positive");
  if (o.batch) samples = o.batch;
  checkpoint = resolve_checkpoint(checkpoint);
  Experiment exp = Experiment::from_config(checkpoint_experiment(c.experiment, checkpoint, c.sets));
  BuiltModel model = build_model(exp.model, layers::builtin_registry());
  // (the transform; the training samples only for a reference, which takes test samples)
  datasets::Splits data = datasets::open(exp.data, reference.empty());
  const Shape stored = data.train->sample_shape();
  Runtime runtime(c.threads);
  model.net.build(std::max<int64_t>(1, reference.empty() ? 1 : samples), exp.train.seed);
  load_checkpoint(checkpoint, model.net, nullptr, nullptr);
  const size_t nodes = inference::export_onnx(model.net, data.transform.get(), stored, o, out);
  std::cout << out << ": ONNX opset " << o.opset << ", " << nodes << " nodes, input " << stored.with_batch(-1).str()
            << " -> output " << model.net.output_shape().with_batch(-1).str() << " (batch "
            << (o.batch ? std::to_string(o.batch) : std::string("dynamic")) << ")\n";
  if (reference.empty()) return kOk;
  const datasets::Dataset& set = data.test ? *data.test : *data.train;
  const int64_t n = std::min(samples, set.size());
  Tensor raw(stored.with_batch(n));
  std::vector<int64_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), int64_t{0});
  std::vector<int32_t> labels(static_cast<size_t>(n));
  set.read(ids, raw, labels.data(), TensorView());
  TensorView in = model.net.input(n);
  runtime.run([&] {
    if (data.transform)
      data.transform->apply(raw, ids, exp.train.seed, 0, false, in);
    else
      std::copy(raw.data(), raw.data() + raw.numel(), in.data());
  });
  ConstTensorView y;
  runtime.run([&] { y = model.net.forward(n, {false, exp.train.seed, 0, 0}); });
  auto write = [](const std::string& path, const float* p, int64_t count) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(count * sizeof(float)));
    if (!f.flush()) throw DataError(cat("cannot write ", path));
  };
  write(reference + ".input.f32", raw.data(), raw.numel());
  write(reference + ".output.f32", y.data(), y.numel());
  auto json_dims = [](const Shape& s) {
    std::string j = "[";
    for (int i = 0; i < s.rank(); ++i) j += cat(i ? ", " : "", s[i]);
    return j + "]";
  };
  std::ofstream j(reference + ".json", std::ios::trunc);
  j << "{\"model\": \"" << fs::path(out).filename().string() << "\", \"input\": \""
    << fs::path(reference).filename().string() << ".input.f32\", \"input_shape\": " << json_dims(raw.shape())
    << ", \"output\": \"" << fs::path(reference).filename().string()
    << ".output.f32\", \"output_shape\": " << json_dims(y.shape()) << "}\n";
  if (!j.flush()) throw DataError(cat("cannot write ", reference, ".json"));
  std::cout << "reference: " << n << " samples of " << set.name() << " and hubel's outputs in " << reference
            << ".{json,input.f32,output.f32}\n";
  return kOk;
}

int cmd_eval(int argc, char** argv, comm::Communicator& comm) {
  Common c;
  std::string checkpoint, split = "test";
  auto opts = common_options(c);
  opts.add_options()("checkpoint", po::value(&checkpoint),
                     "the checkpoint: a file, a checkpoint directory or its latest (or exported weights)")(
      "split", po::value(&split), "the data split: test (default), train, or val");
  const std::string usage = "usage: hubel eval [EXPERIMENT.yaml] --checkpoint CHECKPOINT [options]";
  c.vm = parse_command(argc, argv, opts, {{"experiment", &c.experiment}}, usage);
  if (c.vm.count("help")) {
    std::cout << usage << "\n\nThe experiment defaults to the one the checkpoint holds.\n\n" << opts;
    return kOk;
  }
  if (checkpoint.empty())
    throw po::error("missing --checkpoint (a checkpoint file, a checkpoint directory, or its latest)");
  if (c.threads < 0) throw po::error("--threads must be positive");
  if (c.seed >= 0) c.sets.push_back("train.seed=" + std::to_string(c.seed));
  checkpoint = resolve_checkpoint(checkpoint);
  Experiment exp = Experiment::from_config(checkpoint_experiment(c.experiment, checkpoint, c.sets));
  BuiltModel model = build_model(exp.model, layers::builtin_registry());
  datasets::Splits data = datasets::open(exp.data, false, {comm.rank(), comm.size(), comm.node_size()});
  const datasets::Dataset* set = split == "train"                               ? data.train.get()
                                 : split == "test"                              ? data.test.get()
                                 : split == "val" && data.heldout_name == "val" ? data.heldout.get()
                                                                                : nullptr;
  if (!set) throw ConfigError(cat("the experiment's data has no '", split, "' split"));
  Runtime runtime(c.threads);
  const int64_t local = (exp.train.batch + comm.size() - 1) / comm.size();
  model.net.build(local, exp.train.seed);
  load_checkpoint(checkpoint, model.net, nullptr, nullptr);
  // Every row computed alike on any number of ranks where the run can be exact.
  const ExactPlan exact = plan_exactness(exp.train, model.net, comm.size());
  datasets::LoaderOptions lo{exp.train.batch, comm.rank(),    comm.size(),   false,       false,
                             false,           exp.train.seed, data.prefetch, data.timeout};
  if (exact.exact) lo.rows_per_rank = exp.train.batch / comm.size();
  lo.decode_threads = data.decode_threads;
  lo.comm = &comm;
  datasets::Loader loader(*set, data.transform.get(), lo);
  Evaluation e;
  // Progress on standard error after 5, 10, 20 s, then every 30 s (rank 0).
  const auto started = std::chrono::steady_clock::now();
  double next_line = 5;
  const EvalProgress progress = [&](int64_t done, int64_t total) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (comm.rank() != 0 || done >= total || t < next_line) return;
    std::cerr << "evaluating " << split << ": batch " << done << "/" << total << ", " << static_cast<int64_t>(t)
              << " s\n";
    next_line = std::min(2 * next_line, next_line + 30);
  };
  runtime.run([&] { e = evaluate(model.net, *model.loss, loader, comm, exp.train.seed, 0, exact.chunk, 0, progress); });
  const int64_t K = e.classes;
  const double sums[3] = {e.stats.loss, static_cast<double>(e.stats.correct), static_cast<double>(e.stats.count)};
  if (comm.rank() != 0) return kOk;
  std::cout << std::fixed << std::setprecision(4) << checkpoint << " on " << set->name() << ": "
            << static_cast<int64_t>(sums[2]) << " samples, loss " << sums[0] / sums[2];
  if (model.loss->reports_accuracy(set->num_classes())) std::cout << ", accuracy " << sums[1] / sums[2];
  std::cout << "\n";
  if (K > 0 && K <= 100) {
    std::vector<std::string> names = set->class_names();
    if (static_cast<int64_t>(names.size()) != K) names.clear();
    const auto name = [&](int64_t k) { return names.empty() ? std::to_string(k) : names[static_cast<size_t>(k)]; };
    size_t width = 7;
    for (int64_t k = 0; k < K; ++k) width = std::max(width, name(k).size() + 2);
    const auto count = [&](int64_t i, int64_t j) { return e.confusion[static_cast<size_t>(i * K + j)]; };
    std::cout << "per class:\n"
              << std::setw(static_cast<int>(width)) << "class"
              << "  precision     recall         f1  samples\n";
    for (int64_t k = 0; k < K; ++k) {
      int64_t predicted = 0, actual = 0;
      for (int64_t j = 0; j < K; ++j) predicted += count(j, k), actual += count(k, j);
      const double tp = static_cast<double>(count(k, k));
      const double precision = predicted ? tp / static_cast<double>(predicted) : 0.0;
      const double recall = actual ? tp / static_cast<double>(actual) : 0.0;
      const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
      std::cout << std::setw(static_cast<int>(width)) << name(k) << std::setw(11) << precision << std::setw(11)
                << recall << std::setw(11) << f1 << std::setw(9) << actual << "\n";
    }
    std::cout << "confusion matrix (rows: true class, columns: predicted):\n"
              << std::setw(static_cast<int>(width)) << "";
    for (int64_t j = 0; j < K; ++j) std::cout << std::setw(static_cast<int>(width)) << name(j);
    std::cout << "\n";
    for (int64_t i = 0; i < K; ++i) {
      std::cout << std::setw(static_cast<int>(width)) << name(i);
      for (int64_t j = 0; j < K; ++j) std::cout << std::setw(static_cast<int>(width)) << count(i, j);
      std::cout << "\n";
    }
  }
  return kOk;
}

// One input of hubel predict: an image file, or a sample of an HDF5 split.
struct PredictInput {
  std::string name;
  std::string file;  // an image file ("" for a sample of a split)
  const datasets::Dataset* set = nullptr;
  int64_t index = 0;
};

int cmd_predict(int argc, char** argv, comm::Communicator& comm) {
  Common c;
  std::string checkpoint, out;
  std::vector<std::string> inputs;
  int64_t top = 5, batch = 64;
  auto opts = common_options(c);
  opts.add_options()("top", po::value(&top), "the classes to show per input (default 5)")(
      "batch", po::value(&batch), "inputs per forward pass (default 64)")(
      "out", po::value(&out), "also write the predictions to FILE.csv or FILE.jsonl")(
      "skip-bad", "leave out files that are not readable images (named) instead of stopping");
  const std::string usage = "usage: hubel predict CHECKPOINT INPUT... [options]";
  po::options_description hidden;
  hidden.add_options()("checkpoint", po::value(&checkpoint))("inputs", po::value(&inputs)->composing());
  po::positional_options_description pos;
  pos.add("checkpoint", 1).add("inputs", -1);
  po::options_description all;
  all.add(opts).add(hidden);
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), c.vm);
  po::notify(c.vm);
  if (c.vm.count("help")) {
    std::cout << usage
              << "\n\nINPUT: PNG or JPEG files, folders of them (sorted), or DATA.h5:split (its samples in order).\n"
                 "Images are decoded to the model's channels, resized (shorter side) and centre-cropped to the\n"
                 "experiment's sample size, then transformed as in evaluation. Under mpirun each rank takes a\n"
                 "share of the inputs; rank 0 prints them all, in order.\n\n"
              << opts;
    return kOk;
  }
  if (checkpoint.empty() || inputs.empty()) throw po::error("missing inputs: " + usage);
  if (top < 1) throw po::error("--top must be at least 1");
  if (batch < 1 || batch > 65536) throw po::error("--batch must be in [1, 65536]");
  if (!out.empty() && !out.ends_with(".csv") && !out.ends_with(".jsonl"))
    throw po::error(cat("--out is FILE.csv or FILE.jsonl; got '", out, "'"));
  checkpoint = resolve_checkpoint(checkpoint);
  Experiment exp = Experiment::from_config(checkpoint_experiment(c.experiment, checkpoint, c.sets));
  BuiltModel model = build_model(exp.model, layers::builtin_registry());
  datasets::Splits data = datasets::open(exp.data, true);  // (the evaluation transform and class names)
  const Shape stored = data.train->sample_shape();
  const auto names = data.train->class_names();
  // The inputs, in order.
  std::vector<PredictInput> items;
  std::vector<std::unique_ptr<datasets::Dataset>> splits;
  // A model trained on images stored encoded takes each input whole: the evaluation window
  // of the full image (Transform::apply_image), as its training's evaluation did.
  const bool whole = data.train->encoded();
  for (const auto& in : inputs) {
    const auto colon = in.rfind(':');
    std::error_code ec;
    if (colon != std::string::npos && colon > 0 && !fs::exists(in, ec) && fs::exists(in.substr(0, colon), ec)) {
      const std::string path = in.substr(0, colon), split = in.substr(colon + 1);
      if (stored.rank() == 3 && datasets::is_encoded_split(path, split))
        splits.push_back(std::make_unique<datasets::EncodedImages>(path, split, datasets::Hdf5Dataset::kStreamed,
                                                                   std::array<int64_t, 2>{stored[1], stored[2]}));
      else
        splits.push_back(std::make_unique<datasets::Hdf5Dataset>(path, split, datasets::Hdf5Dataset::kStreamed));
      if (splits.back()->sample_shape() != stored)
        throw DataError(
            cat(in, ": samples ", splits.back()->sample_shape().str(), ", but the model's data has ", stored.str()));
      for (int64_t i = 0; i < splits.back()->size(); ++i)
        items.push_back({cat(in, "#", i), "", splits.back().get(), i});
    } else if (fs::is_directory(in, ec)) {
      std::vector<std::string> files;
      for (const auto& e : fs::recursive_directory_iterator(in, ec)) {
        std::string ext = e.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg"))
          files.push_back(e.path().string());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) items.push_back({f, f, nullptr, 0});
    } else if (fs::exists(in, ec)) {
      items.push_back({in, in, nullptr, 0});
    } else {
      throw DataError(cat(in, ": no such file, folder or DATA.h5:split"));
    }
  }
  if (items.empty()) throw DataError("predict: no PNG or JPEG files in the inputs given");
  if (stored.rank() != 3 &&
      std::any_of(items.begin(), items.end(), [](const PredictInput& p) { return !p.file.empty(); }))
    throw ConfigError(cat("the model takes samples ", stored.str(), ", not images [C, H, W]"));
  Runtime runtime(c.threads);
  model.net.build(batch, exp.train.seed);
  load_checkpoint(checkpoint, model.net, nullptr, nullptr);
  const int64_t K = model.net.output_shape().numel(), k = std::min(top, K);
  const int64_t n = static_cast<int64_t>(items.size()), W = comm.size(), r = comm.rank();
  // Each rank's share (every W-th input): per input its top k (class, probability) and a
  // flag, in slots summed over the ranks.
  std::vector<double> slots(static_cast<size_t>(n * (2 * k + 1)), 0.0);
  std::vector<std::string> errors(static_cast<size_t>(n));
  const int64_t per = stored.numel();
  std::vector<int64_t> mine;
  for (int64_t i = r; i < n; i += W) mine.push_back(i);
  Tensor raw(stored.with_batch(batch));
  std::vector<datasets::Image8> images(whole ? static_cast<size_t>(batch) : 0);
  runtime.run([&] {
    for (size_t b0 = 0; b0 < mine.size(); b0 += static_cast<size_t>(batch)) {
      const size_t b1 = std::min(mine.size(), b0 + static_cast<size_t>(batch));
      tbb::parallel_for(b0, b1, [&](size_t j) {
        const PredictInput& p = items[static_cast<size_t>(mine[j])];
        float* x = raw.data() + static_cast<int64_t>(j - b0) * per;
        try {
          if (whole) {
            datasets::Image8& im = images[j - b0];
            std::vector<uint8_t> bytes;
            if (p.set && p.set->encoded()) {
              std::vector<std::vector<uint8_t>> one;
              p.set->read_encoded(std::vector<int64_t>{p.index}, one, nullptr);
              bytes = std::move(one[0]);
            } else if (p.set) {  // a split of decoded samples: its pixels as an image of the samples' size
              p.set->read(std::vector<int64_t>{p.index}, TensorView(x, stored.with_batch(1)), nullptr, TensorView());
              im = {stored[2], stored[1], static_cast<int>(stored[0]), std::vector<uint8_t>(x, x + per)};
            } else {
              std::ifstream f(p.file, std::ios::binary);
              bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
            }
            if (!bytes.empty() || !p.set || p.set->encoded())
              im = datasets::decode_image(bytes, p.set ? p.name : p.file, static_cast<int>(stored[0]));
          } else if (p.set) {
            int32_t label = 0;
            p.set->read(std::vector<int64_t>{p.index}, TensorView(x, stored.with_batch(1)), &label, TensorView());
          } else {
            std::ifstream f(p.file, std::ios::binary);
            const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
            const datasets::Image8 im = datasets::fit_image(
                datasets::decode_image(bytes, p.file, static_cast<int>(stored[0])), stored[1], stored[2], true);
            std::copy(im.pixels.begin(), im.pixels.end(), x);
          }
        } catch (const DataError& e) {
          errors[static_cast<size_t>(mine[j])] = e.what();
          std::fill(x, x + per, 0.0f);
        }
      });
      const auto rows = static_cast<int64_t>(b1 - b0);
      std::vector<int64_t> ids(static_cast<size_t>(rows));
      for (int64_t j = 0; j < rows; ++j) ids[static_cast<size_t>(j)] = mine[b0 + static_cast<size_t>(j)];
      TensorView in = model.net.input(rows);
      if (whole)
        tbb::parallel_for(int64_t{0}, rows, [&](int64_t j) {
          float* y = in.data() + j * per;
          const datasets::Image8& im = images[static_cast<size_t>(j)];
          if (errors[static_cast<size_t>(ids[static_cast<size_t>(j)])].empty())
            data.transform->apply_image(im.pixels.data(), im.height, im.width, ids[static_cast<size_t>(j)],
                                        exp.train.seed, 0, false, y);
          else
            std::fill(y, y + per, 0.0f);
        });
      else if (data.transform)
        data.transform->apply(ConstTensorView(raw.data(), stored.with_batch(rows)), ids, exp.train.seed, 0, false, in);
      else
        std::copy(raw.data(), raw.data() + rows * per, in.data());
      const ConstTensorView y = model.net.forward(rows, {false, exp.train.seed, 0, 0});
      for (int64_t j = 0; j < rows; ++j) {
        const int64_t i = ids[static_cast<size_t>(j)];
        if (!errors[static_cast<size_t>(i)].empty()) continue;
        // Softmax probabilities, the top k.
        const float* row = y.data() + j * K;
        const float m = *std::max_element(row, row + K);
        std::vector<std::pair<double, int64_t>> pr(static_cast<size_t>(K));
        double sum = 0;
        for (int64_t q = 0; q < K; ++q)
          sum += pr[static_cast<size_t>(q)].first = std::exp(static_cast<double>(row[q] - m));
        for (int64_t q = 0; q < K; ++q) pr[static_cast<size_t>(q)] = {pr[static_cast<size_t>(q)].first / sum, q};
        std::partial_sort(pr.begin(), pr.begin() + k, pr.end(), [](const auto& a, const auto& b) {
          return a.first > b.first || (a.first == b.first && a.second < b.second);
        });
        double* s = &slots[static_cast<size_t>(i * (2 * k + 1))];
        s[0] = 1;
        for (int64_t q = 0; q < k; ++q)
          s[1 + 2 * q] = static_cast<double>(pr[static_cast<size_t>(q)].second),
                    s[2 + 2 * q] = pr[static_cast<size_t>(q)].first;
      }
    }
  });
  if (W > 1) {
    comm::ScopedActivity act("the gathering of the predictions");
    comm.allreduce_sum(std::span<double>(slots));
  }
  std::vector<std::string> bad;
  for (int64_t i = 0; i < n; ++i)
    if (slots[static_cast<size_t>(i * (2 * k + 1))] == 0) bad.push_back(items[static_cast<size_t>(i)].name);
  if (comm.rank() != 0) return kOk;
  if (!bad.empty() && !c.vm.count("skip-bad")) {
    std::string why;
    for (const auto& e : errors)
      if (!e.empty()) {
        why = e;
        break;
      }
    throw DataError(cat(why.empty() ? bad.front() + ": unreadable (on another rank)" : why, " (", bad.size(),
                        " input(s) not readable; --skip-bad predicts the rest)"));
  }
  auto name_of = [&](int64_t q) {
    return q < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(q)] : cat(q);
  };
  std::ofstream file;
  if (!out.empty()) {
    file.open(out, std::ios::trunc);
    if (!file) throw DataError(cat(out, ": cannot write"));
    if (out.ends_with(".csv")) file << "input,rank,class,name,probability\n";
  }
  auto json = [](const std::string& t) {
    std::string o = "\"";
    for (char ch : t) o += ch == '"' || ch == '\\' ? std::string("\\") + ch : std::string(1, ch);
    return o + "\"";
  };
  for (int64_t i = 0; i < n; ++i) {
    const double* s = &slots[static_cast<size_t>(i * (2 * k + 1))];
    const std::string& in = items[static_cast<size_t>(i)].name;
    if (s[0] == 0) {
      std::cerr << "skipped: " << in << "\n";
      continue;
    }
    std::cout << in << ":";
    std::string jl = "{\"input\": " + json(in) + ", \"top\": [";
    for (int64_t q = 0; q < k; ++q) {
      const auto cls = static_cast<int64_t>(s[1 + 2 * q]);
      const double p = s[2 + 2 * q];
      std::cout << (q ? ", " : " ") << name_of(cls) << " " << std::fixed << std::setprecision(4) << p;
      if (file && out.ends_with(".csv"))
        file << json(in) << "," << q + 1 << "," << cls << "," << json(name_of(cls)) << "," << std::setprecision(6) << p
             << "\n";
      jl +=
          cat(q ? ", " : "", "{\"class\": ", cls, ", \"name\": ", json(name_of(cls)), ", \"p\": ", json_number(p), "}");
    }
    std::cout << "\n";
    if (file && out.ends_with(".jsonl")) file << jl << "]}\n";
  }
  if (file && !file.flush()) throw DataError(cat(out, ": write failed"));
  return kOk;
}

int cmd_visualize(int argc, char** argv) {
  std::string file, out, split = "test", experiment;
  int64_t sample = 0;
  std::vector<std::string> sets;
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")(
      "sample", po::value(&sample), "the sample of the split to draw (default 0)")("split", po::value(&split),
                                                                                   "test (default), train or val")(
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
  file = resolve_checkpoint(file);
  Experiment exp = Experiment::from_config(checkpoint_experiment(experiment, file, sets));
  BuiltModel model = build_model(exp.model, layers::builtin_registry());
  datasets::Splits data = datasets::open(exp.data);
  const datasets::Dataset* set = split == "train"                               ? data.train.get()
                                 : split == "test"                              ? data.test.get()
                                 : split == "val" && data.heldout_name == "val" ? data.heldout.get()
                                                                                : nullptr;
  if (!set) throw ConfigError(cat("the experiment's data has no '", split, "' split"));
  if (sample >= set->size())
    throw po::error(cat("--sample ", sample, " is past the end of ", set->name(), " (", set->size(), " samples)"));
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
  std::string caption = cat("sample ", sample);
  if (b.labels) {
    const auto names = set->class_names();
    const int32_t label = b.labels[0];
    auto name = [&](int64_t k) {
      return k >= 0 && static_cast<size_t>(k) < names.size() ? names[static_cast<size_t>(k)] : cat("class ", k);
    };
    std::cout << ": class " << label;
    if (label >= 0 && static_cast<size_t>(label) < names.size())
      std::cout << " (" << names[static_cast<size_t>(label)] << ")";
    caption += ": " + name(label);
    if (y.stride0() == set->num_classes()) {
      const int64_t pred = std::max_element(y.data(), y.data() + y.stride0()) - y.data();
      std::cout << ", predicted " << pred;
      if (static_cast<size_t>(pred) < names.size()) std::cout << " (" << names[static_cast<size_t>(pred)] << ")";
      caption += ", predicted " + name(pred);
    }
  }
  std::cout << "\n";
  for (const auto& p : launch::draw_network(model.net, out, caption))
    std::cout << p.path << (p.width ? cat("  ", p.width, "x", p.height) : std::string()) << "  " << p.what << "\n";
  return kOk;
}

int cmd_convert(int argc, char** argv, comm::Communicator& comm) {
  std::string format, dir, out, classes, size, resize = "shorter";
  int compress = 0, channels = 0;
  int64_t chunk_rows = 256;
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")(
      "classes", po::value(&classes),
      "class names: mnist, fashion-mnist, cifar10, or a comma-separated list (images: these class folders, in "
      "this order)")("size", po::value(&size), "images: the samples' size H,W (default: the images' own)")(
      "resize", po::value(&resize),
      "images: shorter (scale the shorter side, then the centre crop; default) or exact (stretch)")(
      "channels", po::value(&channels), "images: 1 (gray) or 3 (RGB); default 3 if any image is in color")(
      "split-dir", "images: DIR/{train,val,test}/<class>/ instead of DIR/<class>/ (all train)")(
      "skip-bad", "images: leave out files that cannot be read (counted) instead of stopping")(
      "encoded",
      "images: store the files as they are (decoded at training time at full resolution, for random resized "
      "crops; --size then records the samples' size)")(
      "compress", po::value(&compress), "gzip level 1-9 for the images (default 0: uncompressed, fastest to read)")(
      "chunk-rows", po::value(&chunk_rows), "samples per HDF5 chunk (default 256)")(
      "no-checksum",
      "leave out the Fletcher-32 checksums of the images and labels (on by default: damaged bytes are then an error)");
  const po::variables_map vm = parse_command(argc, argv, opts, {{"format", &format}, {"dir", &dir}, {"out", &out}});
  if (vm.count("help")) {
    std::cout << "usage: hubel convert idx DIR OUT.h5 [options]\n"
                 "       hubel convert cifar10 DIR OUT.h5 [options]\n"
                 "       hubel convert images DIR OUT.h5 [--size H,W] [--encoded] [options]\n\n"
                 "idx: DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and\n"
                 "     t10k-labels-idx1-ubyte, each optionally .gz (e.g. /usr/share/datasets/fashion-mnist)\n"
                 "cifar10: DIR holds data_batch_1.bin ... data_batch_5.bin and test_batch.bin\n"
                 "images: DIR/<class>/*.{png,jpg,jpeg} (classes sorted by name), or with --split-dir\n"
                 "     DIR/{train,val,test}/<class>/...\n"
                 "The output is written under a temporary name and renamed when complete.\n\n"
              << opts;
    return kOk;
  }
  if (format != "idx" && format != "cifar10" && format != "images")
    throw po::error(format.empty() ? "missing the input format: hubel convert idx|cifar10|images DIR OUT.h5"
                                   : "unknown input format '" + format + "' (idx, cifar10 or images)");
  if (format != "images")
    for (const char* o : {"size", "resize", "channels", "split-dir", "skip-bad", "encoded"})
      if (vm.count(o) && !vm[o].defaulted()) throw po::error(cat("--", o, " is for hubel convert images"));
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
  if (format == "images") {
    datasets::ImageFolderOptions io;
    io.classes = classes;
    io.write = o.write;
    io.channels = channels;
    io.split_dir = vm.count("split-dir") > 0;
    io.skip_bad = vm.count("skip-bad") > 0;
    io.encoded = vm.count("encoded") > 0;
    if (io.encoded && vm.count("resize") && !vm["resize"].defaulted())
      throw po::error("--resize is for decoded samples; --encoded keeps the files as they are");
    if (resize != "shorter" && resize != "exact")
      throw po::error(cat("--resize must be shorter or exact; got '", resize, "'"));
    io.shorter = resize == "shorter";
    if (!size.empty()) {
      char* end = nullptr;
      io.height = std::strtoll(size.c_str(), &end, 10);
      if (*end != ',') throw po::error(cat("--size is H,W, e.g. 224,224; got '", size, "'"));
      const char* w = end + 1;
      io.width = std::strtoll(w, &end, 10);
      if (*end != '\0' || end == w) throw po::error(cat("--size is H,W, e.g. 224,224; got '", size, "'"));
    }
    const auto started = std::chrono::steady_clock::now();
    double next_line = 2;
    io.progress = [&](int64_t done, int64_t total) {
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (t < next_line || done >= total) return;
      std::cerr << "decoding: " << done << "/" << total << " images, " << static_cast<int64_t>(t) << " s\n";
      next_line = std::min(2 * next_line, next_line + 30);
    };
    const datasets::ImageFolderResult r = datasets::convert_image_folder(dir, out, io);
    for (const auto& why : r.skipped) std::cerr << "skipped: " << why << "\n";
    std::cout << "wrote " << r.summary << "\n";
    if (!r.skipped.empty()) std::cout << r.skipped.size() << " bad file(s) skipped (--skip-bad)\n";
    if (r.ignored) std::cout << r.ignored << " file(s) without a .png, .jpg or .jpeg name left out\n";
    return kOk;
  }
  const std::string summary =
      format == "idx" ? datasets::convert_idx_dir(dir, out, o) : datasets::convert_cifar10_dir(dir, out, o);
  std::cout << "wrote " << summary << "\n";
  return kOk;
}

// SIGTERM or SIGUSR1 (what schedulers send before a time limit): finish the step, write a
// checkpoint, exit 0.
// The experiment as run: the file's text, or, with --set overrides, the resolved YAML
// headed by the command line that made it.
std::string resolved_experiment(const Experiment& exp, const Common& c) {
  if (c.sets.empty()) return exp.root.text();
  std::string head = cat("# ", c.experiment, " as run with");
  for (const auto& s : c.sets) head += " --set " + s;
  return head + "\n" + exp.root.dump() + "\n";
}

// An input error every rank has learned of: printed once, and the job ends on every rank
// with `code`, without MPI_Abort (and Open MPI's banner about it).
struct AgreedError : std::exception {
  explicit AgreedError(int c) : code(c) {}
  const char* what() const noexcept override { return "an input error, reported"; }
  int code;
};

// Runs f, the reading and checking of a run's inputs, and lets the ranks agree on its
// outcome with one tiny allreduce. Every rank reads the same arguments and files, so a
// mistake is normally every rank's: rank 0 prints it once. A rank that alone failed (a
// file it cannot see) prints its own, naming itself. Either way every rank then ends.
template <class F>
void agree_on_input(comm::Communicator& comm, F&& f) {
  std::exception_ptr error;
  std::string message;
  int code = kOk;
  try {
    f();
  } catch (const std::exception& e) {
    error = std::current_exception();
    message = e.what();
    const bool input = dynamic_cast<const po::error*>(&e) || dynamic_cast<const ConfigError*>(&e) ||
                       dynamic_cast<const ShapeError*>(&e) || dynamic_cast<const DataError*>(&e);
    code = input ? kInputError : kTrainingError;
  }
  if (comm.size() == 1) {
    if (error) std::rethrow_exception(error);
    return;
  }
  double failed = error ? 1.0 : 0.0;
  {
    comm::ScopedActivity act("the agreement on the run's inputs");
    comm.allreduce_sum(std::span<double>(&failed, 1));
  }
  if (failed == 0) return;
  const bool everyone = failed == comm.size();
  if (error && (!everyone || comm.rank() == 0))
    std::cerr << (everyone ? std::string("hubel: error: ") : cat("hubel (rank ", comm.rank(), "): error: ")) << message
              << "\n";
  throw AgreedError(error ? code : kInputError);
}

// hubel train's own options, beyond the common ones.
void add_train_options(po::options_description& opts, Common& c, RunOptions& ro) {
  opts.add_options()("progress-seconds", po::value(&ro.progress_seconds),
                     "when standard error is not a terminal: seconds between progress lines (default 30)")(
      "run-dir", po::value(&c.run_dir),
      "where metrics and the resolved experiment go (default: runs/<experiment name>)")(
      "resume", po::value(&ro.resume),
      "continue from a checkpoint: a file, a checkpoint directory, or auto (the run's own)")(
      "weights-only",
      "with --resume: take only the weights, start the optimizer, schedule and data from the beginning")(
      "progress", po::value<std::string>()->default_value("auto"),
      "bar (redrawn on standard error), lines (one plain line every --progress-seconds), none, or auto: a bar "
      "when standard error is a terminal, else lines")("quiet,q",
                                                       "print only the first line and the exactness of the run "
                                                       "before training, not the data, the model summary and "
                                                       "the settings")(
      "accept-changes",
      "with --resume: resume even where the experiment differs from the checkpoint's in more than epochs, "
      "steps, checkpoints, logging or the data's place (the differences are printed either way)")(
      "new-run",
      "start a new run in a run directory that holds another run's checkpoints (they and its logs are moved to "
      "checkpoints/previous-<time>/)")("profile",
                                       "time every layer's forward and backward, the data wait, the allreduce wait and "
                                       "the optimizer; print a table at the end");
}

// The train options read after parsing into ro; returns whether --quiet was given.
bool read_train_options(const Common& c, RunOptions& ro) {
  if (!(ro.progress_seconds > 0)) throw po::error("--progress-seconds must be positive");
  ro.weights_only = c.vm.count("weights-only") > 0;
  ro.accept_changes = c.vm.count("accept-changes") > 0;
  const std::string progress = c.vm["progress"].as<std::string>();
  if (progress == "bar") {
    ro.terminal = 1;
  } else if (progress == "lines") {
    ro.terminal = 0;
  } else if (progress == "none") {
    ro.terminal = 0;
    ro.progress_seconds = std::numeric_limits<double>::infinity();
  } else if (progress != "auto") {
    throw po::error(cat("--progress must be bar, lines, none or auto; got '", progress, "'",
                        did_you_mean(progress, {"bar", "lines", "none", "auto"})));
  }
  ro.new_run = c.vm.count("new-run") > 0;
  if (ro.weights_only && ro.resume.empty()) throw po::error("--weights-only needs --resume FILE");
  return c.vm.count("quiet") > 0;
}

// The banner's word on train.precision: bf16, how many convolutions took the bf16 plan.
std::string precision_note(const Net& net) {
  if (net.precision() != Precision::bf16) return "";
  if (!layers::bf16_kernels()) return ", precision bf16 asked, but this CPU has no AVX512_BF16: fp32";
  int64_t convs = 0, bf16 = 0;
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer& l = net.layer(i);
    if (l.type().rfind("conv", 0) != 0) continue;
    ++convs;
    bf16 += l.plan().rfind("bf16", 0) == 0;
  }
  return cat(", bf16 products (fp32 sums) in ", bf16, " of ", convs, " convolutions");
}

// What hubel train prints before training (rank 0): the first line, then (unless quiet)
// the data, the model summary and the settings, then whether the run is exact.
void print_train_banner(const Common& c, const Experiment& exp, const BuiltModel& model, const datasets::Splits& data,
                        const datasets::Loaders& loaders, Run& run, const comm::Communicator& comm,
                        const Runtime& runtime, bool quiet) {
  const Net& net = model.net;
  std::cout << "hubel " << HUBEL_VERSION << ": " << comm.size() << " rank(s) x " << runtime.threads() << " thread(s), "
            << (layers::kernel_width() ? std::to_string(layers::kernel_width()) + "-bit product kernels"
                                       : "BLAS products")
            << precision_note(net) << ", experiment " << c.experiment << "\n";
  if (!quiet) {
    std::cout << "data: " << data.train->name() << " " << data.train->size() << " samples of "
              << data.train->sample_shape().str();
    if (loaders.heldout)
      std::cout << "; held out (" << data.heldout_name << "): " << data.heldout->name() << " " << data.heldout->size()
                << " samples";
    if (loaders.test) std::cout << "; test: " << data.test->name() << " " << data.test->size() << " samples";
    std::cout << "\n";
    if (!data.store_why.empty()) {
      std::cout << "store: " << data.store << ": " << data.store_why;
      if (const auto* st = loaders.train->stream())
        std::cout << "; " << st->batches_per_epoch() << " minibatches an epoch, runs of " << st->run_rows()
                  << " samples";
      std::cout << "\n";
    }
    if (data.transform)
      std::cout << "transforms: "
                << (data.train->encoded()
                        ? cat("decode the stored PNG/JPEG files (",
                              data.decode_threads ? "on the loader thread" : "on TBB's threads",
                              ") and resample each whole image to ", data.train->sample_shape().str(), "; ")
                        : "")
                << data.transform->describe() << "\n";
    net.summary(std::cout);
    std::cout << "training: loss " << model.loss->type() << ", global batch " << exp.train.batch
              << (exp.train.accumulate > 1 ? cat(" (", exp.train.accumulate, " micro-batches per step)") : "") << ", "
              << exp.train.epochs << " epochs"
              << (exp.train.max_steps > 0 ? cat(" or ", exp.train.max_steps, " steps (max_steps)") : "") << ", seed "
              << exp.train.seed << "\n"
              << "optimizer " << run.optimizer().describe() << "\nschedule " << run.schedule().describe() << "\n";
  }
  if (data.store == "streaming")  // (the plan knows the net, not the data's order)
    std::cout << "exact: no (the streamed store draws each rank's rows from its own stream: the order depends on the "
                 "number of ranks)\n";
  else
    std::cout << run.trainer().exactness().describe(comm.size()) << "\n";
  for (const auto& w : data.warnings) std::cerr << "warning: " << w << "\n";
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The report's facts about a run; the last one, the duration, is updated as it goes.
std::vector<std::pair<std::string, std::string>> run_facts(int argc, char** argv, const comm::Communicator& comm,
                                                           const Runtime& runtime) {
  std::string command = "hubel train";
  for (int i = 1; i < argc; ++i) command += cat(" ", argv[i]);
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
  std::string cpu = "unknown";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  return {
      {"started", date},
      {"command", command},
      {"ranks x threads", cat(comm.size(), " x ", runtime.threads())},
      {"hubel", cat(HUBEL_VERSION, ", ",
                    layers::kernel_width() ? cat(layers::kernel_width(), "-bit product kernels") : "BLAS products")},
      {"CPU", cat(cpu, ", ", std::thread::hardware_concurrency(), " hardware threads")},
      {"duration", "0:00"}};
}

// The misclassified samples of an evaluation as images (as stored, each stretched to its
// own range), for the report: samples of 1 or 3 channels only.
std::vector<launch::ReportInputs::Shown> worst_images(const Evaluation& e, const datasets::Dataset& set) {
  std::vector<launch::ReportInputs::Shown> out;
  const Shape s = set.sample_shape();
  if (s.rank() != 3 || (s[0] != 1 && s[0] != 3) || e.worst.empty()) return out;
  const auto names = set.class_names();
  auto name = [&](int64_t k) {
    return k < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(k)] : cat(k);
  };
  const int64_t scale = std::max<int64_t>(1, 96 / std::max(s[1], s[2]));
  Tensor x(s.with_batch(1));
  int32_t label = 0;
  for (const auto& m : e.worst) {
    set.read(std::vector<int64_t>{m.index}, x.view(), &label, TensorView());
    out.push_back({launch::encode_png(launch::sample_image(x.data(), s[0], s[1], s[2], scale)),
                   cat("#", m.index, ": ", name(m.label), ", predicted ", name(m.predicted), " (loss ",
                       std::round(m.loss * 100) / 100, ")")});
  }
  return out;
}

int cmd_train(int argc, char** argv, comm::Communicator& comm) {
  Common c;
  RunOptions ro;
  auto opts = common_options(c);
  add_train_options(opts, c, ro);
  if (!parse(argc, argv, "train", opts, c)) return kOk;
  const bool quiet = read_train_options(c, ro);
  const bool root = comm.rank() == 0;

  // Everything is read and checked before anything is allocated or trained, and the
  // ranks agree on the outcome (agree_on_input).
  std::optional<Experiment> exp_read;
  std::optional<BuiltModel> model_built;
  std::optional<datasets::Splits> data_opened;
  const std::string run_dir =
      (c.run_dir.empty() ? fs::path("runs") / fs::path(c.experiment).stem() : fs::path(c.run_dir)).string();
  agree_on_input(comm, [&] {
    // (The net is built for this rank's rows, as Run would build it.)
    Inputs in =
        read_inputs(c.experiment, c.sets, true, -comm.size(), run_dir, {comm.rank(), comm.size(), comm.node_size()});
    exp_read.emplace(std::move(*in.exp));
    model_built.emplace(std::move(*in.model));
    data_opened.emplace(std::move(*in.data));
  });
  Experiment& exp = *exp_read;
  BuiltModel& model = *model_built;
  datasets::Splits& data = *data_opened;
  Runtime runtime(c.threads);
  ro.run_dir = run_dir;
  ro.experiment_text = resolved_experiment(exp, c);
  // The command that resumes this run: the same experiment, overrides and run directory
  // (seed included: it is one of the overrides).
  ro.resume_command =
      cat("hubel train ", c.experiment, " --resume auto", c.run_dir.empty() ? "" : " --run-dir " + c.run_dir);
  for (const auto& s : c.sets) ro.resume_command += " --set '" + s + "'";
  datasets::Loaders loaders(data, exp.train, comm.rank(), comm.size(), &comm);
  Run run(exp, model, comm, loaders.run_data(), ro);
  Net& net = model.net;
  if (root) print_train_banner(c, exp, model, data, loaders, run, comm, runtime, quiet);
  if (c.vm.count("profile")) net.set_profiling(true);
  launch::ReportInputs report;
  if (root) {
    std::ostringstream summary;
    net.summary(summary);
    report = {c.experiment, summary.str(), ro.experiment_text, data.train->class_names(), "", 0, {}, {}, {}};
    report.about = run_facts(argc, argv, comm, runtime);
    const auto started = std::chrono::steady_clock::now();
    run.on_epoch([&, started](const EpochMetrics&) {
      report.about.back().second = clock_text(seconds_since(started));
      launch::write_report(run_dir, report);
    });
  }
  const RunResult r = runtime.run([&] { return run.train(); });
  if (r.signal) return kOk;
  const bool accuracy = model.loss->reports_accuracy(data.train->num_classes());
  double test_accuracy = -1, test_loss = -1;
  if (r.final) {
    const double n = static_cast<double>(std::max<int64_t>(1, r.final->stats.count));
    if (r.final_name == "test") {
      test_accuracy = static_cast<double>(r.final->stats.correct) / n;
      test_loss = r.final->stats.loss / n;
    }
    report.eval_name = r.final_name;
    report.classes = r.final->classes;
    report.confusion = r.final->confusion;
    const datasets::Dataset* final_set = r.final_name == "test" && loaders.test ? data.test.get() : data.heldout.get();
    if (root && final_set) report.worst = worst_images(*r.final, *final_set);
  }
  if (!root) return kOk;
  launch::write_report(run_dir, report);
  if (c.vm.count("profile"))
    std::cout << format_profile(net.layer_times(), run.trainer().step_times(),
                                static_cast<double>(exp.train.batch) / comm.size());
  if (!r.history.empty()) {
    const auto& last = r.history.back();
    std::cout << "done: " << last.steps << " steps";
    if (accuracy && last.has_test && data.heldout_name == "val")
      std::cout << std::fixed << std::setprecision(4) << ", val accuracy " << last.test_accuracy;
    if (accuracy && test_accuracy >= 0)
      std::cout << std::fixed << std::setprecision(4) << ", test accuracy " << test_accuracy;
    if (!accuracy && test_loss >= 0) std::cout << std::setprecision(6) << ", test loss " << test_loss;
    if (const auto* st = loaders.train->stream()) {  // what the loader thread read, against the training time
      double seconds = 0;
      for (const auto& m : r.history) seconds += m.seconds;
      std::cout << std::fixed << std::setprecision(0) << "\nstreamed: rank 0 read " << st->bytes_read() / 1e6
                << " MB from the file, " << st->bytes_read() / 1e6 / std::max(seconds, 1e-9)
                << " MB/s over the training time";
    }
    std::cout << "\nrun directory: " << fs::absolute(run_dir).string()
              << " (report.html, metrics.jsonl, metrics.csv, experiment.yaml, checkpoints/)\n";
  }
  return kOk;
}

}  // namespace

namespace {

// A wait that outlived its bound (the loader thread): the message, then every rank stops.
comm::Communicator* g_comm = nullptr;
void stop_on_stall(const std::string& message) {
  const int rank = g_comm ? g_comm->rank() : 0, size = g_comm ? g_comm->size() : 1;
  const std::string line =
      (size > 1 ? cat("hubel (rank ", rank, "): error: ") : std::string("hubel: error: ")) + message + "\n";
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
  bool agreed = false;  // every rank knows of the error: no MPI_Abort needed
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
    if (cmd == "train")
      code = cmd_train(argc - 1, argv + 1, *comm);
    else if (cmd == "summary")
      code = cmd_summary(argc - 1, argv + 1);
    else if (cmd == "convert")
      code = cmd_convert(argc - 1, argv + 1, *comm);
    else if (cmd == "inspect")
      code = cmd_inspect(argc - 1, argv + 1);
    else if (cmd == "visualize")
      code = cmd_visualize(argc - 1, argv + 1);
    else if (cmd == "eval")
      code = cmd_eval(argc - 1, argv + 1, *comm);
    else if (cmd == "predict")
      code = cmd_predict(argc - 1, argv + 1, *comm);
    else if (cmd == "export")
      code = cmd_export(argc - 1, argv + 1);
    else
      throw po::error(
          cat("unknown command '", cmd, "'",
              did_you_mean(cmd, {"train", "eval", "predict", "export", "summary", "inspect", "convert", "visualize"})));
  } catch (const AgreedError& e) {
    code = e.code;
    agreed = true;
  } catch (const CommandError& e) {
    std::cerr << prefix << e.what() << "\n\n" << (e.usage.empty() ? std::string(kUsage) : e.usage);
    code = kInputError;
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
  if (code != kOk && comm->size() > 1 && !agreed) static_cast<comm::MpiCommunicator&>(*comm).abort(code);
  return code;
}
