// Progress display and metrics files.
#include "framework/run_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "framework/error.hpp"
#include "framework/hdf5.hpp"

namespace hubel {

namespace fs = std::filesystem;

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os << std::setprecision(9) << v;
  return os.str();
}

// 83 -> "1:23", 4000 -> "1:06:40"
std::string clock_text(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

std::string format_epoch(const EpochMetrics& m, int64_t epochs, bool accuracy, const std::string& heldout) {
  std::ostringstream os;
  os << std::fixed << "epoch " << std::setw(3) << m.epoch << "/" << epochs << "  lr " << std::setprecision(4) << m.lr
     << "  train loss " << std::setprecision(4) << m.train_loss;
  if (accuracy) os << " acc " << std::setprecision(4) << m.train_accuracy;
  if (m.has_test) {
    os << "  " << heldout << " loss " << std::setprecision(4) << m.test_loss;
    if (accuracy) os << " acc " << std::setprecision(4) << m.test_accuracy;
  }
  os << "  " << std::setprecision(2) << m.seconds << " s  " << std::setprecision(0) << m.samples_per_second
     << " samples/s";
  if (m.comm_wait_ms > 0) os << "  comm wait " << std::setprecision(2) << m.comm_wait_ms << " ms/step";
  if (m.momentum >= 0) os << "  momentum " << std::setprecision(2) << m.momentum;
  if (m.lr_reduced) os << "  (plateau: learning rate reduced)";
  if (m.partial) os << "  (part of the epoch: max_steps " << m.steps << ")";
  return os.str();
}

std::string format_profile(const std::vector<Net::LayerTime>& layers, const Trainer::StepTimes& t,
                           double rows_per_step) {
  std::ostringstream os;
  const double steps = static_cast<double>(std::max<int64_t>(1, t.steps));
  const double total_ms = 1e3 * t.total / steps;
  os << std::fixed << "profile (rank 0, " << t.steps << " steps, " << std::setprecision(1) << rows_per_step
     << " rows per step; milliseconds per step):\n";
  size_t w = 18;
  for (const auto& l : layers) w = std::max(w, l.name.size() + 2);
  os << std::left << std::setw(static_cast<int>(w)) << "layer" << std::setw(16) << "type" << std::right << std::setw(10)
     << "forward" << std::setw(10) << "backward" << std::setw(8) << "share" << std::setw(10) << "GFLOP/s"
     << "  plan\n";
  double layers_ms = 0;
  auto row = [&](const std::string& name, const std::string& type, double ms_f, double ms_b, double gflops,
                 const std::string& plan = "") {
    os << std::left << std::setw(static_cast<int>(w)) << name << std::setw(16) << type << std::right
       << std::setprecision(3) << std::setw(10) << ms_f << std::setw(10) << ms_b << std::setprecision(1) << std::setw(7)
       << (total_ms > 0 ? 100 * (ms_f + ms_b) / total_ms : 0) << "%";
    if (gflops > 0) os << std::setw(10) << std::setprecision(1) << gflops;
    if (!plan.empty()) os << (gflops > 0 ? "" : "          ") << "  " << plan;
    os << "\n";
  };
  for (const auto& l : layers) {
    const double f = 1e3 * l.forward / steps, b = 1e3 * l.backward / steps;
    layers_ms += f + b;
    const double work = 3.0 * static_cast<double>(l.flops) * rows_per_step;  // forward + backward
    row(l.name, l.type, f, b, f + b > 0 && l.flops > 1000 ? work / ((f + b) * 1e-3) / 1e9 : 0, l.plan);
  }
  const double data = 1e3 * t.data / steps, loss = 1e3 * t.loss / steps, comm = 1e3 * t.comm_wait / steps,
               opt = 1e3 * t.optimizer / steps;
  row("(layers)", "", layers_ms, 0, 0);
  row("(data wait)", "", data, 0, 0);
  row("(loss)", "", loss, 0, 0);
  row("(allreduce wait)", "", comm, 0, 0);
  row("(optimizer)", "", opt, 0, 0);
  row("(other)", "", std::max(0.0, total_ms - layers_ms - data - loss - comm - opt), 0, 0);
  row("(step)", "", total_ms, 0, 0);
  return os.str();
}

namespace {
const char* kCsvHeader =
    "epoch,steps,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,samples_per_second,comm_wait_ms\n";

// The integer after `"key": ` in a JSON line, or -1.
int64_t json_int(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\": ";
  const size_t at = line.find(k);
  if (at == std::string::npos) return -1;
  char* end = nullptr;
  const long long v = std::strtoll(line.c_str() + at + k.size(), &end, 10);
  return end == line.c_str() + at + k.size() ? -1 : v;
}

// Rewrites `path` keeping the lines `keep` accepts, up to the first it refuses (and never
// an unterminated last line); returns how many lines were dropped.
template <class Keep>
int64_t cut_file(const fs::path& path, Keep&& keep) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  int64_t dropped = 0;
  size_t pos = 0;
  bool cutting = false;
  while (pos < all.size()) {
    const size_t nl = all.find('\n', pos);
    const std::string line = all.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!cutting && nl != std::string::npos && keep(line))
      out += line + "\n";
    else
      cutting = true, ++dropped;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (dropped == 0) return 0;
  const std::string tmp = path.string() + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    o << out;
    if (!o.flush()) throw Error(cat("cannot rewrite ", path.string(), " (as ", tmp, ")"));
  }
  h5::durable_rename(tmp, path.string());
  return dropped;
}
}  // namespace

