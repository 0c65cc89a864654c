// The Loader: sharding, shuffling, transforms, prefetching.
#include "datasets/loader.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <numeric>

#include "datasets/images.hpp"
#include "framework/error.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "framework/stall.hpp"

namespace hubel::datasets {

Loader::Loader(const Dataset& data, const Transform* transform, const LoaderOptions& o)
    : data_(data), transform_(transform), o_(o) {
  if (o_.world < 1 || o_.rank < 0 || o_.rank >= o_.world) throw Error(cat("Loader: rank ", o_.rank, " of ", o_.world));
  if (o_.batch <= 0) throw ConfigError(cat("train.batch must be positive; got ", o_.batch));
  if (o_.batch % o_.world != 0)
    throw ConfigError(cat("train.batch is ", o_.batch, ", not a multiple of the ", o_.world,
                          " ranks: the batch is global and every rank takes an equal share; use a multiple of ",
                          o_.world));
  if (o_.prefetch < 0 || o_.prefetch > 16)
    throw ConfigError(cat("data.prefetch must be in [0, 16]; got ", o_.prefetch));
  if (o_.decode_threads < 0 || o_.decode_threads > 1)
    throw ConfigError(
        cat("data.decode_threads must be 0 (the shared pool) or 1 (the loader thread); got ", o_.decode_threads));
  if (data_.encoded() && !transform_)
    throw Error(cat(data_.name(), ": images stored encoded need a transform to decode them to the samples' shape"));
  if (transform_ && transform_->input_shape() != data_.sample_shape())
    throw ShapeError(cat(data_.name(), ": samples are ", data_.sample_shape().str(), " but the transform expects ",
                         transform_->input_shape().str()));
  const int64_t n = data_.size();
  batches_ = o_.drop_last ? n / o_.batch : (n + o_.batch - 1) / o_.batch;
  local_max_ = o_.batch / o_.world;
  if (o_.shuffle_buffer > 0) {
    if (data_.collective() || data_.encoded() || data_.stored_bytes() <= 0)
      throw ConfigError(cat(data_.name(), ": only samples stored decoded in a hubel data set can be streamed"));
    ShuffleStream::Options so;
    so.buffer = o_.shuffle_buffer;
    so.rows = local_max_;
    so.seed = o_.seed;
    so.rank = o_.rank;
    so.world = o_.world;
    stream_ = std::make_unique<ShuffleStream>(data_, so);
    batches_ = stream_->batches_per_epoch();
  } else {
    order_.resize(static_cast<size_t>(n));
  }
  // Every buffer the epochs need, allocated (and touched) once.
  slots_.resize(static_cast<size_t>(o_.prefetch + 1));
  for (auto& s : slots_) {
    s.x = Tensor(sample_shape().with_batch(local_max_));
    if (transform_) s.raw = Tensor(data_.sample_shape().with_batch(local_max_));
    if (data_.num_classes() > 0)
      s.labels.resize(static_cast<size_t>(local_max_));
    else
      s.targets = Tensor(data_.target_shape().with_batch(local_max_));
    s.ids.resize(static_cast<size_t>(local_max_));
  }
  bounds_.resize(static_cast<size_t>(o_.world) + 1);
  if (data_.collective()) {
    if (o_.comm && o_.comm->size() != o_.world)
      throw Error(cat("Loader: ", o_.world, " ranks, but the communicator has ", o_.comm->size()));
    if (o_.comm)
      exchanger_ = o_.comm->exchanger(o_.prefetch == 0);
    else if (o_.world == 1)
      exchanger_ = std::make_unique<comm::LocalCommunicator::SelfExchanger>();
    else
      throw Error(cat(data_.name(), ": a partitioned data set on ", o_.world, " ranks needs a communicator"));
    if (o_.prefetch > 0) {
      drain_x_ = Tensor(data_.sample_shape().with_batch(local_max_));
      drain_labels_.resize(static_cast<size_t>(local_max_));
    }
  }
}

Loader::~Loader() { stop(); }

void Loader::permute(int64_t epoch, std::vector<int64_t>& order) const {
  std::iota(order.begin(), order.end(), 0);
  if (o_.shuffle) {
    Rng rng(hash_combine(o_.seed, 0x5348554646ULL + static_cast<uint64_t>(epoch)));
    shuffle(order, rng);
  }
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(data_.size()));
  permute(epoch, order);
  return order;
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    drain_to_ = std::min(end_, next_ + static_cast<int64_t>(slots_.size()));
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  stopping_ = false;
}

