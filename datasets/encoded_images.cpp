// Splits stored as image files: writing and reading.
#include "datasets/encoded_images.hpp"

#include <algorithm>
#include <map>

#include "datasets/images.hpp"
#include "framework/error.hpp"

namespace hubel::datasets {

namespace {

constexpr int64_t kFormatVersion = 1;
constexpr int64_t kMaxSamples = int64_t{1} << 31;
constexpr int64_t kBytesChunk = int64_t{1} << 20;   // bytes per chunk of /<split>/encoded
constexpr int64_t kWriteBlock = int64_t{64} << 20;  // bytes read back and written per call

void write_contents(h5::File& f, const EncodedContents& c, const WriteOptions& o) {
  h5::write_attribute(f, "/", "format", std::string("hubel-dataset"));
  h5::write_attribute(f, "/", "format_version", kFormatVersion);
  h5::write_attribute(f, "/", "source", c.source);
  h5::write_attribute(f, "/", "classes", c.classes);
  h5::write_attribute(f, "/", "num_classes", static_cast<int64_t>(c.classes.size()));
  if (!c.mean.empty()) {
    h5::write_attribute(f, "/", "mean", c.mean);
    h5::write_attribute(f, "/", "std", c.stddev);
  }
  std::vector<uint8_t> block;
  for (const auto& s : c.splits) {
    const int64_t n = s.size();
    if (static_cast<int64_t>(s.offsets.size()) != n + 1 || static_cast<int64_t>(s.shapes.size()) != 3 * n ||
        s.offsets[0] != 0)
      throw Error(cat("split ", s.name, ": offsets or shapes do not match its ", n, " samples"));
    const std::string g = "/" + s.name;
    f.create_group(g);
    const int64_t total = s.offsets.back();
    h5::create_dataset(f, g + "/encoded", H5T_NATIVE_UINT8, {total}, kBytesChunk, 0, o.checksum);
    // The bytes, read back a block of samples at a time.
    for (int64_t first = 0; first < n;) {
      int64_t last = first + 1;
      while (last < n && s.offsets[last + 1] - s.offsets[first] <= kWriteBlock) ++last;
      const int64_t bytes = s.offsets[last] - s.offsets[first];
      block.resize(static_cast<size_t>(bytes));
      s.bytes(first, last, block.data());
      h5::write_rows(f, g + "/encoded", H5T_NATIVE_UINT8, s.offsets[first], bytes, block.data());
      first = last;
    }
    h5::write_dataset(f, g + "/offsets", H5T_NATIVE_INT64, {n + 1}, s.offsets.data(), o.checksum);
    h5::create_dataset(f, g + "/shapes", H5T_NATIVE_INT32, {n, 3}, 0, 0, o.checksum);
    if (n > 0) h5::write_rows(f, g + "/shapes", H5T_NATIVE_INT32, 0, n, s.shapes.data());
    h5::create_dataset(f, g + "/labels", H5T_NATIVE_INT32, {n}, 0, 0, o.checksum);
    if (n > 0) h5::write_rows(f, g + "/labels", H5T_NATIVE_INT32, 0, n, s.labels.data());
    h5::write_attribute(f, g, "count", n);
    h5::write_attribute(f, g, "channels", static_cast<int64_t>(c.channels));
    if (c.size[0] > 0)
      h5::write_attribute(f, g, "size",
                          std::vector<double>{static_cast<double>(c.size[0]), static_cast<double>(c.size[1])});
  }
}

TransformOptions unscaled() { return {}; }

}  // namespace

void write_encoded_dataset_file(const std::string& path, const EncodedContents& c, const WriteOptions& o) {
  h5::write_file_atomically(path, [&](h5::File& f) { write_contents(f, c, o); });
}

bool is_encoded_split(const std::string& path, const std::string& split) {
  return h5::File::open_read(path).exists("/" + split + "/encoded");
}

EncodedImages::EncodedImages(const std::string& path, const std::string& split, int64_t memory_bytes,
                             std::array<int64_t, 2> size)
    : path_(path),
      split_(split),
      file_(h5::File::open_read(path)),
      memory_bytes_(memory_bytes),
      fit_(unscaled(), Shape{1, 1, 1}) {
  const std::string g = "/" + split, enc = g + "/encoded", off = g + "/offsets", shp = g + "/shapes",
                    lab = g + "/labels";
  if (!file_.exists(g)) h5::fail(file_, g, "no such split");
  for (const auto& d : {enc, off, shp, lab})
    if (!file_.exists(d)) h5::fail(file_, d, "missing: an encoded split has encoded, offsets, shapes and labels");
  const auto einfo = h5::dataset_info(file_, enc), oinfo = h5::dataset_info(file_, off),
             sinfo = h5::dataset_info(file_, shp), linfo = h5::dataset_info(file_, lab);
  if (einfo.dims.size() != 1 || einfo.type_class != H5T_INTEGER || einfo.type_size != 1)
    h5::fail(file_, enc, "expected a 1-D uint8 dataset (the files' bytes)");
  if (linfo.dims.size() != 1 || linfo.type_class != H5T_INTEGER) h5::fail(file_, lab, "expected a 1-D integer dataset");
  n_ = linfo.dims[0];
  if (n_ > kMaxSamples) h5::fail(file_, lab, cat(n_, " samples: more than hubel reads (", kMaxSamples, ")"));
  if (oinfo.dims != std::vector<int64_t>{n_ + 1} || oinfo.type_class != H5T_INTEGER)
    h5::fail(file_, off, cat("expected ", n_ + 1, " integer offsets (one more than the ", n_, " labels)"));
  if (sinfo.dims != std::vector<int64_t>{n_, 3} || sinfo.type_class != H5T_INTEGER)
    h5::fail(file_, shp, cat("expected integer shapes [", n_, ", 3]"));
  for (const auto& [d, info] : {std::pair{enc, einfo}, {off, oinfo}, {shp, sinfo}, {lab, linfo}})
    h5::check_stored(file_, d, info);
  offsets_.resize(static_cast<size_t>(n_ + 1));
  h5::read_dataset(file_, off, H5T_NATIVE_INT64, offsets_.data());
  if (offsets_[0] != 0 || offsets_.back() != einfo.dims[0])
    h5::fail(file_, off,
             cat("the offsets run from ", offsets_[0], " to ", offsets_.back(), ", not 0 to the ", einfo.dims[0],
                 " bytes of ", enc));
  for (int64_t i = 0; i < n_; ++i)
    if (offsets_[i + 1] <= offsets_[i])
      h5::fail(file_, off, cat("sample ", i, " has ", offsets_[i + 1] - offsets_[i], " bytes (offsets must ascend)"));
  std::vector<int32_t> shapes(static_cast<size_t>(3 * n_));
  if (n_ > 0) h5::read_dataset(file_, shp, H5T_NATIVE_INT32, shapes.data());
  labels_.resize(static_cast<size_t>(n_));
  if (n_ > 0) h5::read_dataset(file_, lab, H5T_NATIVE_INT32, labels_.data());
  channels_ = h5::read_int_attribute(file_, g, "channels").value_or(n_ > 0 ? shapes[0] : 3);
  if (channels_ != 1 && channels_ != 3) h5::fail(file_, g, cat("channels is ", channels_, "; hubel decodes to 1 or 3"));
  std::map<std::pair<int64_t, int64_t>, int64_t> sizes;
  for (int64_t i = 0; i < n_; ++i) {
    const int64_t c = shapes[3 * i], h = shapes[3 * i + 1], w = shapes[3 * i + 2];
    if (c != channels_ || h < 1 || w < 1 || h > kMaxImageSide || w > kMaxImageSide)
      h5::fail(file_, shp,
               cat("sample ", i, " has shape [", c, ", ", h, ", ", w, "]; the split has ", channels_,
                   " channels and sides up to ", kMaxImageSide));
    decoded_bytes_ += c * h * w;
    ++sizes[{h, w}];
  }
  // The samples' size: data.size, else the split's, else the images' common one.
  if (size[0] > 0) {
    height_ = size[0], width_ = size[1];
  } else if (auto s = h5::read_doubles_attribute(file_, g, "size"); s && s->size() == 2) {
    height_ = static_cast<int64_t>((*s)[0]), width_ = static_cast<int64_t>((*s)[1]);
    if (height_ < 1 || width_ < 1 || height_ > 16384 || width_ > 16384)
      h5::fail(file_, g, cat("the size attribute [", (*s)[0], ", ", (*s)[1], "] is not two sides in [1, 16384]"));
  } else if (sizes.size() == 1) {
    height_ = sizes.begin()->first.first, width_ = sizes.begin()->first.second;
  } else {
    throw DataError(cat(name(), ": the images have ", sizes.size(),
                        " different sizes and the file records none for the samples; give data.size: [H, W] (the "
                        "size the network takes), or convert with --size"));
  }
  auto classes = h5::read_int_attribute(file_, "/", "num_classes");
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
      h5::fail(file_, lab, cat("label ", labels_[i], " of sample ", i, " is outside [0, ", classes_, ")"));
  fit_ = Transform(unscaled(), sample_shape());
  bytes_ = h5::open_dataset(file_, enc, encoded_bytes() <= memory_bytes_ ? size_t{1} << 20 : size_t{16} << 20);
}

void EncodedImages::read_labels(std::span<const int64_t> idx, int32_t* labels) const {
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= n_) throw DataError(cat(name(), ": sample ", idx[i], " out of range [0, ", n_, ")"));
    labels[i] = labels_[static_cast<size_t>(idx[i])];
  }
}

