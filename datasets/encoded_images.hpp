// Splits stored as the image files themselves (`hubel convert images --encoded`): the
// ImageNet layout, full-resolution images decoded at training time, where a random
// resized crop sees the whole picture and the file is several times smaller than decoded
// pixels. In the hubel dataset format (datasets/hdf5_dataset.hpp), such a split is
//
//   /<split>/encoded   uint8 [total bytes]: the PNG and JPEG files, one after another,
//                      chunked (1 MiB) so that a run of samples is one sequential read
//   /<split>/offsets   int64 [N + 1]: sample i is encoded[offsets[i], offsets[i + 1])
//   /<split>/shapes    int32 [N, 3]: each image's C, H, W as decoded (C: the set's channels)
//   /<split>/labels    int32 [N]
//   /<split>           attributes: count, channels, and size = [H, W] (the samples' size
//                      when the conversion gave --size; data.size overrides it)
//
// Variable-length bytes as one flat dataset and its offsets rather than an HDF5
// variable-length type: HDF5 keeps each variable-length element as a separate object in
// its global heap, so a run of samples could not be read in one call, checksummed or
// compressed by chunk. h5ls and h5dump show this layout as is.
//
// The mean and std attributes of the root are over the decoded train images; there is no
// mean image (the images have different sizes).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "datasets/hdf5_dataset.hpp"
#include "datasets/transform.hpp"
#include "framework/hdf5.hpp"

namespace hubel::datasets {

// An encoded data set to be written; each split's bytes are read back a block at a time,
// so that the conversion needs memory for one block, not for the set.
struct EncodedContents {
  struct Split {
    std::string name;
    std::vector<int64_t> offsets;  // N + 1, from 0
    std::vector<int32_t> shapes;   // N * 3
    std::vector<int32_t> labels;   // N
    // Writes the bytes of samples [first, last) to out (offsets[last] - offsets[first] bytes).
    std::function<void(int64_t first, int64_t last, uint8_t* out)> bytes;
    int64_t size() const { return static_cast<int64_t>(labels.size()); }
  };
  std::vector<Split> splits;
  std::vector<std::string> classes;
  std::string source;
  int channels = 3;
  std::array<int64_t, 2> size{};     // [H, W] recorded as the samples' size; {0, 0}: none
  std::vector<double> mean, stddev;  // per channel, over the decoded train images
};

// Writes atomically, as write_dataset_file.
void write_encoded_dataset_file(const std::string& path, const EncodedContents& c, const WriteOptions& o = {});

// Whether the split of the file is stored encoded.
bool is_encoded_split(const std::string& path, const std::string& split);

// An encoded split. Opening checks the layout (offsets ascending within the bytes,
// shapes, labels) before anything large is allocated. The bytes are held in memory when
// they fit in memory_bytes (read whole, once), else read per batch as sorted byte runs.
class EncodedImages : public Dataset {
 public:
  // size: the samples' [H, W]; {0, 0}: the split's size attribute, else the images'
  // common size (an error naming data.size when they differ).
  EncodedImages(const std::string& path, const std::string& split,
                int64_t memory_bytes = Hdf5Dataset::kDefaultMemoryBytes, std::array<int64_t, 2> size = {});
  std::string name() const override { return path_ + ":/" + split_; }
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{channels_, height_, width_}; }
  int64_t num_classes() const override { return classes_; }
  std::vector<std::string> class_names() const override { return names_; }
  // The decoded images fitted to the sample shape (the evaluation window, 0-255).
  void read(std::span<const int64_t> idx, TensorView x, int32_t* labels, TensorView targets) const override;
  bool encoded() const override { return true; }
  void read_encoded(std::span<const int64_t> idx, std::vector<std::vector<uint8_t>>& bytes,
                    int32_t* labels) const override;
  void read_labels(std::span<const int64_t> idx, int32_t* labels) const override;
  // "file.h5:/train sample 17": how a sample's image is named in decoding errors.
  std::string sample_name(int64_t i) const { return name() + " sample " + std::to_string(i); }
  // Bytes of the split's files, and of the images decoded.
  int64_t encoded_bytes() const { return offsets_.empty() ? 0 : offsets_.back(); }
  int64_t decoded_bytes() const { return decoded_bytes_; }

 private:
  std::string path_, split_;
  h5::File file_;
  h5::Handle bytes_;
  int64_t n_ = 0, classes_ = 0, channels_ = 0, height_ = 0, width_ = 0, decoded_bytes_ = 0;
  int64_t memory_bytes_ = 0;
  std::vector<int64_t> offsets_;
  std::vector<int32_t> labels_;
  std::vector<std::string> names_;
  Transform fit_;  // read(): the evaluation window, unscaled
  mutable std::mutex mutex_;
  mutable std::vector<uint8_t> resident_;
  mutable std::vector<std::pair<int64_t, int64_t>> order_;
};

}  // namespace hubel::datasets
