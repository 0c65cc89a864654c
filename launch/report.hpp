// report.html: a self-contained page (inline SVG, CSS and PNG, no script, nothing fetched)
// with the run's facts (date, duration, command, ranks x threads, version, CPU), the
// training and held-out loss and accuracy curves with the epochs marked, the learning
// rate, throughput, the wait for the gradients and each epoch's fastest and slowest rank
// (a straggler shows there), the final confusion matrix with class names and per-class
// accuracy, the misclassified samples with the highest loss as images, a link to the
// visualize page when there is one, the model summary and the experiment. It is drawn
// from the run directory's metrics.jsonl, so a resumed run's report covers the whole run;
// hubel train rewrites it after every epoch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace hubel::launch {

struct ReportInputs {
  std::string title;                                       // the experiment file
  std::string summary;                                     // the model summary table
  std::string experiment;                                  // the experiment as run
  std::vector<std::string> class_names;                    // may be empty: classes are then numbered
  std::string eval_name;                                   // the split of the confusion matrix ("test")
  int64_t classes = 0;                                     // 0: no confusion matrix
  std::vector<int64_t> confusion;                          // classes x classes, rows: true class
  std::vector<std::pair<std::string, std::string>> about;  // the run's facts, in order
  struct Shown {
    std::vector<uint8_t> png;  // the image, a PNG file's bytes
    std::string caption;
  };
  std::vector<Shown> worst;  // misclassified samples, worst first
};

// Writes <run_dir>/report.html (replacing it atomically).
void write_report(const std::filesystem::path& run_dir, const ReportInputs& in);

// One line of metrics.jsonl: a flat JSON object of numbers, strings and nulls. Values are
// kept as text (strings unquoted); a malformed line gives an empty map.
std::map<std::string, std::string> parse_json_line(const std::string& line);

}  // namespace hubel::launch
