// What a training run shows while it runs and leaves in its run directory (rank 0 only):
//  - on standard error, a progress bar when it is a terminal (epoch, or step of max_steps
//    when that ends the run first, batch of batches, running loss and accuracy,
//    images/second, time until the run is done), redrawn a few times a second; otherwise
//    plain lines after 5, 10 and 20 s, then every `progress_seconds` (a batch job's log:
//    no control characters); evaluations show their progress the same way;
//  - on standard output, one line per epoch;
//  - metrics.jsonl: one JSON object per logged step ({"kind": "step", ...}, every
//    `log_every` steps, with the loss and accuracy of the minibatches since the previous
//    record, this rank's share), per epoch ({"kind": "epoch", ...}) and for the final test
//    ({"kind": "test", ...}); and metrics.csv, one row per epoch.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "framework/trainer.hpp"

namespace hubel {

class RunLog {
 public:
  struct Options {
    std::filesystem::path dir;
    bool append = false;  // a resumed run continues the files
    int64_t epochs = 1;
    int64_t max_steps = 0;         // the run ends there if it comes before the epochs' end
    int64_t log_every = 50;        // steps between metrics.jsonl step records (0: none)
    double progress_seconds = 30;  // between plain progress lines when stderr is not a terminal
    double bar_seconds = 0.2;      // between redraws of the bar on a terminal
    bool accuracy = true;          // the loss reports accuracy
    std::string heldout_name = "test";
    int terminal = -1;  // -1: ask isatty(stderr); 0 or 1 forces it (tests)
  };
  explicit RunLog(const Options& o);

  // After every optimizer step.
  void step(const Trainer::Progress& p, int64_t step);
  // After every epoch: the epoch line, a JSON record and a CSV row.
  void epoch(const EpochMetrics& m);
  // The final evaluation on the test split.
  void test(double loss, double accuracy, int64_t samples);
  // During an evaluation (of the held-out or test split): its progress, as for steps.
  void evaluating(const std::string& name, int64_t done, int64_t total);
  // Prints a line on standard output, clearing the progress bar first.
  void note(const std::string& line);
  // Makes every record written so far durable (fsync): called before each checkpoint, so
  // that the log on disk always reaches at least as far as the newest checkpoint.
  void sync();

  // A resumed run's log: cuts metrics.jsonl and metrics.csv back to the records of steps
  // up to `step` (the checkpoint's), dropping a partial last line and the final test
  // record, so that the resumed run appends each later step once. Atomic (a temporary
  // file renamed over the old one). Returns the number of records removed.
  static int64_t cut_to_step(const std::filesystem::path& dir, int64_t step);

 private:
  // A file appended to by whole records: one write() each, errors reported (a full disk
  // is an Error naming the file, like a failed checkpoint write).
  class Appender {
   public:
    Appender() = default;
    Appender(const std::filesystem::path& path, bool append);
    Appender(Appender&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
    Appender& operator=(Appender&& o) noexcept;
    ~Appender();
    void write(const std::string& record);
    void sync();

   private:
    int fd_ = -1;
    std::string path_;
  };
  void clear_bar();
  bool due();                          // time for the next bar redraw or progress line
  void show(const std::string& line);  // the bar (terminal) or a line
  static std::string bar(int64_t done, int64_t total);
  Options o_;
  int lines_ = 0;  // progress lines shown (their interval grows to progress_seconds)
  std::chrono::steady_clock::time_point eval_start_;
  bool terminal_ = false, bar_shown_ = false;
  Appender jsonl_, csv_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  LossStats logged_;  // the epoch's stats at the previous step record
  int64_t logged_epoch_ = -1;
};

// The --profile table: per layer forward and backward milliseconds per step, their share
// of the step and the rate in GFLOP/s (backward counted as twice forward), then the data
// wait, loss, allreduce wait, optimizer and the rest. rows_per_step: this rank's.
std::string format_profile(const std::vector<Net::LayerTime>& layers, const Trainer::StepTimes& t,
                           double rows_per_step);

// "epoch   3/10  lr 0.0100  train loss ... samples/s"
std::string format_epoch(const EpochMetrics& m, int64_t epochs, bool accuracy, const std::string& heldout = "test");

// "1:23" or "1:02:03".
std::string clock_text(double seconds);

// A JSON number (null when not finite).
std::string json_number(double v);

}  // namespace hubel
