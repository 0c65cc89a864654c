// Image folders to HDF5.
#include "datasets/image_folder.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "datasets/convert.hpp"
#include "datasets/encoded_images.hpp"
#include "datasets/images.hpp"
#include "framework/error.hpp"

namespace hubel::datasets {

namespace fs = std::filesystem;

namespace {

bool image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw DataError(cat(p.string(), ": cannot open"));
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw DataError(cat(p.string(), ": read error"));
  return b;
}

std::vector<std::string> subfolders(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string()[0] != '.') out.push_back(e.path().filename().string());
  if (ec) throw DataError(cat(dir.string(), ": cannot list (", ec.message(), ")"));
  std::sort(out.begin(), out.end());
  return out;
}

struct File {
  fs::path path;
  int32_t label = 0;
  std::string error;  // why it cannot be used ("" if it can)
  ImageHeader header;
};

struct SplitFiles {
  std::string name;
  std::vector<File> files;
};

std::vector<uint8_t> read_file_sized(const fs::path& p, int64_t expect) {
  auto b = read_file(p);
  if (static_cast<int64_t>(b.size()) != expect)
    throw DataError(cat(p.string(), ": ", b.size(), " bytes now, ", expect,
                        " when it was checked: the file changed during the conversion (nothing was written)"));
  return b;
}

// --encoded: every file decoded once (in parallel) to find bad ones and the statistics,
// then its bytes copied into the file a block at a time.
ImageFolderResult write_encoded(const std::string& dir, const std::string& out, const ImageFolderOptions& o,
                                std::vector<SplitFiles>& splits, const std::vector<std::string>& classes, int channels,
                                ImageFolderResult result, int64_t total) {
  struct Decoded {
    int64_t bytes = 0, height = 0, width = 0;
    std::vector<double> sum, sq;  // per channel
  };
  std::vector<std::vector<Decoded>> info(splits.size());
  int64_t done = 0;
  for (size_t k = 0; k < splits.size(); ++k) {
    auto& s = splits[k];
    info[k].resize(s.files.size());
    constexpr size_t kBlock = 512;
    for (size_t b0 = 0; b0 < s.files.size(); b0 += kBlock) {
      const size_t b1 = std::min(s.files.size(), b0 + kBlock);
      tbb::parallel_for(b0, b1, [&](size_t i) {
        File& f = s.files[i];
        if (!f.error.empty()) return;
        try {
          const auto bytes = read_file(f.path);
          const Image8 im = decode_image(bytes, f.path.string(), channels);
          Decoded& d = info[k][i];
          d.bytes = static_cast<int64_t>(bytes.size()), d.height = im.height, d.width = im.width;
          d.sum.assign(static_cast<size_t>(channels), 0.0);
          d.sq.assign(static_cast<size_t>(channels), 0.0);
          const int64_t plane = im.height * im.width;
          for (int c = 0; c < channels; ++c)
            for (int64_t q = c * plane; q < (c + 1) * plane; ++q) {
              const double v = im.pixels[static_cast<size_t>(q)];
              d.sum[static_cast<size_t>(c)] += v, d.sq[static_cast<size_t>(c)] += v * v;
            }
        } catch (const DataError& e) {
          f.error = e.what();
        }
      });
      done += static_cast<int64_t>(b1 - b0);
      if (o.progress) o.progress(done, total);
    }
  }
  std::vector<const File*> bad;
  for (const auto& s : splits)
    for (const auto& f : s.files)
      if (!f.error.empty()) bad.push_back(&f);
  if (!bad.empty() && !o.skip_bad)
    throw DataError(cat(bad[0]->error, " (", bad.size(),
                        " bad file(s) found decoding); nothing was written: remove them, or --skip-bad to convert "
                        "the rest"));
  for (const File* f : bad) result.skipped.push_back(f->error);
  EncodedContents c;
  c.classes = classes;
  c.source = cat("image folders in ", fs::absolute(fs::path(dir)).string(), " (the files as they are)");
  c.channels = channels;
  c.size = {o.height, o.width};
  std::vector<double> sum(static_cast<size_t>(channels), 0.0), sq(sum);
  double pixels = 0;
  std::vector<std::vector<std::pair<fs::path, int64_t>>> kept(splits.size());
  int64_t encoded_bytes = 0, decoded_bytes = 0;
  for (size_t k = 0; k < splits.size(); ++k) {
    EncodedContents::Split sp;
    sp.name = splits[k].name;
    sp.offsets.push_back(0);
    for (size_t i = 0; i < splits[k].files.size(); ++i) {
      const File& f = splits[k].files[i];
      if (!f.error.empty()) continue;
      const Decoded& d = info[k][i];
      sp.offsets.push_back(sp.offsets.back() + d.bytes);
      sp.shapes.insert(sp.shapes.end(), {channels, static_cast<int32_t>(d.height), static_cast<int32_t>(d.width)});
      sp.labels.push_back(f.label);
      kept[k].emplace_back(f.path, d.bytes);
      encoded_bytes += d.bytes, decoded_bytes += channels * d.height * d.width;
      if (k == 0)  // statistics over the train split, in file order (deterministic)
        for (int c = 0; c < channels; ++c)
          sum[static_cast<size_t>(c)] += d.sum[static_cast<size_t>(c)],
              sq[static_cast<size_t>(c)] += d.sq[static_cast<size_t>(c)];
      if (k == 0) pixels += static_cast<double>(d.height * d.width);
    }
    if (sp.size() == 0) throw DataError(cat(dir, ": no readable image left in the ", sp.name, " split"));
    c.splits.push_back(std::move(sp));
  }
  // Each split's bytes, read back from its files (checked against the sizes seen).
  for (size_t k = 0; k < c.splits.size(); ++k)
    c.splits[k].bytes = [&files = kept[k], &offsets = c.splits[k].offsets](int64_t first, int64_t last, uint8_t* to) {
      tbb::parallel_for(first, last, [&](int64_t i) {
        const auto b = read_file_sized(files[static_cast<size_t>(i)].first, files[static_cast<size_t>(i)].second);
        std::copy(b.begin(), b.end(), to + (offsets[static_cast<size_t>(i)] - offsets[static_cast<size_t>(first)]));
      });
    };
  for (int ch = 0; ch < channels; ++ch) {
    const double m = sum[static_cast<size_t>(ch)] / pixels;
    c.mean.push_back(m);
    c.stddev.push_back(std::sqrt(std::max(0.0, sq[static_cast<size_t>(ch)] / pixels - m * m)));
  }
  write_encoded_dataset_file(out, c, o.write);
  result.summary = out + ":";
  for (const auto& sp : c.splits) result.summary += cat(" ", sp.name, " ", sp.size(), ";");
  result.summary += cat(" ", classes.size(), " classes; ", channels,
                        " channel(s), stored encoded: ", cat(static_cast<double>(encoded_bytes) / 1e6),
                        " MB of files for ", cat(static_cast<double>(decoded_bytes) / 1e6), " MB of decoded pixels");
  if (o.height > 0) result.summary += cat("; samples ", o.height, "x", o.width, " (data.size overrides)");
  return result;
}

}  // namespace

