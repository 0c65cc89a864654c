// Opens what an experiment's `data` section describes: the training set, the held-out set
// evaluated after each epoch, the test set, and the transforms between them and the net.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "datasets/transform.hpp"

namespace hubel {
class Config;
}

namespace hubel::datasets {

struct Splits {
  std::unique_ptr<Dataset> train;
  // Evaluated after each epoch: a val split of the file, else val_fraction of train (never
  // the test split unless the experiment says val: test); may be null.
  std::unique_ptr<Dataset> heldout;
  std::unique_ptr<Dataset> test;         // may be null
  std::string heldout_name;              // "val" or "test"
  std::vector<std::string> warnings;     // for the user (rank 0 prints them)
  std::unique_ptr<Transform> transform;  // null: samples go to the network as stored
  bool drop_last = false;
  int prefetch = 2;
  double timeout = 600;    // data.timeout: seconds to wait for the loader thread (0: for ever)
  int decode_threads = 0;  // data.decode_threads (encoded images): 0 the shared pool, 1 the loader thread
};

// data: {file: data/fashion-mnist.h5, train: train, test: test, val: val | val_fraction: 0.1
//        (the default when the file has no val split; 0: no held-out set), val_seed: 1,
//        scale: 0.00392, normalize: none | file | {mean: [...], std: [...]}, mean_image: false,
//        pad: 2, augment: {crop_pad: 4, flip: true}, classes: [0, 2, 4] (keep these, relabeled
//        0..k-1), drop_last: false, prefetch: 2, size: [H, W] and decode_threads: 0 (splits
//        stored as image files, datasets/encoded_images.hpp)}. The train split is read into memory
// once (when it fits in 1 GiB); held-out and test splits are streamed, in order.
// or data: {spirals: {train: 2000, test: 1000, val: 1000, classes: 2, turns: 1.5, noise: 0.05, seed: 7}}
// or data: {synthetic: {shape: [3, 32, 32], classes: 10, train: 12800, test: 0, val: 0, seed: 1}}
// (generated sets: val, default the test size, is its own draw, held out after each epoch)
// evaluation_only (inference: hubel::Model, hubel export): the train split opened for its
// shape, classes and statistics without reading its samples, no held-out or test split;
// the transform is the same.
Splits open(const Config& data, bool evaluation_only = false);

}  // namespace hubel::datasets
