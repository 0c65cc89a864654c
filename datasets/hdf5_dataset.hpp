// The hubel dataset format in HDF5, and the reader.
//
//   /                      attributes: format = "hubel-dataset", format_version = 1,
//                          source (where the data came from), classes (names),
//                          num_classes, mean and std (per channel, over the train split,
//                          in the units of the stored images)
//   /mean_image            float32 [C, (D,) H, W]: the mean train image
//   /<split>/images        uint8 or float32 [N, C, (D,) H, W], chunked along N
//   /<split>/labels        int32 [N]
//
// Splits are groups: /train, /test, optionally /val. h5ls -r and h5dump show it as is.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "framework/hdf5.hpp"

namespace hubel::datasets {

// A data set in memory, as converters build it, to be written in the format above.
struct DatasetContents {
  struct Split {
    std::string name;             // "train", "test", "val"
    Shape sample_shape;           // [C, H, W] (or [C, W], [C, D, H, W])
    std::vector<uint8_t> images;  // N * sample_shape.numel() bytes
    std::vector<int32_t> labels;  // N
    int64_t size() const { return static_cast<int64_t>(labels.size()); }
  };
  std::vector<Split> splits;
  std::vector<std::string> classes;
  std::string source;
};

struct WriteOptions {
  int64_t chunk_rows = 256;  // rows per HDF5 chunk
  int deflate = 0;           // 0: uncompressed (fastest random reads); 1-9: gzip level
  bool checksum = true;      // Fletcher-32 on images, labels and the mean image: flipped bytes are an error on reading
};

// Writes to `path` atomically: a temporary file in the same directory, flushed and
// synced, renamed into place only when complete; on any error the temporary file is
// removed and an existing file at `path` is untouched.
void write_dataset_file(const std::string& path, const DatasetContents& contents, const WriteOptions& o = {});

// Statistics the file carries, for normalization.
struct FileStats {
  std::vector<double> mean, std;  // per channel, in stored units; empty if absent
  Tensor mean_image;              // empty if absent
  std::vector<std::string> classes;
  std::string source;
};
// The file's statistics; the mean image only when asked for (it is checked against the
// expected shape before anything is allocated), since a large one costs memory for nothing.
FileStats read_file_stats(const std::string& path, const Shape* mean_image_shape = nullptr);

// Which part of a split a rank holds (Hdf5Dataset); world 0: not partitioned.
struct Partition {
  int rank = 0, world = 0;
};

// One split of a file in the format above. Opening checks everything (datasets present,
// rank, types, label range, matching counts) and reports the file and dataset path.
class Hdf5Dataset : public Dataset {
 public:
  // A split no larger than memory_bytes is read whole, in one call, the first time a
  // sample is asked for, and served from memory after; a larger one is read row runs at
  // a time with hyperslab selections.
  // memory_bytes = kStreamed: never resident; for sets read in order (held-out and test
  // sets), through a small chunk cache, so evaluating costs no copy of the split in memory.
  // memory_bytes = kPaged: never resident either, for sets read in any order: each row is
  // read straight from the file (pread at its place in the file, which the operating
  // system's page cache holds, shared by every process on the machine), and each chunk's
  // checksum is verified through HDF5 the first time one of its rows is read. Only for
  // splits stored uncompressed (h5::row_layout).
  static constexpr int64_t kDefaultMemoryBytes = int64_t{1} << 30, kStreamed = 0, kPaged = -1;
  // part.world > 0: partitioned. Rank r of W holds rows [r N / W, (r + 1) N / W) as stored
  // (read in whole runs the first time a sample is asked for) and the split is read
  // collectively (read_global): each minibatch's rows held elsewhere come through one
  // exchange between all ranks. Every rank holds every label.
  using Part = Partition;
  Hdf5Dataset(const std::string& path, const std::string& split, int64_t memory_bytes = kDefaultMemoryBytes,
              Part part = {});
  std::string name() const override { return path_ + ":/" + split_; }
  void prepare() const override;
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return shape_; }
  int64_t num_classes() const override { return classes_; }
  std::vector<std::string> class_names() const override { return names_; }
  // x gets the stored values as floats (0-255 for uint8 images).
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const override;
  void read_labels(std::span<const int64_t> idx, int32_t* labels) const override;
  bool is_uint8() const { return uint8_; }
  int64_t stored_bytes() const override { return shape_.numel() * (uint8_ ? 1 : 4); }
  bool stored_float() const override { return !uint8_; }
  int64_t storage_rows() const override { return chunk_rows_; }
  void read_stored(std::span<const int64_t> idx, uint8_t* rows, int32_t* labels) const override;
  bool collective() const override { return part_.world > 0; }
  void read_global(std::span<const int64_t> ids, std::span<const int64_t> bounds, int rank, comm::Exchanger* ex,
                   ExchangeScratch& scratch, TensorView x, int32_t* labels, TensorView targets) const override;
  // The first row of rank r's part, for r in [0, world].
  int64_t part_begin(int r) const { return static_cast<int64_t>((static_cast<__int128>(n_) * r) / part_.world); }
  // The rank whose part holds row id.
  int part_owner(int64_t id) const;

