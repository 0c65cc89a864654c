// IDX and CIFAR-10 readers and the `hubel convert` conversions.
#include "datasets/convert.hpp"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "framework/error.hpp"

namespace hubel::datasets {

namespace fs = std::filesystem;

namespace {

// Refuse before allocating: no IDX or CIFAR file hubel reads is larger than this.
constexpr int64_t kMaxBytes = int64_t{1} << 34;

// Reads a whole file, gunzipping if it is gzipped (zlib reads plain files as they are).
// The buffer grows with what is actually read, so a header claiming a huge size cannot
// make us allocate it.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw DataError(cat(path, ": no such file"));
    if (fs::is_directory(path, ec)) throw DataError(cat(path, ": is a directory"));
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) throw DataError(cat(path, ": cannot open"));
  }
  ~Reader() {
    if (f_) gzclose(f_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads exactly n bytes; false at a clean end of file before any byte.
  void read_exact(void* p, int64_t n, const char* what) {
    const int64_t got = read_some(p, n);
    if (got != n)
      throw DataError(cat(path_, ": truncated: the ", what, " needs ", n, " bytes, the file has ", got, " left"));
  }
  int64_t read_some(void* p, int64_t n) {
    int64_t total = 0;
    auto* out = static_cast<char*>(p);
    while (total < n) {
      const int chunk = static_cast<int>(std::min<int64_t>(n - total, 1 << 30));
      const int r = gzread(f_, out + total, static_cast<unsigned>(chunk));
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        throw DataError(cat(path_, ": read error (", msg ? msg : "?", "); a damaged or truncated gzip file?"));
      }
      if (r == 0) break;
      total += r;
    }
    return total;
  }
  // Reads `n` bytes of payload into v, growing v as data arrives.
  void read_payload(std::vector<uint8_t>& v, int64_t n, const char* what) {
    v.clear();
    constexpr int64_t kStep = int64_t{16} << 20;
    while (static_cast<int64_t>(v.size()) < n) {
      const int64_t want = std::min(kStep, n - static_cast<int64_t>(v.size()));
      const size_t old = v.size();
      v.resize(old + static_cast<size_t>(want));
      const int64_t got = read_some(v.data() + old, want);
      if (got != want)
        throw DataError(cat(path_, ": truncated: the header announces ", n, " bytes of ", what, " but the file has ",
                            static_cast<int64_t>(old) + got));
    }
  }
  void expect_end() {
    char c;
    const int64_t extra = read_some(&c, 1);
    if (extra) throw DataError(cat(path_, ": the file is longer than its header says (extra bytes after the data)"));
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

uint32_t big_endian(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Reads an IDX header; returns the dimensions.
std::vector<int64_t> idx_header(Reader& r, int want_dims, const char* kind) {
  uint8_t magic[4];
  r.read_exact(magic, 4, "magic number");
  if (magic[0] != 0 || magic[1] != 0)
    throw DataError(cat(r.path(), ": bad magic number (", int{magic[0]}, " ", int{magic[1]}, " ", int{magic[2]}, " ",
                        int{magic[3]}, "): not an IDX file"));
  if (magic[2] != 0x08)
    throw DataError(cat(r.path(), ": IDX element type 0x", std::hex, int{magic[2]}, std::dec,
                        " is not unsigned bytes (0x08), which is what MNIST-style files hold"));
  if (magic[3] != want_dims)
    throw DataError(
        cat(r.path(), ": an IDX ", kind, " file has ", want_dims, " dimensions; this one has ", int{magic[3]}));
  std::vector<int64_t> dims;
  int64_t total = 1;
  for (int i = 0; i < want_dims; ++i) {
    uint8_t b[4];
    r.read_exact(b, 4, "header");
    const int64_t d = big_endian(b);
    if (d == 0) throw DataError(cat(r.path(), ": dimension ", i, " is zero"));
    dims.push_back(d);
    // Compared before multiplying: a header's sizes may overflow any integer.
    if (d > kMaxBytes / total)
      throw DataError(cat(r.path(), ": the header claims more than ", kMaxBytes, " bytes of data: refused"));
    total *= d;
  }
  return dims;
}

fs::path find_one(const fs::path& dir, const std::string& stem) {
  for (const char* ext : {"", ".gz"}) {
    fs::path p = dir / (stem + ext);
    std::error_code ec;
    if (fs::exists(p, ec)) return p;
  }
  throw DataError(cat(dir.string(), ": neither ", stem, " nor ", stem, ".gz is there"));
}

}  // namespace

DatasetContents::Split read_idx(const std::string& images_path, const std::string& labels_path,
                                const std::string& split) {
  DatasetContents::Split s;
  s.name = split;
  Reader ri(images_path);
  const auto dims = idx_header(ri, 3, "images");
  Reader rl(labels_path);
  const auto ldims = idx_header(rl, 1, "labels");
  if (ldims[0] != dims[0])
    throw DataError(cat(labels_path, ": ", ldims[0], " labels, but ", images_path, " has ", dims[0], " images"));
  ri.read_payload(s.images, dims[0] * dims[1] * dims[2], "images");
  ri.expect_end();
  std::vector<uint8_t> labels;
  rl.read_payload(labels, ldims[0], "labels");
  rl.expect_end();
  s.labels.assign(labels.begin(), labels.end());
  s.sample_shape = Shape{1, dims[1], dims[2]};
  return s;
}

DatasetContents::Split read_cifar10(const std::vector<std::string>& batch_paths, const std::string& split) {
  constexpr int64_t kRecord = 1 + 3 * 32 * 32;
  DatasetContents::Split s;
  s.name = split;
  s.sample_shape = Shape{3, 32, 32};
  for (const auto& path : batch_paths) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw DataError(cat(path, ": no such file"));
    const auto size = static_cast<int64_t>(fs::file_size(path, ec));
    if (ec) throw DataError(cat(path, ": cannot read its size"));
    if (size == 0 || size % kRecord != 0)
      throw DataError(cat(path, ": ", size, " bytes is not a whole number of CIFAR-10 records (", kRecord,
                          " bytes each: 1 label + 3x32x32 pixels); truncated, or not a CIFAR-10 binary batch"));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(cat(path, ": cannot open"));
    std::vector<uint8_t> buf(static_cast<size_t>(size));
    in.read(reinterpret_cast<char*>(buf.data()), size);
    if (in.gcount() != size) throw DataError(cat(path, ": short read"));
    const int64_t n = size / kRecord;
    const size_t old = s.images.size();
    s.images.resize(old + static_cast<size_t>(n * (kRecord - 1)));
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* rec = buf.data() + i * kRecord;
      if (rec[0] > 9)
        throw DataError(
            cat(path, ": record ", i, " has label ", int{rec[0]}, "; CIFAR-10 labels are 0 to 9 (is this CIFAR-100?)"));
      s.labels.push_back(rec[0]);
      std::memcpy(s.images.data() + old + static_cast<size_t>(i * (kRecord - 1)), rec + 1, kRecord - 1);
    }
  }
  return s;
}

