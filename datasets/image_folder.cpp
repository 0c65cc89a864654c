// Image folders to HDF5.
#include "datasets/image_folder.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "datasets/convert.hpp"
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
