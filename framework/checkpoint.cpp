// Checkpoints: writing, validating, reading; the checkpoint directory.
#include "framework/checkpoint.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/hdf5.hpp"

namespace hubel {

namespace fs = std::filesystem;

namespace {

// 2: a checksum covers the attributes and the history; run_id names the lineage.
constexpr int64_t kFormatVersion = 2;
const char* kFormat = "hubel-checkpoint";

std::vector<int64_t> dims_of(const Shape& s) { return {s.begin(), s.end()}; }

struct Column {
  const char* name;
  double EpochMetrics::*field;
};
const Column kColumns[] = {{"lr", &EpochMetrics::lr},
                           {"train_loss", &EpochMetrics::train_loss},
                           {"train_accuracy", &EpochMetrics::train_accuracy},
                           {"test_loss", &EpochMetrics::test_loss},
                           {"test_accuracy", &EpochMetrics::test_accuracy},
                           {"seconds", &EpochMetrics::seconds},
                           {"samples_per_second", &EpochMetrics::samples_per_second}};

// Before the projection shortcut became a node of its own, "<add>_proj/w" was stored as
// "<add>/proj_w": files of that time still load.
std::string legacy_name(const std::string& full) {
  const std::string tail = "_proj/w";
  if (full.size() <= tail.size() || full.compare(full.size() - tail.size(), tail.size(), tail) != 0) return "";
  return full.substr(0, full.size() - tail.size()) + "/proj_w";
}

// Which entries of the arena a group holds: the whole model state, or (optimizer state)
// the trainable parameters only.
enum class Entries { all, trainable };

void write_params(h5::File& f, const std::string& group, const Net& net, std::span<const float> arena,
                  Entries which = Entries::all) {
  for (const auto& p : net.param_info())
    if (which == Entries::all || p.trainable)
      h5::write_dataset(f, group + "/" + p.full_name(), H5T_NATIVE_FLOAT, dims_of(p.shape), arena.data() + p.offset,
                        true);
}

// FNV-1a, 64 bits, over a canonical form of everything a resume reads outside the
// checksummed datasets. Doubles go in by their bits.
class Digest {
 public:
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ULL;
  }
  void add(int64_t v) { bytes(&v, sizeof v); }
  void add(double v) { bytes(&v, sizeof v); }
  void add(const std::string& s) {
    add(static_cast<int64_t>(s.size()));
    bytes(s.data(), s.size());
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

std::string meta_checksum(const CheckpointMeta& m, int64_t version) {
  Digest d;
  d.add(std::string(kFormat));
  d.add(version);
  d.add(m.hubel_version);
  d.add(m.experiment);
  d.add(m.epoch), d.add(m.batch), d.add(m.step);
  d.add(static_cast<int64_t>(m.seed)), d.add(static_cast<int64_t>(m.ranks));
  d.add(m.run_id);
  d.add(m.optimizer_type), d.add(m.optimizer_steps);
  const auto& s = m.schedule;
  d.add(s.factor), d.add(std::isfinite(s.best) ? s.best : -1.0), d.add(s.bad_epochs), d.add(s.cooldown_left),
      d.add(s.reductions);
  d.add(static_cast<int64_t>(m.history.size()));
  for (const auto& h : m.history) {
    d.add(h.epoch), d.add(h.steps), d.add(h.lr), d.add(h.train_loss), d.add(h.train_accuracy);
    d.add(static_cast<int64_t>(h.has_test));
    if (h.has_test) d.add(h.test_loss), d.add(h.test_accuracy);
    d.add(h.seconds), d.add(h.samples_per_second);
  }
  return d.hex();
}

void write_meta(h5::File& f, const CheckpointMeta& m) {
  h5::write_attribute(f, "/", "format", std::string(kFormat));
  h5::write_attribute(f, "/", "format_version", kFormatVersion);
  h5::write_attribute(f, "/", "hubel_version", m.hubel_version);
  h5::write_attribute(f, "/", "experiment", m.experiment);
  h5::write_attribute(f, "/", "experiment_dir", m.experiment_dir);
  h5::write_attribute(f, "/", "epoch", m.epoch);
  h5::write_attribute(f, "/", "batch", m.batch);
  h5::write_attribute(f, "/", "step", m.step);
  h5::write_attribute(f, "/", "seed", static_cast<int64_t>(m.seed));
  h5::write_attribute(f, "/", "ranks", static_cast<int64_t>(m.ranks));
  h5::write_attribute(f, "/", "run_id", m.run_id);
  h5::write_attribute(f, "/", "checksum", meta_checksum(m, kFormatVersion));
  f.create_group("/schedule");
  const auto& s = m.schedule;
  h5::write_attribute(f, "/schedule", "state",
                      std::vector<double>{s.factor, std::isfinite(s.best) ? s.best : -1.0,
                                          static_cast<double>(s.bad_epochs), static_cast<double>(s.cooldown_left),
                                          static_cast<double>(s.reductions), std::isfinite(s.best) ? 1.0 : 0.0});
  f.create_group("/metrics");
  const int64_t n = static_cast<int64_t>(m.history.size());
  std::vector<double> col(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) col[i] = static_cast<double>(m.history[i].epoch);
  if (n) h5::write_dataset(f, "/metrics/epoch", H5T_NATIVE_DOUBLE, {n}, col.data());
  for (int64_t i = 0; i < n; ++i) col[i] = static_cast<double>(m.history[i].steps);
  if (n) h5::write_dataset(f, "/metrics/steps", H5T_NATIVE_DOUBLE, {n}, col.data());
  for (const auto& c : kColumns) {
    const bool test_column = std::string(c.name).rfind("test_", 0) == 0;
    for (int64_t i = 0; i < n; ++i)
      col[i] = test_column && !m.history[i].has_test ? std::nan("") : m.history[i].*(c.field);
    if (n) h5::write_dataset(f, std::string("/metrics/") + c.name, H5T_NATIVE_DOUBLE, {n}, col.data());
  }
}

void check_format(const h5::File& f) {
  const auto format = h5::read_string_attribute(f, "/", "format");
  if (!format || *format != kFormat)
    h5::fail(f, "",
             "not a hubel checkpoint (no format = \"hubel-checkpoint\" attribute): an incomplete or foreign file");
  const auto version = h5::read_int_attribute(f, "/", "format_version");
  if (!version || *version > kFormatVersion)
    h5::fail(f, "",
             cat("checkpoint format version ", version ? *version : -1, " is newer than this hubel reads (",
                 kFormatVersion, ")"));
}

int64_t required_int(const h5::File& f, const char* name) {
  const auto v = h5::read_int_attribute(f, "/", name);
  if (!v) h5::fail(f, "", cat("the checkpoint lacks its '", name, "' attribute"));
  return *v;
}

CheckpointMeta read_meta(const h5::File& f) {
  check_format(f);
  CheckpointMeta m;
  m.epoch = required_int(f, "epoch");
  m.batch = required_int(f, "batch");
  m.step = required_int(f, "step");
  m.seed = static_cast<uint64_t>(required_int(f, "seed"));
  m.ranks = static_cast<int>(required_int(f, "ranks"));
  if (m.epoch < 0 || m.batch < 0 || m.step < 0) h5::fail(f, "", "negative epoch, batch or step");
  m.experiment = h5::read_string_attribute(f, "/", "experiment").value_or("");
  m.experiment_dir = h5::read_string_attribute(f, "/", "experiment_dir").value_or("");
  m.hubel_version = h5::read_string_attribute(f, "/", "hubel_version").value_or("");
  m.run_id = h5::read_string_attribute(f, "/", "run_id").value_or("");
  if (f.exists("/optimizer")) {
    m.optimizer_type = h5::read_string_attribute(f, "/optimizer", "type").value_or("");
    m.optimizer_steps = h5::read_int_attribute(f, "/optimizer", "steps").value_or(m.step);
  }
  if (auto s = h5::read_doubles_attribute(f, "/schedule", "state"); s && s->size() == 6) {
    m.schedule.factor = (*s)[0];
    m.schedule.best = (*s)[5] > 0 ? (*s)[1] : std::numeric_limits<double>::infinity();
    for (int i = 2; i <= 4; ++i)
      if (!((*s)[i] >= 0 && (*s)[i] <= 1e15 && (*s)[i] == std::floor((*s)[i])))
        h5::fail(f, "/schedule", cat("the state holds ", (*s)[i], " where a count belongs"));
    m.schedule.bad_epochs = static_cast<int64_t>((*s)[2]);
    m.schedule.cooldown_left = static_cast<int64_t>((*s)[3]);
    m.schedule.reductions = static_cast<int64_t>((*s)[4]);
  }
  if (f.exists("/metrics/epoch")) {
    const auto info = h5::dataset_info(f, "/metrics/epoch");
    if (info.dims.size() != 1 || info.dims[0] > 1'000'000) h5::fail(f, "/metrics/epoch", "not a history");
    h5::check_stored(f, "/metrics/epoch", info);
    const auto n = info.dims[0];
    std::vector<double> col(static_cast<size_t>(n));
    m.history.resize(static_cast<size_t>(n));
    auto read_col = [&](const std::string& name) {
      const auto ci = h5::dataset_info(f, "/metrics/" + name);
      if (ci.dims != info.dims || ci.type_class != H5T_FLOAT)
        h5::fail(f, "/metrics/" + name, "a history column of another length or type");
      h5::check_stored(f, "/metrics/" + name, ci);
      h5::read_dataset(f, "/metrics/" + name, H5T_NATIVE_DOUBLE, col.data());
    };
    // Counts stored as doubles: whole, non-negative and sane before they become integers.
    auto counts = [&](const char* name) {
      read_col(name);
      std::vector<int64_t> out(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        if (!(col[i] >= 0 && col[i] <= 1e15 && col[i] == std::floor(col[i])))
          h5::fail(f, cat("/metrics/", name), cat("entry ", i, " is ", col[i], ", not a count"));
        out[static_cast<size_t>(i)] = static_cast<int64_t>(col[i]);
      }
      return out;
    };
    const auto epochs = counts("epoch"), steps = counts("steps");
    for (int64_t i = 0; i < n; ++i) m.history[i].epoch = epochs[i], m.history[i].steps = steps[i];
    for (const auto& c : kColumns) {
      read_col(c.name);
      for (int64_t i = 0; i < n; ++i) m.history[i].*(c.field) = col[i];
    }
    for (auto& h : m.history) h.has_test = !std::isnan(h.test_loss);
  }
  // Version 1 predates the checksum; from version 2 on it is required.
  const int64_t version = required_int(f, "format_version");
  const auto stored = h5::read_string_attribute(f, "/", "checksum");
  if (stored || version >= 2) {
    if (!stored) h5::fail(f, "", "the checkpoint lacks its 'checksum' attribute: damaged");
    if (*stored != meta_checksum(m, version))
      h5::fail(f, "", "the metadata checksum does not match (an attribute, the experiment or the history is damaged)");
  }
  return m;
}

// Reads group/<layer>/<param> for every parameter of the net into arena.
void read_params(const h5::File& f, const std::string& group, const Net& net, std::span<float> arena,
                 Entries which = Entries::all) {
  // In the model's order (the arena holds the last layer first), so a mismatch is reported
  // at the first layer that differs.
  std::vector<const ParamInfo*> order;
  for (const auto& p : net.param_info())
    if (which == Entries::all || p.trainable) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(),
                   [](const ParamInfo* a, const ParamInfo* b) { return a->node < b->node; });
  for (const ParamInfo* pp : order) {
    const ParamInfo& p = *pp;
    std::string path = group + "/" + p.full_name();
    if (!f.exists(path) && !legacy_name(p.full_name()).empty() && f.exists(group + "/" + legacy_name(p.full_name())))
      path = group + "/" + legacy_name(p.full_name());
    if (!f.exists(path)) {
      std::string have;
      for (const auto& q : read_checkpoint_params(f.path())) {
        if (have.size() > 200) {
          have += ", ...";
          break;
        }
        have += (have.empty() ? "" : ", ") + q.name;
      }
      h5::fail(f, path,
               cat("the model has parameter ", p.full_name(), " ", p.shape.str(),
                   " but the checkpoint does not: it was written for another model (it has: ", have, ")"));
    }
    const auto info = h5::dataset_info(f, path);
    if (info.dims != dims_of(p.shape)) {
      const Shape stored(
          std::span<const int64_t>(info.dims.data(), std::min<size_t>(info.dims.size(), Shape::kMaxRank)));
      h5::fail(f, path,
               cat("parameter ", p.full_name(), " has shape ", stored.str(), " in the checkpoint but ", p.shape.str(),
                   " in the model"));
    }
    if (info.type_class != H5T_FLOAT) h5::fail(f, path, "not a float array");
    h5::check_stored(f, path, info);
    h5::read_dataset(f, path, H5T_NATIVE_FLOAT, arena.data() + p.offset);
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const Net& net, Optimizer& opt, const Schedule&,
                     const CheckpointMeta& given) {
  CheckpointMeta meta = given;
  meta.optimizer_type = opt.type();
  meta.optimizer_steps = opt.steps();
  h5::write_file_atomically(path, [&](h5::File& f) {
    write_meta(f, meta);
    write_params(f, "/model", net, net.state());
    f.create_group("/optimizer");
    h5::write_attribute(f, "/optimizer", "type", opt.type());
    h5::write_attribute(f, "/optimizer", "steps", opt.steps());
    for (auto& [name, state] : opt.state()) write_params(f, "/optimizer/" + name, net, state, Entries::trainable);
  });
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  return read_meta(f);
}

CheckpointMeta load_checkpoint(const std::string& path, Net& net, Optimizer* opt, Schedule* schedule) {
  const h5::File f = h5::File::open_read(path);
  if (h5::read_string_attribute(f, "/", "format") == std::optional<std::string>("hubel-weights")) {
    // Exported weights: nothing but /model.
    if (opt || schedule) h5::fail(f, "", "holds weights only: resume from it with --weights-only");
    std::vector<float> params(net.state().size(), 0.0f);
    read_params(f, "/model", net, params);
    std::copy(params.begin(), params.end(), net.state().begin());
    return {};
  }
  CheckpointMeta m = read_meta(f);
  // Read into scratch first: a failure half-way leaves the net as it was.
  std::vector<float> params(net.state().size(), 0.0f);
  read_params(f, "/model", net, params);
  std::vector<std::pair<std::string, std::vector<float>>> states;
  if (opt) {
    if (m.optimizer_type.empty()) h5::fail(f, "/optimizer", "the checkpoint has no optimizer state");
    if (m.optimizer_type != opt->type())
      h5::fail(f, "/optimizer",
               cat("the checkpoint's optimizer is ", m.optimizer_type, " but the experiment's is ", opt->type(),
                   ": resume with the same optimizer, or with --weights-only to start a new one from these weights"));
    for (auto& [name, state] : opt->state()) {
      if (!f.exists("/optimizer/" + name))
        h5::fail(f, "/optimizer/" + name,
                 cat("missing optimizer state '", name, "' (was the optimizer configured differently?)"));
      states.emplace_back(name, std::vector<float>(state.size(), 0.0f));
      read_params(f, "/optimizer/" + name, net, states.back().second, Entries::trainable);
    }
  }
  std::copy(params.begin(), params.end(), net.state().begin());
  if (opt) {
    auto st = opt->state();
    for (size_t i = 0; i < st.size(); ++i)
      std::copy(states[i].second.begin(), states[i].second.end(), st[i].second.begin());
    opt->set_steps(m.optimizer_steps);
  }
  if (schedule) schedule->set_state(m.schedule);
  return m;
}

namespace {
// Every float array under group (parameters, or optimizer state), read whole: reading
// verifies each one's Fletcher-32 checksum.
std::vector<StoredParam> read_group(const h5::File& f, const std::string& group) {
  std::vector<StoredParam> out;
  if (!f.exists(group)) return out;
  // The names first (HDF5 calls back from its C frames: the callback only records, and
  // never throws), then each dataset read and checked after HDF5 has returned.
  const std::vector<std::string> names = h5::dataset_names(f, group);
  for (const auto& n : names) {
    const std::string full = group + "/" + n;
    const auto di = h5::dataset_info(f, full);
    if (di.type_class != H5T_FLOAT) h5::fail(f, full, "a parameter that is not a float array");
    if (di.dims.size() > Shape::kMaxRank) h5::fail(f, full, cat("a parameter of rank ", di.dims.size()));
    int64_t total = 1;
    for (auto d : di.dims) {
      if (d < 0 || d > (int64_t{1} << 31) || total > (int64_t{1} << 31)) h5::fail(f, full, "absurd dimensions");
      total *= d;
    }
    if (total > (int64_t{1} << 31))
      h5::fail(f, full, cat("declares ", total, " values: more than a parameter can hold"));
    h5::check_stored(f, full, di);  // declared sizes against the bytes really stored, before allocating
    StoredParam p;
    p.name = n;
    p.shape = Shape(std::span<const int64_t>(di.dims.data(), di.dims.size()));
    p.values.resize(static_cast<size_t>(total));
    h5::read_dataset(f, full, H5T_NATIVE_FLOAT, p.values.data());
    out.push_back(std::move(p));
  }
  return out;
}
}  // namespace

std::vector<StoredParam> read_checkpoint_params(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  return read_group(f, "/model");
}

void verify_checkpoint(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  read_meta(f);
  (void)read_group(f, "/model");
  (void)read_group(f, "/optimizer");
}

namespace {
void write_weights_header(h5::File& f) {
  h5::write_attribute(f, "/", "format", std::string("hubel-weights"));
  h5::write_attribute(f, "/", "format_version", kFormatVersion);
}
}  // namespace

void export_weights(const std::string& path, const Net& net) {
  h5::write_file_atomically(path, [&](h5::File& f) {
    write_weights_header(f);
    write_params(f, "/model", net, net.state());
  });
}

void export_weights(const std::string& path, const std::string& checkpoint) {
  read_checkpoint_meta(checkpoint);  // a hubel checkpoint, whole
  const auto params = read_checkpoint_params(checkpoint);
  h5::write_file_atomically(path, [&](h5::File& f) {
    write_weights_header(f);
    for (const auto& p : params)
      h5::write_dataset(f, "/model/" + p.name, H5T_NATIVE_FLOAT, dims_of(p.shape), p.values.data(), true);
  });
}

WeightsReport load_weights_by_name(const std::string& source, Net& net, const std::vector<std::string>& exclude) {
  std::string path = source;
  if (fs::is_directory(source)) {
    const auto found = CheckpointDir(source, 1).newest_good();
    if (!found) throw DataError(cat(source, ": a directory without a readable checkpoint"));
    path = *found;
  }
  {
    const h5::File f = h5::File::open_read(path);
    const auto format = h5::read_string_attribute(f, "/", "format");
    if (format == std::optional<std::string>("hubel-checkpoint"))
      read_meta(f);  // whole and of a known version
    else if (format != std::optional<std::string>("hubel-weights"))
      h5::fail(f, "", "neither a hubel checkpoint nor an exported weights file (hubel inspect --export-weights)");
  }
  std::map<std::string, StoredParam> stored;
  for (auto& p : read_checkpoint_params(path)) stored.emplace(p.name, std::move(p));
  std::vector<bool> used(exclude.size(), false);
  WeightsReport report;
  report.file = path;
  std::vector<float> state(net.state().begin(), net.state().end());
  std::vector<const ParamInfo*> order;
  for (const auto& p : net.param_info()) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(),
                   [](const ParamInfo* a, const ParamInfo* b) { return a->node < b->node; });
  for (const ParamInfo* p : order) {
    bool excluded = false;
    for (size_t i = 0; i < exclude.size(); ++i)
      if (glob_match(exclude[i], p->layer)) excluded = used[i] = true;
    if (excluded) {
      report.fresh.push_back(p->full_name());
      stored.erase(p->full_name());
      continue;
    }
    auto it = stored.find(p->full_name());
    if (it == stored.end() && !legacy_name(p->full_name()).empty()) it = stored.find(legacy_name(p->full_name()));
    if (it == stored.end())
      throw DataError(cat(path, ": has no ", p->full_name(), " ", p->shape.str(),
                          ": to start that layer from its initialization, add '", p->layer,
                          "' to model.weights.exclude"));
    if (it->second.shape != p->shape)
      throw DataError(cat(path, ": ", p->full_name(), " has shape ", it->second.shape.str(), " there but ",
                          p->shape.str(), " in the model (a new head? add '", p->layer, "' to model.weights.exclude)"));
    std::copy(it->second.values.begin(), it->second.values.end(), state.begin() + p->offset);
    report.values += p->size;
    stored.erase(it);
  }
  for (size_t i = 0; i < exclude.size(); ++i)
    if (!used[i]) throw ConfigError(cat("model.weights.exclude: the pattern '", exclude[i], "' matches no layer"));
  for (const auto& [name, p] : stored) report.unused.push_back(name);
  std::copy(state.begin(), state.end(), net.state().begin());
  return report;
}

namespace {
// Steps of the checkpoints in a directory, newest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt-", 0) != 0 || name.size() < 9 || name.substr(name.size() - 3) != ".h5") continue;
    char* end = nullptr;
    const long long step = std::strtoll(name.c_str() + 5, &end, 10);
    if (end && std::string(end) == ".h5") out.emplace_back(step, e.path().string());
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

bool readable(const std::string& path) {
  try {
    verify_checkpoint(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}
}  // namespace

std::string new_run_id() {
  std::random_device rd;
  const uint64_t t = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r ^ (t * 0x9e3779b97f4a7c15ULL)));
  return buf;
}

std::vector<std::pair<int64_t, std::string>> CheckpointDir::list() const { return list_checkpoints(dir_); }

std::string CheckpointDir::move_aside() const {
  const auto all = list();
  const fs::path latest = fs::path(dir_) / "latest";
  std::error_code ec;
  if (all.empty() && !fs::exists(latest, ec) && !fs::exists(fs::path(dir_) / "best.h5", ec)) return "";
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  fs::path to = fs::path(dir_) / cat("previous-", stamp);
  for (int i = 2; fs::exists(to, ec); ++i) to = fs::path(dir_) / cat("previous-", stamp, "-", i);
  fs::create_directories(to, ec);
  if (ec) throw DataError(cat("cannot create ", to.string(), ": ", ec.message()));
  auto move = [&](const fs::path& from) {
    fs::rename(from, to / from.filename(), ec);
    if (ec) throw DataError(cat("cannot move ", from.string(), " to ", to.string(), ": ", ec.message()));
  };
  for (const auto& [step, path] : all) move(path);
  if (fs::exists(latest, ec)) move(latest);
  if (fs::exists(fs::path(dir_) / "best.h5", ec)) move(fs::path(dir_) / "best.h5");
  return to.string();
}

std::string CheckpointDir::mark_best(const std::string& path) const {
  const std::string best = (fs::path(dir_) / "best.h5").string(), tmp = h5::temporary_name(best);
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_hard_link(path, tmp, ec);
  if (ec) {  // a file system without hard links: a copy
    fs::copy_file(path, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) throw DataError(cat("cannot copy ", path, " to ", tmp, ": ", ec.message()));
  }
  h5::durable_rename(tmp, best);
  return best;
}

std::string CheckpointDir::write(const Net& net, Optimizer& opt, const Schedule& schedule,
                                 const CheckpointMeta& meta) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw DataError(cat("cannot create the checkpoint directory ", dir_, ": ", ec.message()));
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%09lld.h5", static_cast<long long>(meta.step));
  const std::string path = (fs::path(dir_) / name).string();
  // Another run's checkpoint of the same step (copied in by hand) is kept under another
  // name, not overwritten: only this run's own files are ever replaced or pruned.
  if (fs::exists(path, ec)) {
    std::string id = "unreadable";
    try {
      const h5::File f = h5::File::open_read(path);
      id = h5::read_string_attribute(f, "/", "run_id").value_or("unknown");
    } catch (const Error&) {
    }
    if (id != meta.run_id) {
      fs::rename(path, cat(path, ".run-", id), ec);
      if (ec) throw DataError(cat("cannot move another run's ", path, " aside: ", ec.message()));
    }
  }
  save_checkpoint(path, net, opt, schedule, meta);
  // The pointer, replaced atomically too.
  const std::string latest = (fs::path(dir_) / "latest").string(), tmp = h5::temporary_name(latest);
  {
    std::ofstream out(tmp);
    out << name << "\n";
    if (!out.flush()) throw DataError(cat("cannot write ", tmp));
  }
  h5::durable_rename(tmp, latest);
  // Pruning: only this lineage's checkpoints, never the one just written, never a file
  // whose lineage cannot be read (another run's, or a damaged one: left for the user).
  int kept = 1;
  for (const auto& [step, other] : list_checkpoints(dir_)) {
    if (other == path) continue;
    std::string id;
    try {
      const h5::File f = h5::File::open_read(other);
      id = h5::read_string_attribute(f, "/", "run_id").value_or("");
    } catch (const Error&) {
      continue;
    }
    if (id.empty() || id != meta.run_id) continue;
    if (++kept > std::max(keep_, 1)) fs::remove(other, ec);
  }
  return path;
}

std::optional<std::string> CheckpointDir::newest_good() const {
  std::ifstream in(fs::path(dir_) / "latest");
  std::string name;
  if (in >> name) {
    const std::string path = (fs::path(dir_) / name).string();
    if (readable(path)) return path;
  }
  for (const auto& [step, path] : list_checkpoints(dir_))
    if (readable(path)) return path;
  return std::nullopt;
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const auto good = CheckpointDir(path, 1).newest_good();
    if (!good) throw DataError(cat(path, ": a directory without a readable checkpoint (ckpt-<step>.h5)"));
    return *good;
  }
  if (fs::path(path).filename() == "latest") {
    std::ifstream in(path);
    std::string name;
    if (!(in >> name)) throw DataError(cat(path, ": cannot read the checkpoint name in this pointer file"));
    return (fs::path(path).parent_path() / name).string();
  }
  if (!fs::exists(path, ec)) throw DataError(cat(path, ": no such checkpoint file or directory"));
  return path;
}

Config checkpoint_experiment(const std::string& experiment, const std::string& checkpoint,
                             const std::vector<std::string>& sets) {
  Config root = [&] {
    if (!experiment.empty()) return Config::load_file(experiment);
    if (h5::read_string_attribute(h5::File::open_read(checkpoint), "/", "format") ==
        std::optional<std::string>("hubel-weights"))
      throw ConfigError(cat(checkpoint, ": holds exported weights and no experiment; name the experiment file too"));
    const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
    if (meta.experiment.empty())
      throw ConfigError(cat(checkpoint, ": holds no experiment; name the experiment file too"));
    Config c = Config::parse(meta.experiment, checkpoint + " (its experiment)");
    c.set_base(meta.experiment_dir);  // relative paths as where it was run
    return c;
  }();
  for (const auto& s : sets) root.apply_override(s);
  return root;
}

}  // namespace hubel
