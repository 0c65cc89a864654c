// Checkpoints in HDF5: everything a run needs to continue exactly where it stopped.
//
//   /                        attributes: format = "hubel-checkpoint", format_version,
//                            hubel_version, experiment (the file's full text), epoch,
//                            batch (minibatches of that epoch done), step, seed, ranks,
//                            run_id (the run's lineage: a resumed run keeps its id),
//                            checksum (64-bit, hex: everything a resume reads besides
//                            the datasets, which carry Fletcher-32 each)
//   /model/<layer>/<param>   float32, the parameter's true shape (Fletcher-32 checksum)
//   /optimizer               attributes: type, steps
//   /optimizer/<state>/<layer>/<param>   velocity, moments, accumulators, same shapes
//   /schedule                attributes: the plateau schedule's state
//   /metrics/<column>        float64 [epochs]: the history so far (epoch, lr, losses, ...)
//
// Files are written under a temporary name, synced, and renamed into place; a `latest`
// file in the same directory names the newest complete checkpoint, and is replaced the
// same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "framework/net.hpp"
#include "framework/optimizer.hpp"
#include "framework/schedule.hpp"
#include "framework/trainer.hpp"

namespace hubel {

class Config;

struct CheckpointMeta {
  int64_t epoch = 0;  // the epoch to continue in (from 0)
  int64_t batch = 0;  // minibatches of that epoch already trained
  int64_t step = 0;   // optimizer steps so far
  uint64_t seed = 0;
  int ranks = 1;  // of the run that wrote it (a resume may use any number)
  std::string experiment;
  std::string experiment_dir;  // what relative input paths in experiment are relative to
  std::string hubel_version;
  std::string run_id;          // the lineage: new for a new run, kept by a resume
  std::string optimizer_type;  // filled by save_checkpoint from the optimizer; read back
  int64_t optimizer_steps = 0;
  Schedule::State schedule;
  std::vector<EpochMetrics> history;
};

// Writes a checkpoint atomically (see above). Throws DataError naming the file on failure;
// whatever was at `path` before is then untouched.
void save_checkpoint(const std::string& path, const Net& net, Optimizer& opt, const Schedule& schedule,
                     const CheckpointMeta& meta);

// Reads a checkpoint into net, and (unless null) into the optimizer and schedule. Checks
// that it is a complete hubel checkpoint whose parameters match the net by name and shape
// (the error names the first mismatch), and that the optimizer type matches; a damaged
// file (bad checksum, truncation) is a DataError.
CheckpointMeta load_checkpoint(const std::string& path, Net& net, Optimizer* opt, Schedule* schedule);

// Only the metadata and the history (hubel inspect).
CheckpointMeta read_checkpoint_meta(const std::string& path);
// The parameters as stored: (layer/param, shape, values), for hubel inspect.
struct StoredParam {
  std::string name;
  Shape shape;
  std::vector<float> values;
};
std::vector<StoredParam> read_checkpoint_params(const std::string& path);
// Reads a whole checkpoint (metadata, parameters, optimizer state) and checks every
// checksum; a DataError naming the file and what is damaged otherwise.
void verify_checkpoint(const std::string& path);

// A small file with /model only, for inference elsewhere: from a net, or from a checkpoint.
void export_weights(const std::string& path, const Net& net);
void export_weights(const std::string& path, const std::string& checkpoint);

// Fine-tuning: copies the parameters and buffers of a checkpoint or an exported weights
// file (or the newest good checkpoint of a directory) into net, matched by layer/param
// name, except the layers matching `exclude` (glob patterns), which keep their
// initialization. Every other entry of the model must be in the file with its shape: the
// error names the first that is not. Entries of the file the model lacks are reported.
struct WeightsReport {
  std::string file;                 // the file read
  int64_t values = 0;               // copied
  std::vector<std::string> fresh;   // excluded, left as initialized
  std::vector<std::string> unused;  // in the file, not in the model
};
WeightsReport load_weights_by_name(const std::string& source, Net& net, const std::vector<std::string>& exclude);

// A new run's lineage id: 16 hex digits from the clock and the OS's entropy.
std::string new_run_id();

// A directory of checkpoints "ckpt-<step>.h5" with a `latest` pointer, keeping the newest n.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}
  const std::string& dir() const { return dir_; }
  // Writes the checkpoint of this step, points `latest` at it, and removes the oldest
  // checkpoints of the same lineage (meta.run_id) beyond keep; the one just written and
  // those of other runs are never removed, so `latest` always names a file that exists.
  std::string write(const Net& net, Optimizer& opt, const Schedule& schedule, const CheckpointMeta& meta) const;
  // The checkpoint files there ("ckpt-<step>.h5"), newest step first.
  std::vector<std::pair<int64_t, std::string>> list() const;
  // Makes `best.h5` the checkpoint at `path` (a hard link, else a copy; replaced
  // atomically), which pruning does not remove; returns best.h5's path.
  std::string mark_best(const std::string& path) const;
  // Moves every checkpoint, `latest` and `best.h5` into a new subfolder "previous-<time>" and returns
  // its path ("" when there was nothing to move).
  std::string move_aside() const;
  // The checkpoint to resume from: the one `latest` names if it reads back whole, else the
  // newest that does; nullopt when there is none.
  std::optional<std::string> newest_good() const;

 private:
  std::string dir_;
  int keep_;
};

// The experiment a command runs on a checkpoint: the file given (non-empty), else the one
// the checkpoint holds (relative paths as where it was run); then the overrides
// (path.key=value). Exported weights hold none: a ConfigError says to name the file.
Config checkpoint_experiment(const std::string& experiment, const std::string& checkpoint,
                             const std::vector<std::string>& sets);

// A checkpoint a user names: a checkpoint file, a checkpoint directory (the checkpoint its
// `latest` names if it reads back whole, else the newest that does) or a `latest` pointer
// file. Errors name the path and what was wrong.
std::string resolve_checkpoint(const std::string& path);

}  // namespace hubel