RunLog::Appender::Appender(const fs::path& path, bool append) : path_(path.string()) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (fd_ < 0) {
    const int err = errno;
    throw DataError(cat("cannot write ", path_, ": ", std::strerror(err), h5::write_hint(err)));
  }
  if (!append) return;
  // Appending: position at the end (O_APPEND does so for every write).
}

RunLog::Appender& RunLog::Appender::operator=(Appender&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

RunLog::Appender::~Appender() {
  if (fd_ >= 0) ::close(fd_);
}

void RunLog::Appender::write(const std::string& record) {
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      // A partial record is taken back, so the file never ends mid-line.
      if (done > 0) {
        const off_t end = ::lseek(fd_, 0, SEEK_END);
        if (end >= static_cast<off_t>(done)) (void)::ftruncate(fd_, end - static_cast<off_t>(done));
      }
      throw Error(cat("writing ", path_, " failed: ", std::strerror(err), h5::write_hint(err)));
    }
    done += static_cast<size_t>(n);
  }
}

void RunLog::Appender::sync() {
  if (fd_ >= 0 && ::fsync(fd_) != 0) {
    const int err = errno;
    throw Error(cat("writing ", path_, " failed (fsync): ", std::strerror(err), h5::write_hint(err)));
  }
}

RunLog::RunLog(const Options& o) : o_(o), start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  terminal_ = o.terminal >= 0 ? o.terminal == 1 : ::isatty(STDERR_FILENO) == 1;
  const fs::path jsonl = o.dir / "metrics.jsonl", csv = o.dir / "metrics.csv";
  const bool csv_exists = fs::exists(csv) && fs::file_size(csv) > 0;
  jsonl_ = Appender(jsonl, o.append);
  csv_ = Appender(csv, o.append);
  if (!o.append || !csv_exists) csv_.write(kCsvHeader);
}

void RunLog::sync() {
  jsonl_.sync();
  csv_.sync();
}

