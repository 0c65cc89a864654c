// HDF5 helpers: handles, errors with file and object path, typed reads and writes.
#include "framework/hdf5.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "framework/error.hpp"

namespace hubel::h5 {

std::recursive_mutex& lock() {
  static std::recursive_mutex m;
  static const bool quiet = [] {
    // Our errors say what went wrong; HDF5's stack dump on stderr would only confuse.
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)quiet;
  return m;
}

namespace {
using Guard = std::lock_guard<std::recursive_mutex>;
}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    if (id_ >= 0 && close_) close_(id_);
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

Handle::~Handle() {
  if (id_ >= 0 && close_) {
    Guard g(lock());
    close_(id_);
  }
}

std::string temporary_name(const std::string& path) { return cat(path, ".tmp.", ::getpid()); }

void durable_rename(const std::string& tmp, const std::string& path) {
  auto sync = [](const std::string& p, int flags) {
    const int fd = ::open(p.c_str(), flags);
    if (fd < 0) throw DataError(cat(p, ": cannot open to sync: ", std::strerror(errno)));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw DataError(cat(p, ": fsync failed: ", std::strerror(err)));
  };
  sync(tmp, O_RDONLY);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw DataError(cat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  sync(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY);
}

const char* write_hint(int err) {
  switch (err) {
    case EFBIG:
      return " (the file size limit: see ulimit -f)";
    case ENOSPC:
      return " (the disk is full)";
    case EDQUOT:
      return " (the disk quota is used up)";
    case EROFS:
      return " (a read-only file system)";
    case EACCES:
    case EPERM:
      return " (no permission to write there)";
    default:
      return "";
  }
}

namespace {

// Writes bytes to a new file at `path` and syncs it; DataError with the reason otherwise.
void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw DataError(cat(path, ": cannot create the file: ", std::strerror(err), write_hint(err)));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw DataError(cat(path, ": writing failed after ", done, " of ", bytes.size(), " bytes: ", std::strerror(err),
                          write_hint(err)));
    }
    done += static_cast<size_t>(n);
  }
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0) throw DataError(cat(path, ": fsync failed: ", std::strerror(err), write_hint(err)));
}
}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(File&)>& write) {
  // The file is built in memory (HDF5's core driver) and written with plain write()s: an
  // I/O error (a full disk, the file size limit) is then ours to report, and never leaves
  // HDF5 holding a half-closed file.
  const std::string tmp = temporary_name(path);
  std::vector<char> image;
  {
    File f = File::create_in_memory(tmp);
    write(f);
    f.flush();
    Guard g(lock());
    const ssize_t size = H5Fget_file_image(f.id(), nullptr, 0);
    if (size <= 0) throw DataError(cat(path, ": cannot serialize the HDF5 file"));
    image.resize(static_cast<size_t>(size));
    if (H5Fget_file_image(f.id(), image.data(), image.size()) != size)
      throw DataError(cat(path, ": cannot serialize the HDF5 file"));
  }
  try {
    write_bytes(tmp, image);
    durable_rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

void fail(const File& f, const std::string& object, const std::string& message) {
  throw DataError(cat(f.path(), object.empty() ? "" : ":", object, ": ", message));
}

File File::open_read(const std::string& path) {
  Guard g(lock());
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw DataError(cat(path, ": no such file"));
  if (std::filesystem::is_directory(path, ec)) throw DataError(cat(path, ": is a directory, not an HDF5 file"));
  const htri_t is = H5Fis_hdf5(path.c_str());
  if (is <= 0) throw DataError(cat(path, ": not an HDF5 file (or unreadable, or truncated)"));
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw DataError(cat(path, ": cannot open the HDF5 file (truncated or damaged?)"));
  return adopt(id, path);
}

File File::adopt(hid_t id, const std::string& path) {
  File f;
  f.h_ = Handle(id, H5Fclose);
  f.path_ = path;
  return f;
}

File File::open_write(const std::string& path) {
  Guard g(lock());
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (id < 0) throw DataError(cat(path, ": cannot open the HDF5 file for writing"));
  return adopt(id, path);
}

File File::create_in_memory(const std::string& name) {
  Guard g(lock());
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fapl_core(fapl, size_t{1} << 20, 0) < 0)
    throw DataError(cat(name, ": cannot set up an in-memory HDF5 file"));
  const hid_t id = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (id < 0) throw DataError(cat(name, ": cannot create an in-memory HDF5 file"));
  return adopt(id, name);
}

File File::create(const std::string& path) {
  Guard g(lock());
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0)
    throw DataError(cat(path, ": cannot create the HDF5 file (does the directory exist and is it writable?)"));
  return adopt(id, path);
}