 private:
  // DataError naming the file, split and sample of the first NaN or infinity in `count`
  // rows of `per` floats (sample numbers from index, or first + r).
  void check_finite(const float* rows, int64_t first, int64_t count, int64_t per, const int64_t* index) const;
  void check_index(int64_t id) const;
  // Before each read from the file: a DataError when the file is gone, replaced or resized
  // since it was opened (HDF5 would serve cached chunks, or zeros, or fail later).
  void check_file() const;
  // The rows held in memory (the whole split, or this rank's part: loaded on first use),
  // under mutex_; null when the split is read from the file.
  const uint8_t* held_locked() const;
  // Stored rows -> floats.
  void to_float(const uint8_t* row, float* out) const;
  // put(destination, sample, stored row) for each of idx, from memory or the file (mutex_ held).
  template <class Put>
  void gather_locked(std::span<const int64_t> idx, Put&& put) const;
  std::string path_, split_;
  h5::File file_;
  h5::Handle images_;
  Shape shape_;
  int64_t n_ = 0, classes_ = 0;
  std::vector<std::string> names_;
  bool uint8_ = true;
  int64_t memory_bytes_ = 0;
  std::vector<int32_t> labels_;
  Part part_;
  int64_t chunk_rows_ = 0;
  // Chunks whose checksums a read has verified: later reads of them skip the check (the
  // file is the same one, check_file() says).
  mutable std::vector<bool> verified_;
  // Whether rows [a, b] span a chunk not verified yet; mark_verified records a read of them.
  bool needs_verify(int64_t a, int64_t b) const;
  void mark_verified(int64_t a, int64_t b) const;
  // kPaged: the file, open for pread, and where each chunk of rows lies in it.
  struct Descriptor {
    int fd = -1;
    Descriptor() = default;
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    ~Descriptor();
  };
  bool paged_ = false;
  Descriptor fd_;
  h5::RowLayout layout_;
  // Rows idx from the file into consecutive rows of out (mutex_ held), each chunk's
  // checksum verified on its first read.
  void pread_rows_locked(std::span<const int64_t> idx, uint8_t* out) const;
  uint64_t device_ = 0, inode_ = 0;
  int64_t file_bytes_ = 0;
  int64_t held_first_ = 0;                 // the first row of resident_
  mutable std::vector<uint8_t> resident_;  // the whole split or this rank's part, once read
  mutable bool loaded_ = false;
  // Read scratch, reused: sorted (row, destination) pairs and the raw rows.
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<int64_t, int64_t>> order_;
  mutable std::vector<int64_t> rows_;
  mutable std::vector<uint8_t> raw_;
  mutable std::vector<uint8_t> chunk_;  // kPaged: a chunk being verified
};

}  // namespace hubel::datasets
