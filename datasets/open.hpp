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

// Which rank of how many opens the data, and how many ranks share its node's memory: the
// training split's store depends on them (data.store).
struct Placement {
  int rank = 0, world = 1, node_ranks = 1;
};

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
  // How the training split is held (data.store, data.memory_mb): "resident" (every rank a
  // copy), "partitioned" (each rank 1/W, rows exchanged per minibatch), "paged" (rows read
  // in place from the file, which the page cache holds: the same bits as resident), "streaming" (read
  // in runs through a shuffle buffer of shuffle_buffer samples), "generated"; and why.
  std::string store = "generated", store_why;
  int64_t shuffle_buffer = 0;  // > 0 when streaming
};

// data: {file: data/fashion-mnist.h5, train: train, test: test, val: val | val_fraction: 0.1
//        (the default when the file has no val split; 0: no held-out set), val_seed: 1,
//        scale: 0.00392, normalize: none | file | {mean: [...], std: [...]}, mean_image: false,
//        pad: 2, augment: {crop_pad: 4, flip: true}, classes: [0, 2, 4] (keep these, relabeled
//        0..k-1), drop_last: false, prefetch: 2, size: [H, W] and decode_threads: 0 (splits
//        stored as image files, datasets/encoded_images.hpp)}. The train split is read into memory
// as data.store says (below); held-out and test splits are streamed, in order.
// or data: {spirals: {train: 2000, test: 1000, val: 1000, classes: 2, turns: 1.5, noise: 0.05, seed: 7}}
// or data: {synthetic: {shape: [3, 32, 32], classes: 10, train: 12800, test: 0, val: 0, seed: 1}}
// (generated sets: val, default the test size, is its own draw, held out after each epoch)
// evaluation_only (inference: hubel::Model, hubel export): the train split opened for its
// shape, classes and statistics without reading its samples, no held-out or test split;
// the transform is the same.
// The training split's store (data.store: auto | resident | partitioned | streaming;
// data.memory_mb, per rank, default half the machine's memory shared by node_ranks): auto
// keeps it resident when it fits, else partitions it over the ranks when a part fits, else
// streams it (data.shuffle_buffer: 10000 samples).
Splits open(const Config& data, bool evaluation_only = false, const Placement& where = {});
// data.memory_mb's default: half the machine's memory, shared by the node's ranks.
int64_t default_memory_mb(int node_ranks);

}  // namespace hubel::datasets
