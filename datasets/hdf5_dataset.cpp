// Writing and reading the hubel dataset format.
#include "datasets/hdf5_dataset.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "framework/error.hpp"

namespace hubel::datasets {

namespace {

constexpr int64_t kFormatVersion = 1;
constexpr int64_t kMaxSamples = int64_t{1} << 31;
constexpr int64_t kMaxSampleBytes = int64_t{1} << 30;

std::vector<int64_t> dims_with(int64_t n, const Shape& s) {
  std::vector<int64_t> d{n};
  d.insert(d.end(), s.begin(), s.end());
  return d;
}

void write_contents(h5::File& f, const DatasetContents& c, const WriteOptions& o) {
  h5::write_attribute(f, "/", "format", std::string("hubel-dataset"));
  h5::write_attribute(f, "/", "format_version", kFormatVersion);
  h5::write_attribute(f, "/", "source", c.source);
  h5::write_attribute(f, "/", "classes", c.classes);
  h5::write_attribute(f, "/", "num_classes", static_cast<int64_t>(c.classes.size()));
  const DatasetContents::Split* train = nullptr;
  for (const auto& s : c.splits) {
    if (s.size() * s.sample_shape.numel() != static_cast<int64_t>(s.images.size()))
      throw Error(cat("split ", s.name, ": ", s.images.size(), " image bytes for ", s.size(), " samples of ",
                      s.sample_shape.str()));
    f.create_group("/" + s.name);
    const std::string images = "/" + s.name + "/images", labels = "/" + s.name + "/labels";
    h5::create_dataset(f, images, H5T_NATIVE_UINT8, dims_with(s.size(), s.sample_shape), o.chunk_rows, o.deflate,
                       o.checksum);
    if (s.size() > 0) h5::write_rows(f, images, H5T_NATIVE_UINT8, 0, s.size(), s.images.data());
    h5::create_dataset(f, labels, H5T_NATIVE_INT32, {s.size()}, 0, 0, o.checksum);
    if (s.size() > 0) h5::write_rows(f, labels, H5T_NATIVE_INT32, 0, s.size(), s.labels.data());
    h5::write_attribute(f, "/" + s.name, "count", s.size());
    if (s.name == "train") train = &s;
  }
  if (!train) train = c.splits.empty() ? nullptr : &c.splits[0];
  if (!train || train->size() == 0) return;
  // Per-channel mean and standard deviation, and the mean image, over the train split.
  const int64_t C = train->sample_shape[0], per = train->sample_shape.numel() / C, n = train->size();
  std::vector<double> sum(static_cast<size_t>(train->sample_shape.numel()), 0.0), mean(C, 0.0), sq(C, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* img = train->images.data() + i * C * per;
    for (int64_t j = 0; j < C * per; ++j) {
      sum[static_cast<size_t>(j)] += img[j];
      sq[static_cast<size_t>(j / per)] += static_cast<double>(img[j]) * img[j];
    }
  }
  std::vector<float> mean_image(sum.size());
  for (size_t j = 0; j < sum.size(); ++j) {
    mean_image[j] = static_cast<float>(sum[j] / static_cast<double>(n));
    mean[j / static_cast<size_t>(per)] += sum[j];
  }
  std::vector<double> stdev(C);
  for (int64_t ch = 0; ch < C; ++ch) {
    const double count = static_cast<double>(n * per);
    mean[ch] /= count;
    stdev[ch] = std::sqrt(std::max(0.0, sq[ch] / count - mean[ch] * mean[ch]));
  }
  h5::write_attribute(f, "/", "mean", mean);
  h5::write_attribute(f, "/", "std", stdev);
  h5::write_dataset(f, "/mean_image", H5T_NATIVE_FLOAT, {train->sample_shape.begin(), train->sample_shape.end()},
                    mean_image.data(), o.checksum);
}

}  // namespace

void write_dataset_file(const std::string& path, const DatasetContents& contents, const WriteOptions& o) {
  h5::write_file_atomically(path, [&](h5::File& f) { write_contents(f, contents, o); });
}

FileStats read_file_stats(const std::string& path, const Shape* mean_image_shape) {
  h5::File f = h5::File::open_read(path);
  FileStats s;
  if (auto m = h5::read_doubles_attribute(f, "/", "mean")) s.mean = *m;
  if (auto m = h5::read_doubles_attribute(f, "/", "std")) s.std = *m;
  if (s.mean.size() != s.std.size()) h5::fail(f, "/", "the mean and std attributes have different lengths");
  for (double v : s.std)
    if (!(v >= 0)) h5::fail(f, "/", "the std attribute has a negative or NaN value");
  if (auto c = h5::read_strings_attribute(f, "/", "classes")) s.classes = *c;
  if (auto src = h5::read_string_attribute(f, "/", "source")) s.source = *src;
  if (mean_image_shape && f.exists("/mean_image")) {
    const auto info = h5::dataset_info(f, "/mean_image");
    if (info.dims != std::vector<int64_t>(mean_image_shape->begin(), mean_image_shape->end()))
      h5::fail(f, "/mean_image", cat("has another shape than the samples' ", mean_image_shape->str()));
    h5::check_stored(f, "/mean_image", info);
    if (info.dims.empty() || info.dims.size() > 4 || info.type_class != H5T_FLOAT)
      h5::fail(f, "/mean_image", "expected a float array of rank 1 to 4");
    int64_t total = 1;
    for (auto d : info.dims) {
      if (d <= 0 || d > kMaxSampleBytes) h5::fail(f, "/mean_image", "absurd dimensions");
      total *= d;
    }
    if (total > kMaxSampleBytes) h5::fail(f, "/mean_image", "absurd size");
    s.mean_image = Tensor(Shape(std::span<const int64_t>(info.dims.data(), info.dims.size())));
    h5::read_dataset(f, "/mean_image", H5T_NATIVE_FLOAT, s.mean_image.data());
  }
  return s;
}

Hdf5Dataset::Hdf5Dataset(const std::string& path, const std::string& split, int64_t memory_bytes, Part part)
    : path_(path),
      split_(split),
      file_(h5::File::open_read(path)),
      memory_bytes_(memory_bytes),
      part_(part),
      paged_(memory_bytes == kPaged) {
  if (paged_ && part_.world > 0) throw Error(cat(path, ":/", split, ": a paged split is not partitioned"));
  if (part_.world < 0 || (part_.world > 0 && (part_.rank < 0 || part_.rank >= part_.world)))
    throw Error(cat(path, ":/", split, ": rank ", part_.rank, " of a partition over ", part_.world));
  const std::string group = "/" + split, images = group + "/images", labels = group + "/labels";
  if (!file_.exists(group)) {
    std::string have;
    for (const char* s : {"train", "test", "val"})
      if (file_.exists(std::string("/") + s)) have += std::string(have.empty() ? "" : ", ") + s;
    h5::fail(file_, group, cat("no such split", have.empty() ? "" : cat(" (the file has: ", have, ")")));
  }
  const auto info = h5::dataset_info(file_, images);
  if (info.dims.size() < 3 || info.dims.size() > 5)
    h5::fail(file_, images,
             cat("expected [N, C, W], [N, C, H, W] or [N, C, D, H, W]; the dataset has rank ", info.dims.size()));
  for (size_t i = 1; i < info.dims.size(); ++i)
    if (info.dims[i] <= 0) h5::fail(file_, images, "a sample dimension is zero");
  if (info.type_class == H5T_INTEGER && info.type_size == 1 && !info.is_signed)
    uint8_ = true;
  else if (info.type_class == H5T_FLOAT && info.type_size == 4)
    uint8_ = false;
  else
    h5::fail(file_, images,
             cat("images must be uint8 or float32; found ",
                 info.type_class == H5T_INTEGER ? (info.is_signed ? "int" : "uint")
                 : info.type_class == H5T_FLOAT ? "float"
                                                : "a non-numeric type",
                 info.type_size * 8));
  n_ = info.dims[0];
  if (n_ > kMaxSamples) h5::fail(file_, images, cat(n_, " samples: more than hubel reads (", kMaxSamples, ")"));
  shape_ = Shape(std::span<const int64_t>(info.dims.data() + 1, info.dims.size() - 1));
  int64_t per_sample = 0;
  try {
    per_sample = shape_.numel();
  } catch (const ShapeError&) {
    per_sample = -1;  // overflows
  }
  if (per_sample > kMaxSampleBytes || per_sample <= 0)
    h5::fail(file_, images, cat("absurd sample shape ", shape_.str()));

  const auto linfo = h5::dataset_info(file_, labels);
  if (linfo.dims.size() != 1 || linfo.type_class != H5T_INTEGER)
    h5::fail(file_, labels, "labels must be a 1-D integer dataset");
  if (linfo.dims[0] != n_)
    h5::fail(file_, labels, cat("there are ", linfo.dims[0], " labels but ", n_, " images in ", images));
  // What the file declares against what it stores, before anything is allocated for it.
  h5::check_stored(file_, images, info);
  h5::check_stored(file_, labels, linfo);
  labels_.resize(static_cast<size_t>(n_));
  if (n_ > 0) h5::read_dataset(file_, labels, H5T_NATIVE_INT32, labels_.data());

  auto classes = h5::read_int_attribute(file_, "/", "num_classes");
  if (!classes) {
    if (auto names = h5::read_strings_attribute(file_, "/", "classes")) classes = static_cast<int64_t>(names->size());
  }
  if (!classes || *classes <= 0) {
    int32_t mx = -1;
    for (auto l : labels_) mx = std::max(mx, l);
    classes = mx + 1;
  }
  classes_ = *classes;
  if (auto names = h5::read_strings_attribute(file_, "/", "classes");
      names && static_cast<int64_t>(names->size()) == classes_)
    names_ = *names;
  for (int64_t i = 0; i < n_; ++i)
    if (labels_[i] < 0 || labels_[i] >= classes_)
      h5::fail(file_, labels, cat("label ", labels_[i], " of sample ", i, " is outside [0, ", classes_, ")"));
  // A split that fits in memory_bytes is read whole, once (read()), and needs no chunk
  // cache: HDF5 shares one cache among the openings of a dataset, so a large one would
  // hold a second copy of the split. Otherwise rows are read as asked, through a cache
  // large enough for the whole split when it is modest (compressed files then
  // decompress each chunk once), at most 128 MiB; a streamed set (read in order) needs
  // only a few chunks at a time.
  const int64_t bytes = n_ * shape_.numel() * (uint8_ ? 1 : 4);
  if (part_.world > 0) held_first_ = part_begin(part_.rank);
  // The file's identity, which check_file() compares before each read. Paged, the
  // descriptor is opened first and the identity taken from it: a file replaced between
  // the two would otherwise pass check_file() and be read anyway.
  if (paged_) {
    fd_.fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_.fd < 0) throw DataError(cat(name(), ": cannot open the file for reading rows: ", std::strerror(errno)));
  }
  if (struct stat st{}; (paged_ ? ::fstat(fd_.fd, &st) : ::stat(path_.c_str(), &st)) == 0) {
    device_ = st.st_dev;
    inode_ = st.st_ino;
    file_bytes_ = st.st_size;
  }
  const int64_t cache = part_.world > 0 || bytes <= memory_bytes_ ? int64_t{1} << 20
                        : memory_bytes_ == kStreamed || paged_
                            ? int64_t{1} << 20
                            : std::min<int64_t>(bytes + (1 << 20), int64_t{128} << 20);
  images_ = h5::open_dataset(file_, images, static_cast<size_t>(cache));
  chunk_rows_ = h5::chunk_rows(images_);
  if (chunk_rows_ > 0) verified_.assign(static_cast<size_t>((n_ + chunk_rows_ - 1) / chunk_rows_), false);
  if (paged_) {
    try {
      layout_ = h5::row_layout(file_, images_, images, uint8_ ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, file_bytes_);
    } catch (const DataError& e) {
      throw DataError(cat(e.what(),
                          "; store: paged reads rows in place, from a split stored uncompressed (hubel "
                          "convert without --compress), else use store: resident, partitioned or streaming"));
    }
  }
}

