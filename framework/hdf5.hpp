// Small RAII helpers over the HDF5 C API, shared by datasets and checkpoints: handles
// that close themselves, errors that name the file and the object path (HDF5's own
// error stack printing is switched off), and typed reads and writes of datasets and
// attributes. The Debian libhdf5 is not built thread-safe, so every call made through
// these helpers holds one process-wide lock.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace hubel::h5 {

// The lock every HDF5 call in hubel holds.
std::recursive_mutex& lock();

// An owned hid_t, closed with the function that matches its kind.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

class File {
 public:
  // Opens for reading; a missing, unreadable or non-HDF5 file is a DataError naming it.
  static File open_read(const std::string& path);
  // Creates (truncating) for writing.
  static File create(const std::string& path);
  // An existing file, for reading and writing (tests and tools).
  static File open_write(const std::string& path);
  // A file in memory only (HDF5's core driver, no backing store): see write_file_atomically.
  static File create_in_memory(const std::string& name);
  const std::string& path() const { return path_; }
  hid_t id() const { return h_.get(); }
  // Flushes HDF5's buffers to the operating system.
  void flush();
  void close();

  bool exists(const std::string& object) const;  // a group or dataset at this path
  void create_group(const std::string& path);

 private:
  static File adopt(hid_t id, const std::string& path);  // an open file id, closed with the File
  Handle h_;
  std::string path_;
};

// A temporary name next to `path` for writing it atomically: "<path>.tmp.<pid>".
std::string temporary_name(const std::string& path);
// fsync of the file, rename over `path`, fsync of the directory: after it returns, the
// new file is in place and durable; before, the old one (if any) is intact.
void durable_rename(const std::string& tmp, const std::string& path);
// What the errno of a failed write most likely means for the user (" (the disk is full)"),
// or "".
const char* write_hint(int err);

// Creates `path` atomically: write() fills an HDF5 file built in memory, whose bytes then go
// to a temporary name next to `path`, are synced and renamed into place; on any error
// (DataError naming the reason: a full disk, the file size limit, permissions) the
// temporary file is removed and whatever was at `path` is untouched.
class File;
void write_file_atomically(const std::string& path, const std::function<void(File&)>& write);

// "file.h5:/train/images: <message>"
[[noreturn]] void fail(const File& f, const std::string& object, const std::string& message);

// Dataset metadata.
struct DatasetInfo {
  std::vector<int64_t> dims;
  H5T_class_t type_class = H5T_NO_CLASS;
  size_t type_size = 0;
  bool is_signed = false;
};
DatasetInfo dataset_info(const File& f, const std::string& path);
// Fails (DataError naming the dataset) unless the file really stores what the dataset
// declares: every chunk of a chunked dataset written, the whole extent of a contiguous
// one. Call it before allocating for a read: a tiny file may declare a huge shape.
void check_stored(const File& f, const std::string& path, const DatasetInfo& info);
// The datasets under a group, as paths relative to it ("c1/w"), in name order.
std::vector<std::string> dataset_names(const File& f, const std::string& group);

// Creates a dataset of the given native type and dims, chunked along the first dimension
// with chunk_rows rows (0: contiguous), optionally deflate-compressed (level 1-9) and with
// the Fletcher-32 checksum filter.
void create_dataset(File& f, const std::string& path, hid_t native_type, const std::vector<int64_t>& dims,
                    int64_t chunk_rows = 0, int deflate = 0, bool checksum = false);
// Writes rows [first, first + count) of a dataset created above from `data`.
void write_rows(File& f, const std::string& path, hid_t native_type, int64_t first, int64_t count, const void* data);
// Writes a whole dataset in one call (creates it).
void write_dataset(File& f, const std::string& path, hid_t native_type, const std::vector<int64_t>& dims,
                   const void* data, bool checksum = false);
// Reads a whole dataset converted to native_type into data (sized by the caller).
void read_dataset(const File& f, const std::string& path, hid_t native_type, void* data);
// Opens a dataset to keep (for repeated reads), with a chunk cache of cache_bytes.
Handle open_dataset(const File& f, const std::string& path, size_t cache_bytes = 0);
// Rows per chunk along the first dimension of an open dataset; 0 when it is not chunked.
int64_t chunk_rows(const Handle& dataset);
// Where a dataset's rows lie in the file, for reading them without HDF5 (pread): the byte
// offset of each chunk along the first dimension, rows_per_chunk rows each (a contiguous
// dataset: one offset, rows_per_chunk = its rows). Only for datasets stored as they are:
// chunks span whole rows and no filter but Fletcher-32 (whose checksum trails a chunk's
// bytes), the stored type is native_type, every chunk is written and inside the file.
// Otherwise a DataError naming the dataset says what stands in the way.
struct RowLayout {
  int64_t rows_per_chunk = 0;
  std::vector<int64_t> offsets;
  bool checksum = false;  // the chunks carry Fletcher-32 (read_run verifies it)
};
RowLayout row_layout(const File& f, const Handle& dataset, const std::string& path, hid_t native_type,
                     int64_t file_bytes);
// Reads rows [first, first + count) of an open dataset (a run of bytes of a 1-D one).
// verify false: skip the chunks' checksums (Fletcher-32; for chunks already verified).
void read_run(const File& f, const Handle& dataset, const std::string& path, hid_t native_type, int64_t first,
              int64_t count, void* data, bool verify = true);
// Reads the rows listed (ascending, distinct) of an open dataset into consecutive rows of
// data, with one hyperslab selection (the union of the contiguous runs) and one read call.
void read_rows(const File& f, const Handle& dataset, const std::string& path, hid_t native_type, const int64_t* rows,
               int64_t count, void* data, bool verify = true);

// Attributes on an object (a group, a dataset, or "/").
void write_attribute(File& f, const std::string& object, const std::string& name, const std::string& value);
void write_attribute(File& f, const std::string& object, const std::string& name,
                     const std::vector<std::string>& value);
void write_attribute(File& f, const std::string& object, const std::string& name, const std::vector<double>& value);
void write_attribute(File& f, const std::string& object, const std::string& name, int64_t value);
std::optional<std::string> read_string_attribute(const File& f, const std::string& object, const std::string& name);
std::optional<std::vector<std::string>> read_strings_attribute(const File& f, const std::string& object,
                                                               const std::string& name);
std::optional<std::vector<double>> read_doubles_attribute(const File& f, const std::string& object,
                                                          const std::string& name);
std::optional<int64_t> read_int_attribute(const File& f, const std::string& object, const std::string& name);

}  // namespace hubel::h5