void EncodedImages::read_encoded(std::span<const int64_t> idx, std::vector<std::vector<uint8_t>>& bytes,
                                 int32_t* labels) const {
  std::lock_guard<std::mutex> guard(mutex_);
  const auto n = static_cast<int64_t>(idx.size());
  if (static_cast<int64_t>(bytes.size()) < n) bytes.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= n_) throw DataError(cat(name(), ": sample ", idx[i], " out of range [0, ", n_, ")"));
  if (labels) read_labels(idx, labels);
  const std::string path = "/" + split_ + "/encoded";
  if (encoded_bytes() <= memory_bytes_) {
    if (resident_.empty() && n_ > 0) {
      std::vector<uint8_t> all(static_cast<size_t>(encoded_bytes()));
      h5::read_run(file_, bytes_, path, H5T_NATIVE_UINT8, 0, encoded_bytes(), all.data());
      resident_ = std::move(all);
    }
    for (int64_t i = 0; i < n; ++i) {
      const auto s = static_cast<size_t>(idx[i]);
      bytes[i].assign(resident_.begin() + offsets_[s], resident_.begin() + offsets_[s + 1]);
    }
    return;
  }
  // In file order: one read per sample, ascending (neighbours share chunks in the cache).
  order_.resize(idx.size());
  for (int64_t i = 0; i < n; ++i) order_[i] = {idx[i], i};
  std::sort(order_.begin(), order_.end());
  for (const auto& [s, dst] : order_) {
    auto& b = bytes[static_cast<size_t>(dst)];
    b.resize(static_cast<size_t>(offsets_[s + 1] - offsets_[s]));
    h5::read_run(file_, bytes_, path, H5T_NATIVE_UINT8, offsets_[s], static_cast<int64_t>(b.size()), b.data());
  }
}

void EncodedImages::read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView) const {
  std::vector<std::vector<uint8_t>> bytes;
  read_encoded(idx, bytes, labels);
  const int64_t per = sample_shape().numel();
  for (size_t i = 0; i < idx.size(); ++i) {
    const Image8 im = decode_image(bytes[i], sample_name(idx[i]), static_cast<int>(channels_));
    fit_.apply_image(im.pixels.data(), im.height, im.width, idx[i], 0, 0, false,
                     x.data() + static_cast<int64_t>(i) * per);
  }
}

}  // namespace hubel::datasets