Hdf5Dataset::Descriptor::~Descriptor() {
  if (fd >= 0) ::close(fd);
}

void Hdf5Dataset::pread_rows_locked(std::span<const int64_t> idx, uint8_t* out) const {
  check_file();
  const int64_t row_bytes = stored_bytes(), per_chunk = layout_.rows_per_chunk;
  for (size_t i = 0; i < idx.size(); ++i) {
    const int64_t id = idx[i];
    check_index(id);
    const int64_t c = id / per_chunk;
    // A chunk's checksum is verified (by HDF5, reading the whole chunk) before any of its
    // rows is used.
    if (layout_.checksum && needs_verify(id, id)) {
      const int64_t first = c * per_chunk, count = std::min(per_chunk, n_ - first);
      if (static_cast<int64_t>(chunk_.size()) < count * row_bytes)
        chunk_.resize(static_cast<size_t>(count * row_bytes));
      h5::read_run(file_, images_, "/" + split_ + "/images", uint8_ ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, first, count,
                   chunk_.data(), true);
      mark_verified(id, id);
    }
    uint8_t* row = out + static_cast<int64_t>(i) * row_bytes;
    const int64_t at = layout_.offsets[static_cast<size_t>(c)] + (id - c * per_chunk) * row_bytes;
    for (int64_t done = 0; done < row_bytes;) {
      const ssize_t got = ::pread(fd_.fd, row + done, static_cast<size_t>(row_bytes - done), at + done);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw DataError(cat(name(), ": reading sample ", id, " from the file failed (",
                            got < 0 ? std::strerror(errno) : "the file ends early", ")"));
      done += got;
    }
  }
  if (!uint8_)
    check_finite(reinterpret_cast<const float*>(out), 0, static_cast<int64_t>(idx.size()), shape_.numel(), idx.data());
}