void File::flush() {
  Guard g(lock());
  if (H5Fflush(h_.get(), H5F_SCOPE_GLOBAL) < 0) fail(*this, "", "flushing to disk failed");
}

void File::close() {
  Guard g(lock());
  h_ = Handle();
}

bool File::exists(const std::string& object) const {
  Guard g(lock());
  // Check each prefix: H5Lexists fails on a path whose parent is missing.
  size_t pos = 0;
  while (true) {
    pos = object.find('/', pos + 1);
    const std::string prefix = object.substr(0, pos);
    if (prefix.empty() || prefix == "/") {
      if (pos == std::string::npos) return true;
      continue;
    }
    if (H5Lexists(h_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

void File::create_group(const std::string& path) {
  Guard g(lock());
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Handle grp(H5Gcreate2(h_.get(), path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!grp.valid()) fail(*this, path, "cannot create the group");
}

Handle open_dataset(const File& f, const std::string& path, size_t cache_bytes) {
  Guard g(lock());
  if (!f.exists(path)) fail(f, path, "missing dataset");
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  if (cache_bytes) H5Pset_chunk_cache(dapl.get(), 12421, cache_bytes, 1.0);
  Handle d(H5Dopen2(f.id(), path.c_str(), dapl.get()), H5Dclose);
  if (!d.valid()) fail(f, path, "not a dataset, or unreadable");
  return d;
}

namespace {

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

Handle open_object(const File& f, const std::string& object) {
  if (object != "/" && !f.exists(object)) fail(f, object, "missing object");
  Handle o(H5Oopen(f.id(), object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!o.valid()) fail(f, object, "cannot open");
  return o;
}

Handle open_attribute(const File& f, const std::string& object, const std::string& name, bool& found) {
  Handle o = open_object(f, object);
  found = H5Aexists(o.get(), name.c_str()) > 0;
  if (!found) return {};
  Handle a(H5Aopen(o.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a.valid()) fail(f, object, cat("cannot open attribute '", name, "'"));
  return a;
}

void write_attr(File& f, const std::string& object, const std::string& name, hid_t type,
                const std::vector<hsize_t>& dims, const void* data) {
  Handle o = open_object(f, object);
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  Handle space(
      dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), type, data) < 0) fail(f, object, cat("cannot write attribute '", name, "'"));
}

Handle string_type() {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

std::vector<std::string> read_strings(const File& f, const std::string& object, const std::string& name, hid_t attr) {
  Handle ftype(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING) fail(f, object, cat("attribute '", name, "' is not a string"));
  Handle space(H5Aget_space(attr), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (1 << 20)) fail(f, object, cat("attribute '", name, "' has an unreasonable size"));
  std::vector<std::string> out;
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Handle mem = string_type();
    std::vector<char*> ptrs(static_cast<size_t>(n), nullptr);
    if (H5Aread(attr, mem.get(), ptrs.data()) < 0) fail(f, object, cat("cannot read attribute '", name, "'"));
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
  } else {
    const size_t len = H5Tget_size(ftype.get());
    if (len > (1 << 20)) fail(f, object, cat("attribute '", name, "' has an unreasonable size"));
    std::vector<char> buf(static_cast<size_t>(n) * len);
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), len);
    if (H5Aread(attr, mem.get(), buf.data()) < 0) fail(f, object, cat("cannot read attribute '", name, "'"));
    for (hssize_t i = 0; i < n; ++i) {
      const char* p = buf.data() + static_cast<size_t>(i) * len;
      out.emplace_back(p, strnlen(p, len));
    }
  }
  return out;
}

// The filters of a dataset's creation property list, in pipeline order.
std::vector<H5Z_filter_t> filters_of(hid_t dcpl) {
  std::vector<H5Z_filter_t> ids;
  for (int i = 0, k = H5Pget_nfilters(dcpl); i < k; ++i) {
    unsigned flags = 0, conf = 0;
    size_t nelem = 0;
    ids.push_back(H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &nelem, nullptr, 0, nullptr, &conf));
  }
  return ids;
}

}  // namespace

DatasetInfo dataset_info(const File& f, const std::string& path) {
  Guard g(lock());
  Handle d = open_dataset(f, path);
  Handle space(H5Dget_space(d.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) fail(f, path, "unreadable dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  DatasetInfo info;
  info.dims.assign(dims.begin(), dims.end());
  info.type_class = H5Tget_class(type.get());
  info.type_size = H5Tget_size(type.get());
  info.is_signed = info.type_class == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_2;
  return info;
}

void check_stored(const File& f, const std::string& path, const DatasetInfo& info) {
  Guard g(lock());
  Handle d = open_dataset(f, path);
  Handle dcpl(H5Dget_create_plist(d.get()), H5Pclose);
  double declared = static_cast<double>(info.type_size);
  for (auto v : info.dims) declared *= static_cast<double>(v);
  if (declared == 0) return;
  // Unreduced storage (no compression) must hold every declared byte; a compressed one
  // must have every chunk written (HDF5 would read the fill value for the rest).
  bool compressed = false;
  for (const H5Z_filter_t id : filters_of(dcpl.get()))
    if (id != H5Z_FILTER_FLETCHER32 && id != H5Z_FILTER_SHUFFLE) compressed = true;
  const double stored = static_cast<double>(H5Dget_storage_size(d.get()));
  if (!compressed) {
    if (stored < declared)
      fail(f, path,
           cat("declares ", static_cast<int64_t>(declared), " bytes but the file stores ", static_cast<int64_t>(stored),
               ": truncated or damaged"));
    return;
  }
  std::vector<hsize_t> chunk(info.dims.size());
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED ||
      H5Pget_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) != static_cast<int>(chunk.size()))
    fail(f, path, "a compressed dataset without a readable chunk layout");
  double expected = 1;
  for (size_t i = 0; i < chunk.size(); ++i) {
    if (chunk[i] == 0) fail(f, path, "a chunk dimension of zero");
    expected *= std::ceil(static_cast<double>(info.dims[i]) / static_cast<double>(chunk[i]));
  }
  hsize_t have = 0;
  Handle space(H5Dget_space(d.get()), H5Sclose);
  if (H5Dget_num_chunks(d.get(), space.get(), &have) < 0) have = stored > 0 && expected == 1 ? 1 : 0;
  if (static_cast<double>(have) < expected)
    fail(f, path,
         cat("declares ", static_cast<int64_t>(info.dims.empty() ? 0 : info.dims[0]), " rows but only ", have,
             " of its ", static_cast<int64_t>(expected), " chunks are stored: truncated or damaged"));
}

std::vector<std::string> dataset_names(const File& f, const std::string& group) {
  Guard g(lock());
  Handle grp(H5Gopen2(f.id(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!grp.valid()) fail(f, group, "not a group, or unreadable");
  // HDF5 calls this from its C frames: it must not throw (an exception there would leave
  // HDF5's global lock held). It records, and asks HDF5 to stop on trouble.
  struct Ctx {
    std::vector<std::string> names;
    bool failed = false;
  } ctx;
  const herr_t rc = H5Ovisit(
      grp.get(), H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* name, const H5O_info_t* info, void* data) noexcept -> herr_t {
        auto* c = static_cast<Ctx*>(data);
        try {
          if (info->type == H5O_TYPE_DATASET) c->names.emplace_back(name);
          if (c->names.size() > 1'000'000) {
            c->failed = true;
            return -1;
          }
        } catch (...) {
          c->failed = true;
          return -1;
        }
        return 0;
      },
      &ctx);
  if (rc < 0 || ctx.failed) fail(f, group, "cannot list the datasets (a damaged file?)");
  return std::move(ctx.names);
}

void create_dataset(File& f, const std::string& path, hid_t native_type, const std::vector<int64_t>& dims,
                    int64_t chunk_rows, int deflate, bool checksum) {
  Guard g(lock());
  const auto hd = to_hsize(dims);
  Handle space(H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr), H5Sclose);
  Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if ((chunk_rows > 0 || deflate > 0 || checksum) && !dims.empty() && dims[0] > 0) {
    std::vector<hsize_t> chunk = hd;
    chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>(chunk_rows > 0 ? chunk_rows : dims[0], 1, dims[0]));
    H5Pset_chunk(plist.get(), static_cast<int>(chunk.size()), chunk.data());
    if (checksum) H5Pset_fletcher32(plist.get());
    if (deflate > 0) {
      H5Pset_shuffle(plist.get());
      H5Pset_deflate(plist.get(), static_cast<unsigned>(deflate));
    }
  }
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);  // "/model/c1/w" creates /model and /model/c1
  Handle d(H5Dcreate2(f.id(), path.c_str(), native_type, space.get(), lcpl.get(), plist.get(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail(f, path, "cannot create the dataset");
}

void write_rows(File& f, const std::string& path, hid_t native_type, int64_t first, int64_t count, const void* data) {
  Guard g(lock());
  Handle d = open_dataset(f, path);
  Handle fspace(H5Dget_space(d.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(fspace.get());
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), start(static_cast<size_t>(rank), 0);
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  start[0] = static_cast<hsize_t>(first);
  dims[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr);
  Handle mspace(H5Screate_simple(rank, dims.data(), nullptr), H5Sclose);
  if (H5Dwrite(d.get(), native_type, mspace.get(), fspace.get(), H5P_DEFAULT, data) < 0)
    fail(f, path, "writing failed (disk full?)");
}

void write_dataset(File& f, const std::string& path, hid_t native_type, const std::vector<int64_t>& dims,
                   const void* data, bool checksum) {
  Guard g(lock());
  create_dataset(f, path, native_type, dims, 0, 0, checksum);
  Handle d = open_dataset(f, path);
  if (H5Dwrite(d.get(), native_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(f, path, "writing failed (disk full?)");
}

void read_dataset(const File& f, const std::string& path, hid_t native_type, void* data) {
  Guard g(lock());
  Handle d = open_dataset(f, path);
  if (H5Dread(d.get(), native_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(f, path, "reading failed (a damaged file, or a checksum mismatch)");
}

void read_run(const File& f, const Handle& d, const std::string& path, hid_t native_type, int64_t first, int64_t count,
              void* data, bool verify) {
  if (count <= 0) return;
  Guard g(lock());
  Handle fspace(H5Dget_space(d.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(fspace.get());
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), start(static_cast<size_t>(rank), 0);
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  if (first < 0 || first + count > static_cast<int64_t>(dims[0]))
    fail(f, path, cat("rows ", first, " to ", first + count - 1, " out of range (", dims[0], " rows)"));
  start[0] = static_cast<hsize_t>(first);
  dims[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr);
  Handle mspace(H5Screate_simple(rank, dims.data(), nullptr), H5Sclose);
  Handle dxpl(verify ? H5I_INVALID_HID : H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  if (!verify) H5Pset_edc_check(dxpl.get(), H5Z_DISABLE_EDC);
  if (H5Dread(d.get(), native_type, mspace.get(), fspace.get(), verify ? H5P_DEFAULT : dxpl.get(), data) < 0)
    fail(f, path, "reading failed (a damaged file, or a checksum mismatch)");
}

int64_t chunk_rows(const Handle& d) {
  Guard g(lock());
  Handle dcpl(H5Dget_create_plist(d.get()), H5Pclose);
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) return 0;
  hsize_t chunk[32];
  const int rank = H5Pget_chunk(dcpl.get(), 32, chunk);
  return rank > 0 ? static_cast<int64_t>(chunk[0]) : 0;
}

RowLayout row_layout(const File& f, const Handle& d, const std::string& path, hid_t native_type, int64_t file_bytes) {
  Guard g(lock());
  Handle type(H5Dget_type(d.get()), H5Tclose);
  if (H5Tequal(type.get(), native_type) <= 0)
    fail(f, path, "is stored in another byte order or type than it is read as: it cannot be read in place");
  Handle fspace(H5Dget_space(d.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(fspace.get());
  if (rank < 1 || rank > 8) fail(f, path, "unreadable dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  const int64_t n = static_cast<int64_t>(dims[0]);
  int64_t row_bytes = static_cast<int64_t>(H5Tget_size(native_type));
  for (int i = 1; i < rank; ++i) row_bytes *= static_cast<int64_t>(dims[static_cast<size_t>(i)]);
  Handle dcpl(H5Dget_create_plist(d.get()), H5Pclose);
  RowLayout out;
  auto inside = [&](haddr_t addr, int64_t bytes, const std::string& what) {
    if (addr == HADDR_UNDEF) fail(f, path, cat(what, " is not written: truncated or damaged"));
    if (static_cast<int64_t>(addr) < 0 || static_cast<int64_t>(addr) + bytes > file_bytes)
      fail(f, path, cat(what, " lies past the end of the file (", file_bytes, " bytes): truncated or damaged"));
    out.offsets.push_back(static_cast<int64_t>(addr));
  };
  if (n == 0) return out;
  if (H5Pget_layout(dcpl.get()) == H5D_CONTIGUOUS) {
    out.rows_per_chunk = n;
    inside(H5Dget_offset(d.get()), n * row_bytes, "the data");
    return out;
  }
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) fail(f, path, "is neither chunked nor contiguous");
  std::vector<hsize_t> chunk(static_cast<size_t>(rank));
  if (H5Pget_chunk(dcpl.get(), rank, chunk.data()) != rank) fail(f, path, "an unreadable chunk layout");
  for (int i = 1; i < rank; ++i)
    if (chunk[static_cast<size_t>(i)] != dims[static_cast<size_t>(i)])
      fail(f, path, "has chunks that cut samples apart (a chunk must hold whole rows to be read in place)");
  bool checksum = false;
  std::string other;  // the filters that transform the bytes, by name
  for (const H5Z_filter_t id : filters_of(dcpl.get())) {
    if (id == H5Z_FILTER_FLETCHER32)
      checksum = true;
    else
      other += cat(other.empty() ? "" : " and ", id == H5Z_FILTER_DEFLATE   ? std::string("compressed (deflate)")
                                                 : id == H5Z_FILTER_SHUFFLE ? std::string("byte-shuffled")
                                                                            : cat("through HDF5 filter ", id));
  }
  if (!other.empty()) fail(f, path, cat("is stored ", other, ": its rows cannot be read in place"));
  out.rows_per_chunk = static_cast<int64_t>(chunk[0]);
  out.checksum = checksum;
  const int64_t chunk_bytes = out.rows_per_chunk * row_bytes;
  std::vector<hsize_t> at(static_cast<size_t>(rank), 0);
  for (int64_t first = 0; first < n; first += out.rows_per_chunk) {
    at[0] = static_cast<hsize_t>(first);
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(d.get(), at.data(), &mask, &addr, &size) < 0) addr = HADDR_UNDEF;
    const std::string what = cat("the chunk of rows from ", first);
    if (addr != HADDR_UNDEF && static_cast<int64_t>(size) != chunk_bytes + (checksum && mask == 0 ? 4 : 0))
      fail(f, path, cat(what, " stores ", size, " bytes, not the ", chunk_bytes, " of its rows: damaged"));
    inside(addr, chunk_bytes, what);
  }
  return out;
}

void read_rows(const File& f, const Handle& d, const std::string& path, hid_t native_type, const int64_t* rows,
               int64_t count, void* data, bool verify) {
  if (count <= 0) return;
  Guard g(lock());
  Handle fspace(H5Dget_space(d.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(fspace.get());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  // One read per contiguous run of rows. (A single selection made as the union of the runs
  // is what HDF5 offers for this, but building it costs milliseconds for 64 scattered rows
  // in HDF5 1.10; a read of one run costs microseconds.)
  auto* out = static_cast<char*>(data);
  const size_t row_bytes = [&] {
    size_t b = H5Tget_size(native_type);
    for (int i = 1; i < rank; ++i) b *= dims[static_cast<size_t>(i)];
    return b;
  }();
  int64_t done = 0;
  for (int64_t i = 0; i < count;) {
    int64_t j = i + 1;
    while (j < count && rows[j] == rows[j - 1] + 1) ++j;
    if (rows[i] < 0 || rows[j - 1] >= static_cast<int64_t>(dims[0]))
      fail(f, path, cat("row ", rows[i], " out of range"));
    read_run(f, d, path, native_type, rows[i], j - i, out + done * row_bytes, verify);
    done += j - i;
    i = j;
  }
}

void write_attribute(File& f, const std::string& object, const std::string& name, const std::string& value) {
  Guard g(lock());
  Handle t = string_type();
  const char* p = value.c_str();
  write_attr(f, object, name, t.get(), {}, &p);
}

void write_attribute(File& f, const std::string& object, const std::string& name,
                     const std::vector<std::string>& value) {
  Guard g(lock());
  Handle t = string_type();
  std::vector<const char*> ptrs;
  for (const auto& s : value) ptrs.push_back(s.c_str());
  write_attr(f, object, name, t.get(), {static_cast<hsize_t>(value.size())}, ptrs.data());
}

void write_attribute(File& f, const std::string& object, const std::string& name, const std::vector<double>& value) {
  Guard g(lock());
  write_attr(f, object, name, H5T_NATIVE_DOUBLE, {static_cast<hsize_t>(value.size())}, value.data());
}

void write_attribute(File& f, const std::string& object, const std::string& name, int64_t value) {
  Guard g(lock());
  write_attr(f, object, name, H5T_NATIVE_INT64, {}, &value);
}

std::optional<std::string> read_string_attribute(const File& f, const std::string& object, const std::string& name) {
  auto v = read_strings_attribute(f, object, name);
  if (!v) return std::nullopt;
  if (v->size() != 1) fail(f, object, cat("attribute '", name, "' should be one string; it has ", v->size()));
  return (*v)[0];
}

std::optional<std::vector<std::string>> read_strings_attribute(const File& f, const std::string& object,
                                                               const std::string& name) {
  Guard g(lock());
  bool found = false;
  Handle a = open_attribute(f, object, name, found);
  if (!found) return std::nullopt;
  return read_strings(f, object, name, a.get());
}

std::optional<std::vector<double>> read_doubles_attribute(const File& f, const std::string& object,
                                                          const std::string& name) {
  Guard g(lock());
  bool found = false;
  Handle a = open_attribute(f, object, name, found);
  if (!found) return std::nullopt;
  Handle type(H5Aget_type(a.get()), H5Tclose);
  const auto cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) fail(f, object, cat("attribute '", name, "' is not numeric"));
  Handle space(H5Aget_space(a.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (1 << 24)) fail(f, object, cat("attribute '", name, "' has an unreasonable size"));
  std::vector<double> v(static_cast<size_t>(n));
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()) < 0) fail(f, object, cat("cannot read attribute '", name, "'"));
  return v;
}

std::optional<int64_t> read_int_attribute(const File& f, const std::string& object, const std::string& name) {
  auto v = read_doubles_attribute(f, object, name);
  if (!v) return std::nullopt;
  if (v->size() != 1) fail(f, object, cat("attribute '", name, "' should be one number"));
  return static_cast<int64_t>((*v)[0]);
}

}  // namespace hubel::h5
