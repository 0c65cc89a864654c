// report.html: a self-contained page (inline SVG and CSS, no script, nothing fetched) with
// the training and held-out loss and accuracy curves, the learning-rate curve, the final
// confusion matrix with class names and per-class accuracy, the model summary and the
// experiment. It is drawn from the run directory's metrics.jsonl, so a resumed run's
// report covers the whole run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace hubel::launch {

struct ReportInputs {
  std::string title;                     // the experiment file
  std::string summary;                   // the model summary table
  std::string experiment;                // the experiment as run
  std::vector<std::string> class_names;  // may be empty: classes are then numbered
  std::string eval_name;                 // the split of the confusion matrix ("test")
  int64_t classes = 0;                   // 0: no confusion matrix
  std::vector<int64_t> confusion;        // classes x classes, rows: true class
};

// Writes <run_dir>/report.html (replacing it atomically).
void write_report(const std::filesystem::path& run_dir, const ReportInputs& in);

// One line of metrics.jsonl: a flat JSON object of numbers, strings and nulls. Values are
// kept as text (strings unquoted); a malformed line gives an empty map.
std::map<std::string, std::string> parse_json_line(const std::string& line);

}  // namespace hubel::launch