void Hdf5Dataset::check_finite(const float* rows, int64_t first, int64_t count, int64_t per,
                               const int64_t* index) const {
  for (int64_t r = 0; r < count; ++r) {
    const float* row = rows + r * per;
    for (int64_t j = 0; j < per; ++j)
      if (!std::isfinite(row[j]))
        throw DataError(cat(path_, ":/", split_, "/images: sample ", index ? index[r] : first + r, " holds ", row[j],
                            " at element ", j, ": non-finite input values are a data error (fix or drop that sample)"));
  }
}

void Hdf5Dataset::read_labels(std::span<const int64_t> idx, int32_t* labels) const {
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= n_) throw DataError(cat(name(), ": sample ", idx[i], " out of range [0, ", n_, ")"));
    labels[i] = labels_[static_cast<size_t>(idx[i])];
  }
}

void Hdf5Dataset::check_file() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0)
    throw DataError(cat(name(), ": the file is gone since it was opened (", std::strerror(errno), ")"));
  if (st.st_dev != device_ || st.st_ino != inode_)
    throw DataError(cat(name(), ": the file was replaced by another since it was opened"));
  if (st.st_size != file_bytes_)
    throw DataError(cat(name(), ": the file changed size since it was opened, from ", file_bytes_, " to ",
                        static_cast<int64_t>(st.st_size), " bytes"));
}

