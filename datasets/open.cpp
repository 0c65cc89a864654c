// The data section of an experiment.
#include "datasets/open.hpp"

#include <unistd.h>

#include <filesystem>
#include <numeric>

#include "datasets/encoded_images.hpp"
#include "datasets/hdf5_dataset.hpp"
#include "datasets/spirals.hpp"
#include "datasets/subset.hpp"
#include "datasets/synthetic.hpp"
#include "datasets/transform.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/hdf5.hpp"
#include "framework/random.hpp"

namespace hubel::datasets {

namespace {

Splits open_spirals(const Config& c) {
  Spirals::Options o;
  o.classes = c.get<int64_t>("classes", 2);
  o.turns = c.get<double>("turns", 1.0);
  o.noise = c.get<double>("noise", 0.05);
  const auto seed = c.get<uint64_t>("seed", 1);
  const auto train = c.get<int64_t>("train", 2000);
  const auto test = c.get<int64_t>("test", 1000);
  const auto val = c.get<int64_t>("val", test);
  if (o.classes < 2 || o.classes > 1000) c.fail(cat("spirals.classes must be in [2, 1000]; got ", o.classes));
  if (train <= 0) c.fail(cat("spirals.train must be positive; got ", train));
  if (test < 0) c.fail(cat("spirals.test must be >= 0; got ", test));
  if (val < 0) c.fail(cat("spirals.val must be >= 0; got ", val));
  if (!(o.noise >= 0)) c.fail(cat("spirals.noise must be >= 0; got ", o.noise));
  c.finish();
  Splits s;
  o.samples = train;
  o.seed = seed;
  s.train = std::make_unique<Spirals>(o, "train");
  if (test > 0) {
    o.samples = test;
    o.seed = seed + 0x9e3779b9ULL;  // an independent draw from the same distribution
    s.test = std::make_unique<Spirals>(o, "test");
  }
  if (val > 0) {  // the held-out set: another independent draw, not the test set
    o.samples = val;
    o.seed = hash_combine(seed, 0x76616cULL);
    s.heldout = std::make_unique<Spirals>(o, "val");
    s.heldout_name = "val";
  }
  return s;
}

Splits open_synthetic(const Config& c) {
  Synthetic::Options o;
  const auto shape = c.get<std::vector<int64_t>>("shape", {3, 32, 32});
  if (shape.empty() || shape.size() > 4) c.at("shape").fail("shape is [C, W], [C, H, W] or [C, D, H, W]");
  for (auto d : shape)
    if (d <= 0 || d > (int64_t{1} << 20)) c.at("shape").fail(cat("every size in shape must be in [1, 2^20]; got ", d));
  o.shape = Shape(shape);
  o.classes = c.get<int64_t>("classes", 10);
  o.seed = c.get<uint64_t>("seed", 1);
  const auto train = c.get<int64_t>("train", 10000);
  const auto test = c.get<int64_t>("test", 0);
  const auto val = c.get<int64_t>("val", test);
  if (o.classes < 2 || o.classes > 100000) c.fail(cat("synthetic.classes must be in [2, 100000]; got ", o.classes));
  if (train <= 0 || train > (int64_t{1} << 40)) c.fail(cat("synthetic.train must be in [1, 2^40]; got ", train));
  if (test < 0 || test > (int64_t{1} << 40)) c.fail(cat("synthetic.test must be in [0, 2^40]; got ", test));
  if (val < 0 || val > (int64_t{1} << 40)) c.fail(cat("synthetic.val must be in [0, 2^40]; got ", val));
  c.finish();
  Splits s;
  o.samples = train;
  s.train = std::make_unique<Synthetic>(o, "train");
  const uint64_t seed = o.seed;
  if (test > 0) {
    o.samples = test;
    o.seed = hash_combine(seed, 0x7465737400ULL);  // another draw
    s.test = std::make_unique<Synthetic>(o, "test");
  }
  if (val > 0) {  // the held-out set: another draw, not the test set
    o.samples = val;
    o.seed = hash_combine(seed, 0x76616cULL);
    s.heldout = std::make_unique<Synthetic>(o, "val");
    s.heldout_name = "val";
  }
  return s;
}

std::unique_ptr<Transform> read_transform(const Config& data, const std::string& file, const Dataset& train,
                                          bool uint8) {
  TransformOptions t;
  t.scale = data.get<float>("scale", uint8 ? 1.0f / 255.0f : 1.0f);
  if (!(t.scale > 0) || !std::isfinite(t.scale)) data.at("scale").fail(cat("scale must be positive; got ", t.scale));
  const Shape in = train.sample_shape();
  const int64_t C = in[0];
  if (auto n = data.find("normalize")) {
    if (n->is_scalar()) {
      const auto v = n->as<std::string>();
      if (v == "file") {
        const FileStats st = read_file_stats(file);
        if (static_cast<int64_t>(st.mean.size()) != C)
          n->fail(cat(file, " has ", st.mean.size(), " channel means for ", C,
                      " channels; convert it again with hubel convert"));
        for (int64_t c = 0; c < C; ++c) {
          t.mean.push_back(static_cast<float>(st.mean[c] * t.scale));
          t.std.push_back(static_cast<float>(std::max(st.std[c], 1e-12) * t.scale));
        }
      } else if (v != "none" && v != "false") {
        n->fail(cat("normalize is none, file, or {mean: [...], std: [...]}; got '", v, "'"));
      }
    } else {
      const auto mean = n->get<std::vector<double>>("mean"), std = n->get<std::vector<double>>("std");
      n->finish();
      if (static_cast<int64_t>(mean.size()) != C || static_cast<int64_t>(std.size()) != C)
        n->fail(cat("normalize needs one mean and one std per channel (", C, ")"));
      for (int64_t c = 0; c < C; ++c) {
        if (!(std[c] > 0)) n->fail(cat("std ", std[c], " cannot divide"));
        t.mean.push_back(static_cast<float>(mean[c]));
        t.std.push_back(static_cast<float>(std[c]));
      }
    }
  }
  if (data.get<bool>("mean_image", false)) {
    FileStats st = read_file_stats(file, &in);
    if (st.mean_image.numel() != in.numel())
      data.at("mean_image").fail(cat(file, " has no mean image of the samples' shape ", in.str()));
    t.mean_image = Tensor(in);
    for (int64_t i = 0; i < in.numel(); ++i) t.mean_image[i] = st.mean_image[i] * t.scale;
  }
  const int r = in.rank() - 1;
  if (auto p = data.find("pad")) {
    std::vector<int64_t> pad =
        p->is_sequence() ? p->as<std::vector<int64_t>>() : std::vector<int64_t>{p->as<int64_t>()};
    if (pad.size() != 1 && static_cast<int>(pad.size()) != r) p->fail(cat("pad needs 1 or ", r, " values"));
    for (int i = 0; i < r; ++i) {
      const int64_t v = pad.size() == 1 ? pad[0] : pad[static_cast<size_t>(i)];
      if (v < 0 || v > 1024) p->fail(cat("pad must be in [0, 1024]; got ", v));
      t.pad[3 - r + i] = v;
    }
  }
  if (auto a = data.find("augment")) {
    t.crop_pad = a->get<int64_t>("crop_pad", 0);
    if (t.crop_pad < 0 || t.crop_pad > 1024)
      a->at("crop_pad").fail(cat("crop_pad must be in [0, 1024]; got ", t.crop_pad));
    // A probability: true (1/2), false, or a number in [0, 1].
    auto probability = [&](const char* key) {
      const Config v = a->at(key);
      if (v.as<std::string>() == "true") return 0.5;
      if (v.as<std::string>() == "false") return 0.0;
      const double p = v.as<double>();
      if (!(p >= 0 && p <= 1)) v.fail(cat(key, " is true, false or a probability in [0, 1]; got ", p));
      return p;
    };
    // A range: x (around `centre`: [centre - x, centre + x]) or [lo, hi].
    auto range = [&](const Config& v, double centre, double min, double max) {
      Range r;
      if (v.is_sequence()) {
        const auto lh = v.as<std::vector<double>>();
        if (lh.size() != 2) v.fail("a range is [low, high]");
        r = {lh[0], lh[1], true};
      } else {
        const double x = v.as<double>();
        r = {centre - x, centre + x, true};
      }
      if (!(r.lo <= r.hi) || r.lo < min || r.hi > max)
        v.fail(cat("the range must be low <= high within [", min, ", ", max, "]; got [", r.lo, ", ", r.hi, "]"));
      return r;
    };
    if (a->has("flip")) {
      t.flip_p = probability("flip");
      t.flip = t.flip_p > 0;
    }
    if (a->has("vflip")) t.vflip_p = probability("vflip");
    if (auto rc = a->find("resized_crop")) {
      t.resized_crop_scale = {0.08, 1.0, true};
      t.resized_crop_ratio = {3.0 / 4, 4.0 / 3, true};
      if (rc->is_map()) {
        if (auto v = rc->find("scale")) t.resized_crop_scale = range(*v, 0, 1e-6, 1);
        if (auto v = rc->find("ratio")) t.resized_crop_ratio = range(*v, 0, 1e-3, 1e3);
        rc->finish();
      } else if (!rc->as<bool>()) {
        t.resized_crop_scale = {};
      }
    }
    if (auto v = a->find("rotate")) t.rotate = range(*v, 0, -360, 360);
    if (auto v = a->find("brightness")) t.brightness = range(*v, 1, 0, 100);
    if (auto v = a->find("contrast")) t.contrast = range(*v, 1, 0, 100);
    if (auto v = a->find("saturation")) t.saturation = range(*v, 1, 0, 100);
    if (auto e = a->find("erase")) {
      if (e->is_map()) {
        t.erase_p = e->get<double>("p", 0.5);
        if (auto v = e->find("scale")) t.erase_scale = range(*v, 0, 1e-6, 1);
        if (auto v = e->find("ratio")) t.erase_ratio = range(*v, 0, 1e-3, 1e3);
        e->finish();
      } else {
        t.erase_p = probability("erase");
      }
      if (!(t.erase_p >= 0 && t.erase_p <= 1)) e->fail(cat("erase.p must be in [0, 1]; got ", t.erase_p));
    }
    if (auto v = a->find("eval_crop")) {
      t.eval_crop = v->as<double>();
      if (!(t.eval_crop > 0 && t.eval_crop <= 1))
        v->fail(cat("eval_crop is a share of each side in (0, 1]; got ", t.eval_crop));
    }
    a->finish();
  }
  return std::make_unique<Transform>(std::move(t), in);
}

Splits open_file(const Config& data, bool evaluation_only, const Placement& where) {
  Splits s;
  const auto file = data.path_of("file");  // relative to the experiment file
  if (const auto written = data.get<std::string>("file"); written != file && !std::filesystem::exists(file))
    data.at("file").fail(cat(file, ": no such file ('", written, "' is relative to the experiment file's folder, ",
                             data.base(), "; --set data.file=... is relative to the current directory)"));
  const auto train_split = data.get<std::string>("train", "train");
  auto fail_at = [&](const Config& where, auto&& f) {
    try {
      return f();
    } catch (const DataError& e) {
      where.fail(e.what());
    }
  };
  // Splits stored as image files (hubel convert images --encoded) are decoded to data.size.
  std::array<int64_t, 2> size{};
  if (auto z = data.find("size")) {
    const auto v = z->is_sequence() ? z->as<std::vector<int64_t>>() : std::vector<int64_t>(2, z->as<int64_t>());
    if (v.size() != 2 || v[0] < 1 || v[1] < 1 || v[0] > 16384 || v[1] > 16384)
      z->fail("size is the samples' [H, W] (or one side for both), each in [1, 16384]");
    size = {v[0], v[1]};
  }
  const bool encoded = fail_at(data.at("file"), [&] { return is_encoded_split(file, train_split); });
  if (data.has("size") && !encoded)
    data.at("size").fail(cat(file, ":/", train_split,
                             " holds decoded samples of one size; size is for splits stored as image files (hubel "
                             "convert images --encoded)"));
  auto open_split = [&](const std::string& split, int64_t memory, Partition part = {}) -> std::unique_ptr<Dataset> {
    if (is_encoded_split(file, split)) return std::make_unique<EncodedImages>(file, split, memory, size);
    return std::make_unique<Hdf5Dataset>(file, split, memory, part);
  };
  // The training split's store.
  const int64_t memory_mb = data.get<int64_t>("memory_mb", default_memory_mb(where.node_ranks));
  if (memory_mb < 1 || memory_mb > (int64_t{1} << 40))
    data.at("memory_mb")
        .fail(cat("memory_mb is this rank's budget for the training split in MiB, at least 1; got ", memory_mb));
  const int64_t budget = memory_mb << 20;
  auto store = data.get<std::string>("store", "auto");
  if (store != "auto" && store != "resident" && store != "partitioned" && store != "paged" && store != "streaming")
    data.at("store").fail(cat("store is auto, resident, partitioned, paged or streaming; got '", store, "'"));
  s.shuffle_buffer = data.get<int64_t>("shuffle_buffer", 10000);
  if (s.shuffle_buffer < 1 || s.shuffle_buffer > (int64_t{1} << 32))
    data.at("shuffle_buffer").fail(cat("shuffle_buffer is a number of samples in [1, 2^32]; got ", s.shuffle_buffer));
  if (encoded && store != "auto" && store != "resident")
    data.at("store").fail(cat(store, " is for samples stored decoded; ", file, ":/", train_split,
                              " holds image files (kept resident under data.memory_mb, else read one by one)"));
  Partition part;
  int64_t train_memory = evaluation_only ? Hdf5Dataset::kStreamed : budget;
  if (!evaluation_only && !encoded) {
    const Hdf5Dataset probe = fail_at(data.at("file"), [&] { return Hdf5Dataset(file, train_split, 0); });
    const int64_t bytes = probe.size() * probe.stored_bytes(), mb = (bytes + (1 << 20) - 1) >> 20;
    const int64_t part_bytes = (bytes + where.world - 1) / where.world, part_mb = (part_bytes + (1 << 20) - 1) >> 20;
    const std::string what = cat(file, ":/", train_split, " (", mb, " MiB)");
    const bool chosen = store == "auto";
    if (chosen)
      store = bytes <= budget ? "resident" : where.world > 1 && part_bytes <= budget ? "partitioned" : "streaming";
    else if (store == "resident" && bytes > budget)
      data.at("store").fail(cat(what, " does not fit data.memory_mb: ", memory_mb,
                                " MiB per rank; raise it, or use store: partitioned or streaming"));
    else if (store == "partitioned" && part_bytes > budget)
      data.at("store").fail(cat("rank ", where.rank, ": its part of ", what, " over ", where.world, " ranks is ",
                                part_mb, " MiB, more than data.memory_mb: ", memory_mb,
                                " MiB; raise it, run on more ranks, or use store: streaming"));
    s.store = store;
    const std::string budget_text = cat("data.memory_mb: ", memory_mb, " MiB per rank");
    if (store == "resident") {
      s.store_why = cat(what, " held whole by every rank (", chosen ? "it fits " : "data.store; ", budget_text, ")");
    } else if (store == "partitioned") {
      part = {where.rank, where.world};
      s.store_why = cat(what, " in ", where.world, " parts of ", part_mb, " MiB, one per rank (",
                        chosen ? "a part fits " : "data.store; ", budget_text,
                        "); each minibatch's rows are exchanged between the ranks");
    } else if (store == "paged") {
      train_memory = Hdf5Dataset::kPaged;
      s.store_why = cat(what,
                        " left in the file: each row read from it as a minibatch needs it (data.store; the "
                        "operating system's page cache holds the file, shared by the node's ranks)");
    } else {
      train_memory = Hdf5Dataset::kStreamed;
      s.store_why = cat(what, " read in runs of whole chunks through a shuffle buffer of ", s.shuffle_buffer,
                        " samples (", chosen ? "a part does not fit " : "data.store; ", budget_text,
                        "): NOT the exact global permutation (docs/data.md)");
    }
    if (store != "streaming") s.shuffle_buffer = 0;
  } else {
    s.store = encoded ? "encoded" : "evaluation";
    s.shuffle_buffer = 0;
  }
  std::shared_ptr<Dataset> train =
      fail_at(data.at("file"), [&] { return open_split(train_split, train_memory, part); });
  const bool uint8 = encoded || static_cast<const Hdf5Dataset&>(*train).is_uint8();
  // (pad: 0 and mean_image: false say nothing, and are accepted.)
  auto nothing = [](const Config& v) {
    if (v.is_sequence()) {
      const auto p = v.as<std::vector<int64_t>>();
      return std::all_of(p.begin(), p.end(), [](int64_t x) { return x == 0; });
    }
    return v.as<std::string>() == "0" || v.as<std::string>() == "false";
  };
  if (encoded)
    for (const char* key : {"pad", "mean_image"})
      if (auto v = data.find(key); v && !nothing(*v))
        v->fail(cat(key, " is for samples stored decoded; ", file, ":/", train_split,
                    " holds image files, decoded to data.size (use augment.resized_crop and normalize)"));
  std::string test_split;
  if (auto t = data.find("test"); t && !t->is_null()) test_split = t->as<std::string>();  // (test: null: none)
  if (evaluation_only) {  // the train split's shape, classes and statistics; no other split
    for (const char* key : {"val", "val_fraction", "val_seed"}) data.find(key);
    test_split.clear();
  }
  if (!test_split.empty())
    s.test = fail_at(data.at("test"), [&] { return open_split(test_split, Hdf5Dataset::kStreamed); });
  // The held-out set (per-epoch evaluation, plateau schedules, early stopping, the best
  // checkpoint) is never the test split unless the user says so: a val split of the file,
  // else val_fraction of train (default 0.1; 0: none).
  std::string val_split;
  if (evaluation_only)
    ;
  else if (auto v = data.find("val"))
    val_split = v->as<std::string>();
  else if (!data.has("val_fraction") && h5::File::open_read(file).exists("val"))
    val_split = "val";
  if (!val_split.empty()) {
    const Config& where = data.has("val") ? data.at("val") : data.at("file");
    s.heldout = fail_at(where, [&] { return open_split(val_split, Hdf5Dataset::kStreamed); });
    s.heldout_name = val_split == test_split && !test_split.empty() ? "test" : "val";
    if (val_split == test_split && !test_split.empty())
      s.warnings.push_back(cat(data.at("val").where(), ": the held-out set is the test split '", test_split,
                               "': per-epoch choices (plateau, early stopping, the best checkpoint) are then made on "
                               "test data, and its final figure is no longer an unbiased estimate"));
  }
  const double frac = evaluation_only ? 0.0 : data.get<double>("val_fraction", s.heldout ? 0.0 : 0.1);
  if (auto f = data.find("val_fraction"); f && s.heldout && frac > 0)
    f->fail("give val (a split in the file) or val_fraction (a part of train), not both");
  if (!(frac >= 0 && frac < 1)) data.at("val_fraction").fail(cat("val_fraction must be in [0, 1); got ", frac));
  const auto k = static_cast<int64_t>(frac * static_cast<double>(train->size()));
  if (frac > 0 && (k == 0 || k == train->size()) && data.has("val_fraction"))
    data.at("val_fraction").fail(cat("val_fraction ", frac, " of ", train->size(), " samples leaves a split empty"));
  if (frac > 0 && k == 0) {
    // The default tenth of fewer than 10 samples: no held-out set, said.
    s.warnings.push_back(cat(data.at("file").where(), ": ", train->size(),
                             " training samples are too few to hold a tenth out: no held-out set"));
  } else if (frac > 0) {
    const auto seed = data.get<uint64_t>("val_seed", 1);
    std::vector<int64_t> order(static_cast<size_t>(train->size()));
    std::iota(order.begin(), order.end(), 0);
    Rng rng(hash_combine(seed, 0x56414cULL));
    shuffle(order, rng);
    std::vector<int64_t> val(order.begin(), order.begin() + k), rest(order.begin() + k, order.end());
    std::sort(val.begin(), val.end());
    std::sort(rest.begin(), rest.end());
    s.heldout = std::make_unique<Subset>(train, std::move(val), cat("val: ", frac * 100, "% of ", train_split));
    s.train = std::make_unique<Subset>(train, std::move(rest), cat("train: the rest of ", train_split));
    s.heldout_name = "val";
  }
  if (!s.train)
    s.train = std::make_unique<Subset>(
        train,
        [&] {
          std::vector<int64_t> all(static_cast<size_t>(train->size()));
          std::iota(all.begin(), all.end(), 0);
          return all;
        }(),
        train_split);
  for (const Dataset* d : {s.heldout.get(), s.test.get()})
    if (d && (d->sample_shape() != train->sample_shape() || d->num_classes() != train->num_classes()))
      data.fail(cat(d->name(), " has samples ", d->sample_shape().str(), " and ", d->num_classes(), " classes, but ",
                    train->name(), " has ", train->sample_shape().str(), " and ", train->num_classes()));
  // data.classes: keep these classes, relabeled 0..k-1 (fine-tuning on a subset).
  if (auto c = data.find("classes")) {
    const auto classes = c->as<std::vector<int64_t>>();
    for (auto* split : {&s.train, &s.heldout, &s.test})
      if (*split)
        *split = fail_at(*c, [&] {
          return std::make_unique<ClassSubset>(std::shared_ptr<const Dataset>(std::move(*split)), classes);
        });
  }
  s.transform = read_transform(data, file, *train, uint8);
  return s;
}

}  // namespace

int64_t default_memory_mb(int node_ranks) {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const int64_t total_mb = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page >> 20 : 4096;
  return std::max<int64_t>(256, total_mb / 2 / std::max(1, node_ranks));
}

Splits open(const Config& data, bool evaluation_only, const Placement& where) {
  Splits s;
  if (static_cast<int>(data.has("spirals")) + data.has("synthetic") + data.has("file") > 1)
    data.fail("give one data source: file, spirals or synthetic");
  if (auto sp = data.find("spirals")) {
    s = open_spirals(*sp);
  } else if (auto sy = data.find("synthetic")) {
    s = open_synthetic(*sy);
  } else if (data.has("file")) {
    s = open_file(data, evaluation_only, where);
  } else {
    data.fail(
        "no data source: give 'file: <an HDF5 file>' (see hubel convert) or 'spirals: {...}' or 'synthetic: {...}' "
        "(generated sets)");
  }
  s.drop_last = data.get<bool>("drop_last", false);
  s.prefetch = data.get<int>("prefetch", 2);
  if (s.prefetch < 0 || s.prefetch > 16) data.at("prefetch").fail(cat("prefetch must be in [0, 16]; got ", s.prefetch));
  s.timeout = data.get<double>("timeout", s.timeout);
  if (!(s.timeout >= 0))
    data.at("timeout").fail(cat("timeout must be >= 0 seconds (0: wait for ever); got ", s.timeout));
  s.decode_threads = data.get<int>("decode_threads", 0);
  if (s.decode_threads != 0 && s.decode_threads != 1)
    data.at("decode_threads")
        .fail(cat("decode_threads is 0 (TBB's pool, shared with training) or 1 (the loader thread); got ",
                  s.decode_threads));
  data.finish();
  return s;
}

}  // namespace hubel::datasets