void Loader::start(int64_t epoch, int64_t batch) {
  stop();
  if (batch < 0 || batch > batches_) throw Error(cat("Loader: batch ", batch, " of an epoch of ", batches_));
  epoch_ = epoch;
  next_ = batch;
  end_ = batches_;
  error_ = nullptr;
  held_ = -1;
  for (auto& s : slots_) s.ready = false;
  if (stream_) {
    stream_->start(epoch, batch * local_max_);
  } else {
    permute(epoch, order_);  // in place: no allocation
  }
  if (o_.prefetch > 0 && next_ < end_)
    thread_ = std::thread([this, first = next_, end = end_] { produce(first, end); });
}

int64_t Loader::rows_in(int64_t k) const { return std::min(o_.batch, data_.size() - k * o_.batch); }

int64_t Loader::bound(int64_t m, int r) const {
  const int64_t L = o_.rows_per_rank;
  return L ? std::min(m, r * L) : r * m / o_.world;
}

int64_t Loader::rows_of(int64_t k, int64_t* begin) const {
  const int64_t m = rows_in(k);
  *begin = bound(m, o_.rank);
  return bound(m, o_.rank + 1) - *begin;
}

void Loader::read_rows(int64_t k, TensorView x, int32_t* labels, TensorView targets) {
  const int64_t first = k * o_.batch, m = rows_in(k);
  if (!data_.collective()) {
    int64_t begin = 0;
    const int64_t rows = rows_of(k, &begin);
    if (rows == 0) return;
    data_.read(std::span<const int64_t>(order_.data() + first + begin, static_cast<size_t>(rows)), x, labels, targets);
    return;
  }
  for (int r = 0; r <= o_.world; ++r) bounds_[static_cast<size_t>(r)] = bound(m, r);
  data_.read_global(std::span<const int64_t>(order_.data() + first, static_cast<size_t>(m)), bounds_, o_.rank,
                    exchanger_.get(), scratch_, x, labels, targets);
}

void Loader::fill(Slot& s, int64_t k) {
  if (stream_) {  // this rank's draws from its stream, all minibatches full
    const int64_t rows = local_max_;
    int32_t* labels = s.labels.empty() ? nullptr : s.labels.data();
    const TensorView x(s.x.data(), sample_shape().with_batch(rows));
    const TensorView raw = transform_ ? TensorView(s.raw.data(), data_.sample_shape().with_batch(rows)) : x;
    stream_->next(rows, raw.data(), s.ids.data(), labels);
    if (transform_)
      transform_->apply(raw, std::span<const int64_t>(s.ids.data(), static_cast<size_t>(rows)), o_.seed, epoch_,
                        o_.augment, x);
    s.batch = Batch{x, labels, TensorView(), rows, o_.batch, k, k * o_.batch + o_.rank * rows};
    return;
  }
  const int64_t first = k * o_.batch, m = rows_in(k);
  int64_t begin = 0;
  const int64_t rows = rows_of(k, &begin), end = begin + rows;
  std::copy(order_.begin() + first + begin, order_.begin() + first + end, s.ids.begin());
  const std::span<const int64_t> ids(s.ids.data(), static_cast<size_t>(rows));
  TensorView targets;
  if (s.targets.shape().rank()) targets = TensorView(s.targets.data(), data_.target_shape().with_batch(rows));
  const TensorView x(s.x.data(), sample_shape().with_batch(rows));
  int32_t* labels = s.labels.empty() ? nullptr : s.labels.data();
  if (data_.encoded()) {
    if (rows > 0) {
      data_.read_encoded(ids, s.bytes, labels);
      decode(s, ids, x);
    }
  } else if (transform_) {
    const TensorView raw(s.raw.data(), data_.sample_shape().with_batch(rows));
    read_rows(k, raw, labels, targets);  // (collective: also with no rows here)
    if (rows > 0) transform_->apply(raw, ids, o_.seed, epoch_, o_.augment, x);
  } else {
    read_rows(k, x, labels, targets);
  }
  s.batch = Batch{x, s.labels.empty() ? nullptr : s.labels.data(), targets, rows, m, k, first + begin};
}