bool Hdf5Dataset::needs_verify(int64_t a, int64_t b) const {
  if (chunk_rows_ <= 0) return true;
  for (int64_t c = a / chunk_rows_; c <= b / chunk_rows_; ++c)
    if (!verified_[static_cast<size_t>(c)]) return true;
  return false;
}

void Hdf5Dataset::mark_verified(int64_t a, int64_t b) const {
  if (chunk_rows_ <= 0) return;
  for (int64_t c = a / chunk_rows_; c <= b / chunk_rows_; ++c) verified_[static_cast<size_t>(c)] = true;
}

void Hdf5Dataset::check_index(int64_t id) const {
  if (id < 0 || id >= n_) throw DataError(cat(name(), ": sample ", id, " out of range [0, ", n_, ")"));
}

int Hdf5Dataset::part_owner(int64_t id) const {
  const int W = part_.world;
  int p = static_cast<int>(std::min<int64_t>(W - 1, static_cast<int64_t>((static_cast<__int128>(id) * W) / n_)));
  while (p + 1 < W && part_begin(p + 1) <= id) ++p;
  while (p > 0 && part_begin(p) > id) --p;
  return p;
}

void Hdf5Dataset::to_float(const uint8_t* row, float* out) const {
  const int64_t per = shape_.numel();
  if (uint8_) {
    for (int64_t j = 0; j < per; ++j) out[j] = row[j];
  } else {
    std::memcpy(out, row, static_cast<size_t>(per) * 4);
  }
}