std::vector<std::string> class_names(const std::string& spec, int64_t count) {
  std::vector<std::string> names;
  if (spec == "fashion-mnist")
    names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  else if (spec == "mnist")
    names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  else if (spec == "cifar10")
    names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  else if (!spec.empty()) {
    size_t start = 0;
    while (true) {
      const size_t comma = spec.find(',', start);
      names.push_back(spec.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else {
    for (int64_t i = 0; i < count; ++i) names.push_back(std::to_string(i));
  }
  if (static_cast<int64_t>(names.size()) < count)
    throw ConfigError(cat("--classes names ", names.size(), " classes but the labels go up to ", count - 1));
  return names;
}

namespace {
int64_t label_count(const DatasetContents& c) {
  int32_t mx = -1;
  for (const auto& s : c.splits)
    for (auto l : s.labels) mx = std::max(mx, l);
  return mx + 1;
}

std::string summary(const DatasetContents& c, const std::string& out) {
  std::string s = out + ":";
  for (const auto& sp : c.splits) s += cat(" ", sp.name, " ", sp.size(), " x ", sp.sample_shape.str(), ";");
  s += cat(" ", c.classes.size(), " classes");
  return s;
}
}  // namespace

std::string convert_idx_dir(const std::string& dir, const std::string& out, const ConvertOptions& o) {
  DatasetContents c;
  const fs::path d(dir);
  // Looked up in this order, so a missing file is reported in a predictable order.
  const auto train_images = find_one(d, "train-images-idx3-ubyte"),
             train_labels = find_one(d, "train-labels-idx1-ubyte");
  const auto test_images = find_one(d, "t10k-images-idx3-ubyte"), test_labels = find_one(d, "t10k-labels-idx1-ubyte");
  c.splits.push_back(read_idx(train_images.string(), train_labels.string(), "train"));
  c.splits.push_back(read_idx(test_images.string(), test_labels.string(), "test"));
  c.classes = class_names(o.classes, label_count(c));
  c.source = cat("IDX files in ", fs::absolute(d).string());
  write_dataset_file(out, c, o.write);
  return summary(c, out);
}

std::string convert_cifar10_dir(const std::string& dir, const std::string& out, const ConvertOptions& o) {
  DatasetContents c;
  const fs::path d(dir);
  std::vector<std::string> train;
  for (int i = 1; i <= 5; ++i) train.push_back((d / cat("data_batch_", i, ".bin")).string());
  c.splits.push_back(read_cifar10(train, "train"));
  c.splits.push_back(read_cifar10({(d / "test_batch.bin").string()}, "test"));
  std::string spec = o.classes;
  if (spec.empty()) {
    std::ifstream meta(d / "batches.meta.txt");
    std::string line, names;
    while (std::getline(meta, line))
      if (!line.empty()) names += (names.empty() ? "" : ",") + line;
    spec = names.empty() ? "cifar10" : names;
  }
  c.classes = class_names(spec, label_count(c));
  c.source = cat("CIFAR-10 binary batches in ", fs::absolute(d).string());
  write_dataset_file(out, c, o.write);
  return summary(c, out);
}

}  // namespace hubel::datasets