void Loader::decode(Slot& s, std::span<const int64_t> ids, TensorView x) const {
  const int channels = static_cast<int>(data_.sample_shape()[0]);
  const int64_t per = sample_shape().numel();
  auto one = [&](int64_t i) {
    const Image8 im =
        decode_image(s.bytes[static_cast<size_t>(i)], cat(data_.name(), ": the image of sample ", ids[i]), channels);
    transform_->apply_image(im.pixels.data(), im.height, im.width, ids[i], o_.seed, epoch_, o_.augment,
                            x.data() + i * per);
  };
  const auto n = static_cast<int64_t>(ids.size());
  if (o_.decode_threads == 1) {
    for (int64_t i = 0; i < n; ++i) one(i);
  } else {
    parallel_chunks(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) one(i);
    });
  }
}

void Loader::produce(int64_t first, int64_t end) {
  const auto S = static_cast<int64_t>(slots_.size());
  for (int64_t k = first; k < end; ++k) {
    Slot& s = slots_[static_cast<size_t>(k % S)];
    {
      // Wait until the slot is free: not ready and not held by the consumer.
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || (!s.ready && held_ != k % S); });
      if (stopping_) {
        lock.unlock();
        // The exchanges the other ranks' threads may be in (drain_to_), into scratch.
        if (data_.collective()) {
          try {
            for (int64_t j = k; j < std::min(drain_to_, end); ++j) {
              int64_t begin = 0;
              const int64_t rows = rows_of(j, &begin);
              read_rows(j, TensorView(drain_x_.data(), data_.sample_shape().with_batch(rows)), drain_labels_.data(),
                        TensorView());
            }
          } catch (...) {  // (stopping: the run is over, or restarting; the exchange's failure is not news)
          }
        }
        return;
      }
    }
    try {
      fill(s, k);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s.ready = true;
    }
    cv_.notify_all();
  }
}

void Loader::prepare() {
  if (o_.prefetch == 0 || o_.timeout_seconds <= 0) {
    data_.prepare();
    return;
  }
  // A read stuck in the file system ends the run through stall_stop, as a batch's would;
  // the thread is then left behind (joining it would wait for ever).
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread reader([&data = data_, done] {
    try {
      data.prepare();
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  if (finished.wait_for(std::chrono::duration<double>(o_.timeout_seconds)) != std::future_status::ready) {
    reader.detach();
    stall_stop(cat("reading ", name(), " into memory has not finished in ", o_.timeout_seconds,
                   " s: a read is stuck (a hung file system, or a lock held by a library); data.timeout sets this "
                   "limit"));
  }
  reader.join();
  finished.get();
}

bool Loader::next(Batch& b) {
  const auto S = static_cast<int64_t>(slots_.size());
  if (o_.prefetch == 0) {
    if (next_ >= end_) return false;
    fill(slots_[0], next_++);
    b = slots_[0].batch;
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (held_ >= 0) {  // the consumer is done with the previous slot
    slots_[static_cast<size_t>(held_)].ready = false;
    held_ = -1;
    cv_.notify_all();
  }
  if (next_ >= end_) {
    lock.unlock();
    stop();
    return false;
  }
  Slot& s = slots_[static_cast<size_t>(next_ % S)];
  const auto ready = [&] { return s.ready || error_; };
  if (o_.timeout_seconds > 0) {
    if (!cv_.wait_for(lock, std::chrono::duration<double>(o_.timeout_seconds), ready))
      stall_stop(
          cat("the loader thread has not produced batch ", next_ + 1, " of ", name(), " in ", o_.timeout_seconds,
              " s: a read is stuck (a hung file system, or a lock held by a library); data.timeout sets this limit"));
  } else {
    cv_.wait(lock, ready);
  }
  if (!s.ready && error_) {
    auto e = error_;
    lock.unlock();
    stop();
    std::rethrow_exception(e);
  }
  held_ = next_ % S;
  ++next_;
  b = s.batch;
  return true;
}

}  // namespace hubel::datasets
