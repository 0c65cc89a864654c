// `hubel convert images`: a folder of PNG and JPEG files, one subfolder per class (the
// layout of torchvision's ImageFolder, Keras' image_dataset_from_directory and Caffe's
// convert_imageset), to the hubel HDF5 format as decoded uint8 [N, C, H, W].
//
//   DIR/<class>/*.{png,jpg,jpeg}              -> the train split
//   DIR/{train,val,test}/<class>/*.{...}      -> those splits (split_dir)
//
// Classes are the subfolder names, sorted (as ImageFolder does), or the explicit list.
// Files are taken class by class, sorted by name within a class; other extensions and
// hidden files are left out. Decoding runs on TBB's threads; a file that is not an image,
// a truncated or corrupt one, an empty one or one with an absurd size is named, and either
// stops the conversion (nothing is written) or, with skip_bad, is left out and counted.
// The output is written atomically like the other converters'.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/hdf5_dataset.hpp"

namespace hubel::datasets {

struct ImageFolderOptions {
  std::string classes;            // comma-separated: these classes, in this order (default: all, sorted)
  int64_t height = 0, width = 0;  // the samples' size; 0: the images' own (then all must share it)
  bool shorter = true;            // resize: the shorter side, then the centre crop; false: stretch (exact)
  int channels = 0;               // 1 or 3; 0: 3 if any image is in color, else 1
  bool split_dir = false;         // DIR/{train,val,test}/<class>/
  bool skip_bad = false;          // leave out unreadable files (counted) instead of stopping
  // Store the files as they are (datasets/encoded_images.hpp), decoded at training time;
  // height and width, when given, are recorded as the samples' size.
  bool encoded = false;
  WriteOptions write;
  // Called on the calling thread as files are decoded: (files done, files in all).
  std::function<void(int64_t, int64_t)> progress;
};

struct ImageFolderResult {
  std::string summary;               // as the other converters'
  std::vector<std::string> skipped;  // "file: why", for each file left out
  int64_t ignored = 0;               // files with other extensions, not looked at
};

ImageFolderResult convert_image_folder(const std::string& dir, const std::string& out, const ImageFolderOptions& o);

}  // namespace hubel::datasets