ImageFolderResult convert_image_folder(const std::string& dir, const std::string& out, const ImageFolderOptions& o) {
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw DataError(cat(dir, ": not a directory (give the folder of class folders)"));
  if (o.channels != 0 && o.channels != 1 && o.channels != 3) throw ConfigError("--channels must be 1 or 3");
  if ((o.height > 0) != (o.width > 0) || o.height < 0 || o.width < 0 || o.height > 16384 || o.width > 16384)
    throw ConfigError(cat("--size must be two sizes H,W in [1, 16384]; got ", o.height, ",", o.width));
  // The splits and their class folders.
  std::vector<std::pair<std::string, fs::path>> split_dirs;
  if (o.split_dir) {
    for (const char* s : {"train", "val", "test"})
      if (fs::is_directory(root / s, ec)) split_dirs.emplace_back(s, root / s);
    if (split_dirs.empty() || split_dirs[0].first != "train")
      throw DataError(
          cat(dir, ": --split-dir needs ", (root / "train").string(), "/<class>/ (and optionally val/, test/)"));
  } else {
    split_dirs.emplace_back("train", root);
  }
  std::vector<std::string> classes;
  if (!o.classes.empty()) {
    classes = class_names(o.classes, 0);
  } else {
    classes = subfolders(split_dirs[0].second);
  }
  if (classes.size() < 2)
    throw DataError(cat(split_dirs[0].second.string(), ": ", classes.size(),
                        " class folder(s); a classification set needs one subfolder per class, at least two"));
  const std::set<std::string> known(classes.begin(), classes.end());
  std::vector<SplitFiles> splits;
  ImageFolderResult result;
  for (const auto& [name, path] : split_dirs) {
    SplitFiles s{name, {}};
    for (const auto& sub : subfolders(path))
      if (!known.count(sub) && o.classes.empty())
        throw DataError(cat((path / sub).string(), ": a class folder that ", split_dirs[0].second.string(),
                            " does not have (the splits must share their classes)"));
    for (size_t k = 0; k < classes.size(); ++k) {
      const fs::path cdir = path / classes[k];
      if (!fs::is_directory(cdir, ec)) {
        if (name == "train") throw DataError(cat(cdir.string(), ": no such class folder"));
        continue;
      }
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(cdir, ec)) {
        if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
        if (image_extension(e.path()))
          files.push_back(e.path());
        else
          ++result.ignored;
      }
      std::sort(files.begin(), files.end());
      for (auto& f : files) s.files.push_back({f, static_cast<int32_t>(k), "", {}});
    }
    if (s.files.empty()) throw DataError(cat(path.string(), ": no PNG or JPEG files in its class folders"));
    splits.push_back(std::move(s));
  }
  int64_t total = 0;
  for (const auto& s : splits) total += static_cast<int64_t>(s.files.size());
  // Pass 1: every header (in parallel), so that bad files are found and the channels and
  // size known before the pixels are allocated.
  for (auto& s : splits)
    tbb::parallel_for(size_t{0}, s.files.size(), [&](size_t i) {
      File& f = s.files[i];
      try {
        f.header = read_image_header(read_file(f.path), f.path.string());
      } catch (const DataError& e) {
        f.error = e.what();
      }
    });
  auto drop_bad = [&](SplitFiles& s) {
    for (const auto& f : s.files)
      if (!f.error.empty()) result.skipped.push_back(f.error);
    std::erase_if(s.files, [](const File& f) { return !f.error.empty(); });
  };
  auto stop_or_skip = [&](const char* when) {
    std::vector<const File*> bad;
    for (const auto& s : splits)
      for (const auto& f : s.files)
        if (!f.error.empty()) bad.push_back(&f);
    if (bad.empty()) return;
    if (!o.skip_bad)
      throw DataError(cat(bad[0]->error, " (", bad.size(), " bad file(s) found ", when,
                          "); nothing was written: remove them, or --skip-bad to convert the rest"));
    for (auto& s : splits) drop_bad(s);
  };
  stop_or_skip("reading the headers");
  int channels = o.channels;
  if (channels == 0) {
    channels = 1;
    for (const auto& s : splits)
      for (const auto& f : s.files)
        if (f.header.channels >= 3) channels = 3;
  }
  if (o.encoded) return write_encoded(dir, out, o, splits, classes, channels, std::move(result), total);
  int64_t height = o.height, width = o.width;
  if (height == 0) {
    const File& first = splits[0].files.at(0);
    height = first.header.height, width = first.header.width;
    for (const auto& s : splits)
      for (const auto& f : s.files)
        if (f.header.height != height || f.header.width != width)
          throw DataError(cat(f.path.string(), ": ", f.header.width, "x", f.header.height, " pixels, but ",
                              first.path.string(), " has ", width, "x", height,
                              "; give --size H,W to resize them all (with --resize shorter or exact)"));
  }
  // Pass 2: decode, resize and place each image (in parallel, in blocks for progress).
  DatasetContents c;
  const Shape sample{channels, height, width};
  const auto per = static_cast<size_t>(sample.numel());
  int64_t done = 0;
  for (auto& s : splits) {
    DatasetContents::Split out_split{s.name, sample, std::vector<uint8_t>(s.files.size() * per), {}};
    constexpr size_t kBlock = 512;
    for (size_t b0 = 0; b0 < s.files.size(); b0 += kBlock) {
      const size_t b1 = std::min(s.files.size(), b0 + kBlock);
      tbb::parallel_for(b0, b1, [&](size_t i) {
        File& f = s.files[i];
        try {
          Image8 im = decode_image(read_file(f.path), f.path.string(), channels);
          if (im.height != height || im.width != width) im = fit_image(im, height, width, o.shorter);
          std::copy(im.pixels.begin(), im.pixels.end(),
                    out_split.images.begin() + static_cast<std::ptrdiff_t>(i * per));
        } catch (const DataError& e) {
          f.error = e.what();
        }
      });
      done += static_cast<int64_t>(b1 - b0);
      if (o.progress) o.progress(done, total);
    }
    // Files that only decoding found bad: stop, or leave them out (moving the rest down).
    size_t kept = 0;
    for (size_t i = 0; i < s.files.size(); ++i) {
      if (!s.files[i].error.empty()) continue;
      if (kept != i)
        std::copy_n(out_split.images.begin() + static_cast<std::ptrdiff_t>(i * per), per,
                    out_split.images.begin() + static_cast<std::ptrdiff_t>(kept * per));
      out_split.labels.push_back(s.files[i].label);
      ++kept;
    }
    out_split.images.resize(kept * per);
    c.splits.push_back(std::move(out_split));
  }
  stop_or_skip("decoding");
  for (const auto& sp : c.splits)
    if (sp.size() == 0) throw DataError(cat(dir, ": no readable image left in the ", sp.name, " split"));
  c.classes = classes;
  c.source = cat("image folders in ", fs::absolute(root).string());
  write_dataset_file(out, c, o.write);
  result.summary = out + ":";
  for (const auto& sp : c.splits) result.summary += cat(" ", sp.name, " ", sp.size(), " x ", sample.str(), ";");
  result.summary += cat(" ", classes.size(), " classes");
  return result;
}

}  // namespace hubel::datasets