const uint8_t* Hdf5Dataset::held_locked() const {
  const int64_t row_bytes = stored_bytes();
  if (paged_) return nullptr;
  const bool whole = part_.world == 0 && n_ * row_bytes <= memory_bytes_;
  if (part_.world == 0 && !whole) return nullptr;
  if (!loaded_) {
    check_file();
    const int64_t first = held_first_, count = whole ? n_ : part_begin(part_.rank + 1) - first;
    std::vector<uint8_t> rows(static_cast<size_t>(std::max<int64_t>(1, count * row_bytes)));
    // In runs of whole rows of about 64 MiB: sequential reads of whole chunks, and HDF5's
    // lock is let go between them.
    const int64_t step = std::max<int64_t>(1, (int64_t{64} << 20) / row_bytes);
    for (int64_t r = 0; r < count; r += step)
      h5::read_run(file_, images_, "/" + split_ + "/images", uint8_ ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, first + r,
                   std::min(step, count - r), rows.data() + r * row_bytes);
    if (!uint8_) check_finite(reinterpret_cast<const float*>(rows.data()), first, count, shape_.numel(), nullptr);
    resident_ = std::move(rows);
    loaded_ = true;
  }
  return resident_.data();
}

void Hdf5Dataset::prepare() const {
  std::lock_guard<std::mutex> guard(mutex_);
  held_locked();
}

template <class Put>
void Hdf5Dataset::gather_locked(std::span<const int64_t> idx, Put&& put) const {
  const int64_t n = static_cast<int64_t>(idx.size()), row_bytes = stored_bytes();
  if (const uint8_t* held = held_locked()) {
    const int64_t end = held_first_ + static_cast<int64_t>(resident_.size()) / row_bytes;
    for (int64_t i = 0; i < n; ++i) {
      check_index(idx[i]);
      if (idx[i] < held_first_ || idx[i] >= end)
        throw Error(cat(name(), ": sample ", idx[i], " is in rank ", part_owner(idx[i]), "'s part, not rank ",
                        part_.rank, "'s: a partitioned split is read collectively (read_global)"));
      put(i, idx[i], held + (idx[i] - held_first_) * row_bytes);
    }
    return;
  }
  if (paged_) {
    if (static_cast<int64_t>(raw_.size()) < n * row_bytes) raw_.resize(static_cast<size_t>(n * row_bytes));
    pread_rows_locked(idx, raw_.data());
    for (int64_t i = 0; i < n; ++i) put(i, idx[i], raw_.data() + i * row_bytes);
    return;
  }
  order_.resize(idx.size());
  for (int64_t i = 0; i < n; ++i) {
    check_index(idx[i]);
    order_[i] = {idx[i], i};
  }
  std::sort(order_.begin(), order_.end());
  check_file();
  rows_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || order_[i].first != order_[i - 1].first) rows_.push_back(order_[i].first);
  const int64_t need = static_cast<int64_t>(rows_.size()) * row_bytes;
  if (static_cast<int64_t>(raw_.size()) < need) raw_.resize(static_cast<size_t>(need));
  bool verify = false;
  for (int64_t r : rows_) verify = verify || needs_verify(r, r);
  h5::read_rows(file_, images_, "/" + split_ + "/images", uint8_ ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, rows_.data(),
                static_cast<int64_t>(rows_.size()), raw_.data(), verify);
  for (int64_t r : rows_) mark_verified(r, r);
  if (!uint8_)
    check_finite(reinterpret_cast<const float*>(raw_.data()), 0, static_cast<int64_t>(rows_.size()), shape_.numel(),
                 rows_.data());
  // Scatter: the k-th distinct row goes to every destination that asked for it.
  int64_t k = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || order_[i].first != order_[i - 1].first) ++k;
    put(order_[i].second, order_[i].first, raw_.data() + k * row_bytes);
  }
}

void Hdf5Dataset::read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const {
  std::lock_guard<std::mutex> guard(mutex_);
  const int64_t per = shape_.numel();
  gather_locked(idx, [&](int64_t dst, int64_t id, const uint8_t* row) {
    to_float(row, x.data() + dst * per);
    if (labels) labels[dst] = labels_[static_cast<size_t>(id)];
  });
}

void Hdf5Dataset::read_stored(std::span<const int64_t> idx, uint8_t* rows, int32_t* labels) const {
  std::lock_guard<std::mutex> guard(mutex_);
  const int64_t row_bytes = stored_bytes(), n = static_cast<int64_t>(idx.size());
  // A run of consecutive rows from the file (a stream's): read straight into place.
  if (n > 0 && !paged_ && !held_locked() && idx[0] >= 0 && idx[n - 1] == idx[0] + n - 1 && idx[n - 1] < n_ &&
      std::adjacent_find(idx.begin(), idx.end(), [](int64_t a, int64_t b) { return b != a + 1; }) == idx.end()) {
    check_file();
    h5::read_run(file_, images_, "/" + split_ + "/images", uint8_ ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, idx[0], n,
                 rows, needs_verify(idx[0], idx[n - 1]));
    mark_verified(idx[0], idx[n - 1]);
    if (!uint8_) check_finite(reinterpret_cast<const float*>(rows), idx[0], n, shape_.numel(), nullptr);
    if (labels)
      for (int64_t i = 0; i < n; ++i) labels[i] = labels_[static_cast<size_t>(idx[i])];
    return;
  }
  gather_locked(idx, [&](int64_t dst, int64_t id, const uint8_t* row) {
    std::memcpy(rows + dst * row_bytes, row, static_cast<size_t>(row_bytes));
    if (labels) labels[dst] = labels_[static_cast<size_t>(id)];
  });
}