int64_t RunLog::cut_to_step(const fs::path& dir, int64_t step) {
  int64_t dropped = cut_file(dir / "metrics.jsonl", [&](const std::string& line) {
    if (line.size() < 2 || line.front() != '{' || line.back() != '}') return false;
    if (line.find("\"kind\": \"step\"") != std::string::npos) {
      const int64_t s = json_int(line, "step");
      return s >= 0 && s <= step;
    }
    if (line.find("\"kind\": \"epoch\"") != std::string::npos) {
      if (line.find("\"partial\": true") != std::string::npos) return false;  // trained again whole
      const int64_t s = json_int(line, "steps");
      return s >= 0 && s <= step;
    }
    return false;  // the final test record, or anything unknown
  });
  bool header = true;
  dropped += cut_file(dir / "metrics.csv", [&](const std::string& line) {
    if (header) return header = false, line + "\n" == kCsvHeader;
    const size_t a = line.find(','), b = line.find(',', a + 1);
    if (a == std::string::npos || b == std::string::npos) return false;
    char* end = nullptr;
    const long long s = std::strtoll(line.c_str() + a + 1, &end, 10);
    return end == line.c_str() + b && s <= step;
  });
  return dropped;
}

void RunLog::clear_bar() {
  if (!bar_shown_) return;
  std::cerr << "\r\033[K" << std::flush;
  bar_shown_ = false;
}

void RunLog::note(const std::string& line) {
  clear_bar();
  std::cout << line << std::endl;
}

void RunLog::step(const Trainer::Progress& p, int64_t step) {
  const double loss = p.stats.count ? p.stats.loss / static_cast<double>(p.stats.count) : 0;
  const double acc = p.stats.count ? static_cast<double>(p.stats.correct) / static_cast<double>(p.stats.count) : 0;
  const double rate = p.seconds > 0 ? static_cast<double>(p.samples) / p.seconds : 0;
  if (p.epoch != logged_epoch_) logged_ = {}, logged_epoch_ = p.epoch;
  if (o_.log_every > 0 && step % o_.log_every == 0) {
    // The minibatches since the previous record.
    const double n = static_cast<double>(p.stats.count - logged_.count);
    const double window_loss = n > 0 ? (p.stats.loss - logged_.loss) / n : loss;
    const double window_acc = n > 0 ? static_cast<double>(p.stats.correct - logged_.correct) / n : acc;
    logged_ = p.stats;
    std::ostringstream r;
    r << "{\"kind\": \"step\", \"epoch\": " << p.epoch + 1 << ", \"batch\": " << p.batches_done
      << ", \"step\": " << step << ", \"loss\": " << json_number(window_loss);
    if (o_.accuracy) r << ", \"accuracy\": " << json_number(window_acc);
    r << ", \"lr\": " << json_number(p.lr) << ", \"samples_per_second\": " << json_number(rate)
      << ", \"time\": " << json_number(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count())
      << "}\n";
    jsonl_.write(r.str());
  }
  if (!due()) return;
  // Time left in the run: this epoch's pace over what remains of it and of the epochs
  // after it, or over the steps left to max_steps when that comes first.
  const double per_batch = p.batches_done ? p.seconds / static_cast<double>(p.batches_done) : 0;
  const int64_t batches_left = (p.batches_per_epoch - p.batches_done) + (o_.epochs - p.epoch - 1) * p.batches_per_epoch;
  const bool by_steps = o_.max_steps > 0 && o_.max_steps - step < batches_left;
  const double left = per_batch * static_cast<double>(by_steps ? o_.max_steps - step : batches_left);
  std::ostringstream os;
  os << std::fixed;
  if (by_steps)
    os << "step " << step << "/" << o_.max_steps << " (max_steps; epoch " << p.epoch + 1 << ") ";
  else
    os << "epoch " << p.epoch + 1 << "/" << o_.epochs << " ";
  if (terminal_) {
    os << bar(p.batches_done, p.batches_per_epoch) << " ";
  } else {
    os << " batch ";
  }
  os << p.batches_done << "/" << p.batches_per_epoch << "  loss " << std::setprecision(4) << loss;
  if (o_.accuracy) os << " acc " << std::setprecision(4) << acc;
  os << "  " << std::setprecision(0) << rate << " img/s  run done in " << clock_text(left);
  show(os.str());
}

