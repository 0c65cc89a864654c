// Converters to the hubel HDF5 format: IDX (MNIST, Fashion-MNIST; gzipped or not) and
// CIFAR-10 binary batches. Malformed input is an error naming the file and what is wrong
// (bad magic number, a count that does not match the file size, truncation), raised
// before anything is written; the output appears only when complete.
#pragma once

#include <string>
#include <vector>

#include "datasets/hdf5_dataset.hpp"

namespace hubel::datasets {

// Reads an IDX images file ([N, H, W] unsigned bytes) and its labels file ([N]) into a
// split with samples [1, H, W]. Either file may be gzipped.
DatasetContents::Split read_idx(const std::string& images_path, const std::string& labels_path,
                                const std::string& split);

// Reads CIFAR-10 binary batches (records of 1 label byte + 3072 pixel bytes, 3x32x32)
// into one split.
DatasetContents::Split read_cifar10(const std::vector<std::string>& batch_paths, const std::string& split);

// Class names of the known data sets ("mnist", "fashion-mnist", "cifar10"), or a
// comma-separated list; empty: "0", "1", ...
std::vector<std::string> class_names(const std::string& spec, int64_t count);

struct ConvertOptions {
  std::string classes;  // see class_names
  WriteOptions write;
};

// `hubel convert idx DIR OUT`: DIR holds train-images-idx3-ubyte[.gz],
// train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz].
// Returns a one-line summary.
std::string convert_idx_dir(const std::string& dir, const std::string& out, const ConvertOptions& o);
// `hubel convert cifar10 DIR OUT`: DIR holds data_batch_1.bin ... data_batch_5.bin and
// test_batch.bin (batches.meta.txt, if present, names the classes).
std::string convert_cifar10_dir(const std::string& dir, const std::string& out, const ConvertOptions& o);

}  // namespace hubel::datasets