void Hdf5Dataset::read_global(std::span<const int64_t> ids, std::span<const int64_t> bounds, int rank,
                              comm::Exchanger* ex, ExchangeScratch& sc, TensorView x, int32_t* labels,
                              TensorView targets) const {
  if (part_.world == 0) {
    Dataset::read_global(ids, bounds, rank, ex, sc, x, labels, targets);
    return;
  }
  const int W = part_.world;
  if (static_cast<int>(bounds.size()) != W + 1 || rank != part_.rank || !ex)
    throw Error(cat(name(), ": a collective read for rank ", rank, " of ", static_cast<int64_t>(bounds.size()) - 1,
                    " ranks, but the split is partitioned for rank ", part_.rank, " of ", W));
  const uint8_t* held = nullptr;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    held = held_locked();  // (fixed once loaded)
  }
  const int64_t row_bytes = stored_bytes(), per = shape_.numel();
  sc.send_rows.assign(static_cast<size_t>(W), 0);
  sc.recv_rows.assign(static_cast<size_t>(W), 0);
  // What this rank sends: the rows of its part, to each other rank in that rank's row
  // order (its own it takes from memory).
  int64_t sends = 0;
  for (int d = 0; d < W; ++d)
    for (int64_t i = bounds[static_cast<size_t>(d)]; i < bounds[static_cast<size_t>(d) + 1]; ++i) {
      check_index(ids[static_cast<size_t>(i)]);
      if (d != rank && part_owner(ids[static_cast<size_t>(i)]) == rank) ++sc.send_rows[static_cast<size_t>(d)], ++sends;
    }
  const int64_t b = bounds[static_cast<size_t>(rank)], e = bounds[static_cast<size_t>(rank) + 1];
  for (int64_t i = b; i < e; ++i)
    if (const int s = part_owner(ids[static_cast<size_t>(i)]); s != rank) ++sc.recv_rows[static_cast<size_t>(s)];
  if (static_cast<int64_t>(sc.send.size()) < sends * row_bytes) sc.send.resize(static_cast<size_t>(sends * row_bytes));
  if (static_cast<int64_t>(sc.recv.size()) < (e - b) * row_bytes)
    sc.recv.resize(static_cast<size_t>((e - b) * row_bytes));
  int64_t pos = 0;
  for (int d = 0; d < W; ++d)
    for (int64_t i = bounds[static_cast<size_t>(d)]; i < bounds[static_cast<size_t>(d) + 1]; ++i)
      if (const int64_t id = ids[static_cast<size_t>(i)]; d != rank && part_owner(id) == rank)
        std::memcpy(sc.send.data() + pos++ * row_bytes, held + (id - held_first_) * row_bytes,
                    static_cast<size_t>(row_bytes));
  ex->alltoallv(sc.send.data(), sc.send_rows.data(), sc.recv.data(), sc.recv_rows.data(), row_bytes);
  // Each owner's rows arrive in this rank's row order.
  sc.cursor.assign(static_cast<size_t>(W), 0);
  for (int s = 1; s < W; ++s)
    sc.cursor[static_cast<size_t>(s)] =
        sc.cursor[static_cast<size_t>(s) - 1] + sc.recv_rows[static_cast<size_t>(s) - 1];
  for (int64_t i = b; i < e; ++i) {
    const int64_t id = ids[static_cast<size_t>(i)];
    const int s = part_owner(id);
    to_float(s == rank ? held + (id - held_first_) * row_bytes
                       : sc.recv.data() + sc.cursor[static_cast<size_t>(s)]++ * row_bytes,
             x.data() + (i - b) * per);
    if (labels) labels[i - b] = labels_[static_cast<size_t>(id)];
  }
}

}  // namespace hubel::datasets
