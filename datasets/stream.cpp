// Streaming with a shuffle buffer.
#include "datasets/stream.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "framework/error.hpp"

namespace hubel::datasets {

ShuffleStream::ShuffleStream(const Dataset& data, const Options& o)
    : data_(data), o_(o), n_(data.size()), row_bytes_(data.stored_bytes()) {
  if (row_bytes_ <= 0) throw Error(cat(data_.name(), ": cannot be streamed (its samples are not stored rows)"));
  if (o_.rows <= 0 || o_.world < 1 || o_.rank < 0 || o_.rank >= o_.world) throw Error("ShuffleStream: bad options");
  if (o_.buffer < 1) throw ConfigError(cat("data.shuffle_buffer must be at least 1 sample; got ", o_.buffer));
  // Runs of whole chunks of about run_bytes; smaller when there would be too few to deal
  // every rank several.
  const int64_t chunk = std::max<int64_t>(1, data_.storage_rows());
  run_ = chunk * std::max<int64_t>(1, o_.run_bytes / (chunk * row_bytes_));
  while (run_ > 1 && (n_ + run_ - 1) / run_ < 8 * o_.world) run_ = std::max<int64_t>(1, run_ / 2);
  runs_ = (n_ + run_ - 1) / run_;
  // The smallest share an epoch can deal a rank: floor(runs / W) runs, the short last one
  // among them.
  const int64_t last = n_ - (runs_ - 1) * run_, fewest = runs_ / o_.world;
  const int64_t least = fewest == 0 ? 0 : fewest * run_ - (run_ - last);
  batches_ = least / o_.rows;
  if (batches_ == 0)
    throw ConfigError(cat(data_.name(), ": ", n_, " samples streamed on ", o_.world, " ranks give a rank ", least,
                          " samples an epoch, fewer than its ", o_.rows, " rows of a minibatch"));
  buffer_ = std::min(o_.buffer, least);
  slots_.resize(static_cast<size_t>(buffer_ * row_bytes_));
  slot_ids_.resize(static_cast<size_t>(buffer_));
  slot_labels_.resize(static_cast<size_t>(buffer_));
  run_data_.resize(static_cast<size_t>(run_ * row_bytes_));
  run_ids_.resize(static_cast<size_t>(run_));
  run_labels_.resize(static_cast<size_t>(run_));
}

int64_t ShuffleStream::stream_id(int64_t pos) {
  while (run_at_ + 1 < my_runs_.size() && starts_[run_at_ + 1] <= pos) ++run_at_;
  return my_runs_[run_at_] * run_ + (pos - starts_[run_at_]);
}

void ShuffleStream::load_run(size_t r) {
  const int64_t first = my_runs_[r] * run_, count = std::min(run_, n_ - first);
  std::iota(run_ids_.begin(), run_ids_.begin() + count, first);
  data_.read_stored(std::span<const int64_t>(run_ids_.data(), static_cast<size_t>(count)), run_data_.data(),
                    run_labels_.data());
  bytes_read_ += count * row_bytes_;
  loaded_ = my_runs_[r];
}

void ShuffleStream::start(int64_t epoch, int64_t skip) {
  // The epoch's deal: runs in a drawn order, to the ranks in turn.
  std::vector<int64_t> order(static_cast<size_t>(runs_));
  std::iota(order.begin(), order.end(), 0);
  Rng deal(hash_combine(o_.seed, 0x53545245414dULL + static_cast<uint64_t>(epoch)));
  shuffle(order, deal);
  my_runs_.clear();
  starts_.clear();
  length_ = 0;
  for (int64_t i = o_.rank; i < runs_; i += o_.world) {
    my_runs_.push_back(order[static_cast<size_t>(i)]);
    starts_.push_back(length_);
    length_ += std::min(run_, n_ - order[static_cast<size_t>(i)] * run_);
  }
  if (skip > batches_ * o_.rows) throw Error(cat("ShuffleStream: skip ", skip, " of an epoch"));
  rng_ = Rng(hash_combine(hash_combine(o_.seed, 0x42554646ULL + static_cast<uint64_t>(epoch)),
                          static_cast<uint64_t>(o_.rank)));
  // The buffer's first fill, then `skip` draws, by sample index alone.
  run_at_ = 0;
  for (int64_t i = 0; i < buffer_; ++i) slot_ids_[static_cast<size_t>(i)] = stream_id(i);
  pos_ = size_ = buffer_;
  for (int64_t d = 0; d < skip; ++d) {
    const auto u = static_cast<size_t>(rng_.below(static_cast<uint64_t>(size_)));
    if (pos_ < length_)
      slot_ids_[u] = stream_id(pos_++);
    else
      slot_ids_[u] = slot_ids_[static_cast<size_t>(--size_)];
  }
  // What the buffer holds now (at an epoch's start: its first runs, in order).
  data_.read_stored(std::span<const int64_t>(slot_ids_.data(), static_cast<size_t>(size_)), slots_.data(),
                    slot_labels_.data());
  bytes_read_ += size_ * row_bytes_;
  loaded_ = -1;
}

void ShuffleStream::next(int64_t count, float* x, int64_t* ids, int32_t* labels) {
  const int64_t per = data_.sample_shape().numel();
  const bool floats = data_.stored_float();
  for (int64_t i = 0; i < count; ++i) {
    if (size_ == 0) throw Error("ShuffleStream: drawn past the end of the epoch");
    const auto u = static_cast<size_t>(rng_.below(static_cast<uint64_t>(size_)));
    const uint8_t* slot = slots_.data() + u * row_bytes_;
    float* out = x + i * per;
    if (floats) {
      std::memcpy(out, slot, static_cast<size_t>(row_bytes_));
    } else {
      for (int64_t j = 0; j < per; ++j) out[j] = slot[j];
    }
    ids[i] = slot_ids_[u];
    if (labels) labels[i] = slot_labels_[u];
    if (pos_ < length_) {  // the next sample of the stream takes its place
      const int64_t id = stream_id(pos_++);
      if (loaded_ != my_runs_[run_at_]) load_run(run_at_);
      const int64_t k = id - my_runs_[run_at_] * run_;
      std::memcpy(slots_.data() + u * row_bytes_, run_data_.data() + k * row_bytes_, static_cast<size_t>(row_bytes_));
      slot_ids_[u] = id;
      slot_labels_[u] = run_labels_[static_cast<size_t>(k)];
    } else {  // the stream is done: the buffer shrinks
      const auto last = static_cast<size_t>(--size_);
      std::memcpy(slots_.data() + u * row_bytes_, slots_.data() + last * row_bytes_, static_cast<size_t>(row_bytes_));
      slot_ids_[u] = slot_ids_[last];
      slot_labels_[u] = slot_labels_[last];
    }
  }
}

}  // namespace hubel::datasets