std::string RunLog::bar(int64_t done, int64_t total) {
  const int width = 24;
  const auto filled = static_cast<int>(width * done / std::max<int64_t>(1, total));
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') +
         "]";
}

bool RunLog::due() {
  // A terminal's bar a few times a second; a log's lines after 5, 10, 20 s, then every
  // progress_seconds, so that a short run under mpirun shows its progress too.
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  // (An infinite progress_seconds is --progress none.)
  const double wait = terminal_ || std::isinf(o_.progress_seconds)
                          ? (terminal_ ? o_.bar_seconds : o_.progress_seconds)
                          : std::min(o_.progress_seconds, 5.0 * static_cast<double>(int64_t{1} << std::min(lines_, 4)));
  if (since < wait) return false;
  last_draw_ = now;
  return true;
}

void RunLog::show(const std::string& line) {
  if (terminal_) {
    std::cerr << "\r" << line << "\033[K" << std::flush;
    bar_shown_ = true;
  } else {
    std::cerr << line << std::endl;
    ++lines_;
  }
}

void RunLog::evaluating(const std::string& name, int64_t done, int64_t total) {
  if (done == 0) eval_start_ = std::chrono::steady_clock::now();
  if (done >= total || !due()) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start_).count();
  const double left = done > 0 ? seconds / static_cast<double>(done) * static_cast<double>(total - done) : 0;
  std::ostringstream os;
  os << "evaluating " << name << " " << (terminal_ ? bar(done, total) + " " : std::string("batch ")) << done << "/"
     << total << "  done in " << clock_text(left);
  show(os.str());
}

void RunLog::epoch(const EpochMetrics& m) {
  clear_bar();
  std::cout << format_epoch(m, o_.epochs, o_.accuracy, o_.heldout_name) << std::endl;
  std::ostringstream r, c;
  r << "{\"kind\": \"epoch\", \"epoch\": " << m.epoch << ", \"steps\": " << m.steps << ", \"lr\": " << json_number(m.lr)
    << ", \"train_loss\": " << json_number(m.train_loss);
  if (o_.accuracy) r << ", \"train_accuracy\": " << json_number(m.train_accuracy);
  if (m.has_test) {
    r << ", \"heldout\": \"" << o_.heldout_name << "\", \"heldout_loss\": " << json_number(m.test_loss);
    if (o_.accuracy) r << ", \"heldout_accuracy\": " << json_number(m.test_accuracy);
  }
  r << ", \"seconds\": " << json_number(m.seconds) << ", \"samples_per_second\": " << json_number(m.samples_per_second)
    << ", \"comm_wait_ms\": " << json_number(m.comm_wait_ms) << ", \"busy_ms_min\": " << json_number(m.busy_ms_min)
    << ", \"busy_ms_max\": " << json_number(m.busy_ms_max) << ", \"slowest_rank\": " << m.slowest_rank
    << (m.partial ? ", \"partial\": true" : "") << "}\n";
  jsonl_.write(r.str());
  if (m.partial) return;  // (metrics.csv has whole epochs only)
  c << m.epoch << "," << m.steps << "," << m.lr << "," << m.train_loss << "," << m.train_accuracy << ","
    << (m.has_test ? std::to_string(m.test_loss) : "") << "," << (m.has_test ? std::to_string(m.test_accuracy) : "")
    << "," << m.seconds << "," << m.samples_per_second << "," << m.comm_wait_ms << "\n";
  csv_.write(c.str());
}

void RunLog::test(double loss, double accuracy, int64_t samples) {
  std::ostringstream r;
  r << "{\"kind\": \"test\", \"samples\": " << samples << ", \"loss\": " << json_number(loss);
  if (o_.accuracy) r << ", \"accuracy\": " << json_number(accuracy);
  r << "}\n";
  jsonl_.write(r.str());
}

}  // namespace hubel
