// The training split's stores: partitioned (each rank a part, rows exchanged per
// minibatch) against resident, batch for batch, on 1 to 4 ranks run as threads with an
// in-process exchange; a loader stopped mid-epoch; the shuffle-buffer stream's draws; and
// data.store's choice and errors.
#include <gtest/gtest.h>

#include <barrier>
#include <filesystem>
#include <fstream>
#include <future>
#include <numeric>
#include <set>
#include <thread>

#include "datasets/hdf5_dataset.hpp"
#include "datasets/loader.hpp"
#include "datasets/open.hpp"
#include "datasets/stream.hpp"
#include "datasets/subset.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "tests/expect_error.hpp"
#include "tests/temp_dir.hpp"

namespace hubel::datasets {

namespace {

using test::error_of;

// n samples of [1, 2, 3]: sample i's bytes are (i * 7 + j) mod 251, its label i mod 5.
std::string write_set(const test::TempDir& dir, int64_t n, int64_t chunk_rows = 8, const std::string& name = "set.h5",
                      bool checksum = true, int deflate = 0) {
  DatasetContents c;
  c.classes = {"a", "b", "c", "d", "e"};
  DatasetContents::Split s{"train", Shape{1, 2, 3}, {}, {}};
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < 6; ++j) s.images.push_back(static_cast<uint8_t>((i * 7 + j) % 251));
    s.labels.push_back(static_cast<int32_t>(i % 5));
  }
  c.splits.push_back(s);
  const std::string path = dir / name;
  WriteOptions o;
  o.chunk_rows = chunk_rows;
  o.checksum = checksum;
  o.deflate = deflate;
  write_dataset_file(path, c, o);
  return path;
}

// The W ranks of a test, as threads: alltoallv through shared memory.
class Group {
 public:
  explicit Group(int world)
      : world_(world), sync_(world), send_(static_cast<size_t>(world)), rows_(static_cast<size_t>(world)) {}
  void alltoallv(int rank, const uint8_t* send, const int64_t* send_rows, uint8_t* recv, const int64_t* recv_rows,
                 int64_t row_bytes) {
    send_[static_cast<size_t>(rank)] = send;
    rows_[static_cast<size_t>(rank)] = send_rows;
    sync_.arrive_and_wait();
    int64_t at = 0;
    for (int s = 0; s < world_; ++s) {
      // Rank s's section for this rank starts after its sections for ranks before.
      int64_t off = 0;
      for (int d = 0; d < rank; ++d) off += rows_[static_cast<size_t>(s)][d];
      EXPECT_EQ(rows_[static_cast<size_t>(s)][rank], recv_rows[s]) << "rank " << rank << " from " << s;
      std::copy(send_[static_cast<size_t>(s)] + off * row_bytes,
                send_[static_cast<size_t>(s)] + (off + recv_rows[s]) * row_bytes, recv + at * row_bytes);
      at += recv_rows[s];
    }
    ++exchanges_[rank];
    sync_.arrive_and_wait();
  }
  int64_t exchanges(int rank) const { return exchanges_[rank]; }

 private:
  int world_;
  std::barrier<> sync_;
  std::vector<const uint8_t*> send_;
  std::vector<const int64_t*> rows_;
  int64_t exchanges_[8] = {};
};

class ThreadComm final : public comm::Communicator {
 public:
  ThreadComm(Group& g, int rank, int world) : g_(g), rank_(rank), world_(world) {}
  struct Ex final : comm::Exchanger {
    Ex(Group& g, int rank) : g(g), rank(rank) {}
    void alltoallv(const uint8_t* send, const int64_t* send_rows, uint8_t* recv, const int64_t* recv_rows,
                   int64_t row_bytes) override {
      g.alltoallv(rank, send, send_rows, recv, recv_rows, row_bytes);
    }
    Group& g;
    int rank;
  };
  std::unique_ptr<comm::Exchanger> exchanger(bool) override { return std::make_unique<Ex>(g_, rank_); }
  int rank() const override { return rank_; }
  int size() const override { return world_; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<double>, int) override {}
  void barrier() override {}
  Request start_allreduce_sum(std::span<float>) override { return 0; }
  bool test(Request) override { return true; }
  std::unique_ptr<GradientExchange> gradient_exchange(int64_t, int64_t) override { return nullptr; }

 private:
  Group& g_;
  int rank_, world_;
};

struct Seen {
  std::vector<float> x;
  std::vector<int32_t> labels;
  std::vector<int64_t> rows;
};

// Every batch of `epochs` epochs (from batch `from` of the first) one rank sees.
Seen run(Loader& l, int64_t epochs, int64_t from = 0) {
  Seen s;
  for (int64_t e = 0; e < epochs; ++e) {
    l.start(e, e == 0 ? from : 0);
    Batch b;
    while (l.next(b)) {
      s.x.insert(s.x.end(), b.x.data(), b.x.data() + b.x.numel());
      s.labels.insert(s.labels.end(), b.labels, b.labels + b.rows);
      s.rows.push_back(b.rows);
    }
  }
  return s;
}

// Runs f(rank) on `world` threads and returns their results.
template <class F>
auto on_ranks(int world, F&& f) {
  std::vector<std::future<decltype(f(0))>> futures;
  for (int r = 0; r < world; ++r) futures.push_back(std::async(std::launch::async, f, r));
  std::vector<decltype(f(0))> out;
  for (auto& fu : futures) {
    EXPECT_EQ(fu.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "a rank hangs";
    out.push_back(fu.get());
  }
  return out;
}

}  // namespace

TEST(Partitioned, SameBatchesAsResidentOnOneToFourRanks) {
  test::TempDir dir;
  const std::string path = write_set(dir, 103);
  for (int world = 1; world <= 4; ++world)
    for (int prefetch : {0, 2})
      for (int64_t per_rank : {int64_t{0}, int64_t{3}}) {  // an even split, and an exact run's places
        Group g(world);
        const auto seen = on_ranks(world, [&](int rank) {
          Hdf5Dataset resident(path, "train"), parted(path, "train", 0, {rank, world});
          EXPECT_TRUE(parted.collective());
          ThreadComm comm(g, rank, world);
          LoaderOptions o{12, rank, world, true, false, false, 7, prefetch};
          o.rows_per_rank = per_rank;
          Loader want(resident, nullptr, o);
          o.comm = &comm;
          Loader got(parted, nullptr, o);
          return std::make_pair(run(want, 2), run(got, 2));
        });
        for (int r = 0; r < world; ++r) {
          SCOPED_TRACE(testing::Message() << "rank " << r << " of " << world << ", prefetch " << prefetch);
          EXPECT_EQ(seen[r].first.x, seen[r].second.x);
          EXPECT_EQ(seen[r].first.labels, seen[r].second.labels);
          EXPECT_EQ(seen[r].first.rows, seen[r].second.rows);
          EXPECT_EQ(seen[r].second.rows.size(), 2u * 9);  // 103 samples in batches of 12, twice
        }
        // Every rank took part in every exchange, also with no rows of its own.
        for (int r = 0; r < world; ++r) EXPECT_EQ(g.exchanges(r), 18) << world;
      }
}

TEST(Partitioned, ThroughSubsetsAndResumedMidEpoch) {
  test::TempDir dir;
  const std::string path = write_set(dir, 90);
  const int world = 3;
  Group g(world);
  const auto seen = on_ranks(world, [&](int rank) {
    auto resident = std::make_shared<Hdf5Dataset>(path, "train");
    auto parted = std::make_shared<Hdf5Dataset>(path, "train", 0, Partition{rank, world});
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < 90; i += 1 + i % 2) keep.push_back(i);  // a held-out fraction's rest
    Subset a(resident, keep, "rest"), b(parted, keep, "rest");
    ClassSubset ca(std::make_shared<Subset>(a), {4, 1}), cb(std::make_shared<Subset>(b), {4, 1});
    ThreadComm comm(g, rank, world);
    LoaderOptions o{6, rank, world, true, false, false, 3, 2};
    Loader want(ca, nullptr, o);
    o.comm = &comm;
    Loader got(cb, nullptr, o);
    return std::make_pair(run(want, 2, 2), run(got, 2, 2));
  });
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(seen[r].first.x, seen[r].second.x) << r;
    EXPECT_EQ(seen[r].first.labels, seen[r].second.labels) << r;
    for (int32_t l : seen[r].second.labels) EXPECT_TRUE(l == 0 || l == 1);
  }
}

TEST(Partitioned, LoadersStoppedMidEpochAtDifferentPointsDoNotHang) {
  test::TempDir dir;
  const std::string path = write_set(dir, 200);
  const int world = 2;
  Group g(world);
  // Each rank consumes 3 of 16 batches and destroys its loader: their threads were ahead by
  // different amounts; the ranks' exchanges still pair up, and the next loaders work.
  const auto seen = on_ranks(world, [&](int rank) {
    Hdf5Dataset parted(path, "train", 0, {rank, world});
    ThreadComm comm(g, rank, world);
    LoaderOptions o{12, rank, world, true, false, false, 9, 3};
    o.comm = &comm;
    {
      Loader l(parted, nullptr, o);
      l.start(0);
      Batch b;
      for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.next(b));
      if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Loader again(parted, nullptr, o);
    return run(again, 1, 5);
  });
  EXPECT_EQ(seen[0].rows.size(), 12u);
  EXPECT_EQ(seen[1].rows.size(), 12u);
}

TEST(Partitioned, ReadingAnotherRanksPartAloneIsAnError) {
  test::TempDir dir;
  const std::string path = write_set(dir, 40);
  Hdf5Dataset parted(path, "train", 0, {1, 2});
  EXPECT_EQ(parted.part_begin(1), 20);
  EXPECT_EQ(parted.part_owner(19), 0);
  EXPECT_EQ(parted.part_owner(20), 1);
  Tensor x(Shape{1, 1, 2, 3});
  const int64_t mine = 25, theirs = 3;
  parted.read(std::span<const int64_t>(&mine, 1), x.view(), nullptr, TensorView());
  EXPECT_EQ(x[0], static_cast<float>((25 * 7) % 251));
  const std::string e =
      error_of<Error>([&] { parted.read(std::span<const int64_t>(&theirs, 1), x.view(), nullptr, TensorView()); });
  EXPECT_NE(e.find("sample 3 is in rank 0's part, not rank 1's"), std::string::npos) << e;
  // A loader for 3 ranks on a split cut in 2 parts.
  Group g(1);
  ThreadComm comm(g, 1, 3);
  LoaderOptions o{6, 1, 3, true, false, false, 3, 0};
  o.comm = &comm;
  Loader l(parted, nullptr, o);
  l.start(0);
  Batch b;
  const std::string w = error_of<Error>([&] { l.next(b); });
  EXPECT_NE(w.find("a collective read for rank 1 of 3 ranks, but the split is partitioned for rank 1 of 2"),
            std::string::npos)
      << w;
}

// --- The shuffle-buffer stream ----------------------------------------------------------

TEST(Stream, EachRankDrawsDistinctSamplesOfItsRunsAndResumesExactly) {
  test::TempDir dir;
  const std::string path = write_set(dir, 1000, 16);
  Hdf5Dataset set(path, "train", 0);
  for (int world : {1, 2, 3}) {
    std::set<int64_t> all;
    for (int rank = 0; rank < world; ++rank) {
      ShuffleStream::Options o;
      o.buffer = 50;
      o.rows = 4;
      o.rank = rank;
      o.world = world;
      o.run_bytes = 16 * 6 * 2;  // runs of two chunks
      ShuffleStream s(set, o);
      EXPECT_EQ(s.run_rows(), 32);
      std::vector<float> rows(4 * 6);
      std::vector<int64_t> ids(4), got;
      std::vector<int32_t> labels(4);
      s.start(1, 0);
      for (int64_t k = 0; k < s.batches_per_epoch(); ++k) {
        s.next(4, rows.data(), ids.data(), labels.data());
        for (int i = 0; i < 4; ++i) {
          EXPECT_EQ(rows[static_cast<size_t>(i) * 6 + 1], static_cast<float>((ids[i] * 7 + 1) % 251));
          EXPECT_EQ(labels[static_cast<size_t>(i)], ids[i] % 5);
          got.push_back(ids[i]);
        }
      }
      const std::set<int64_t> distinct(got.begin(), got.end());
      EXPECT_EQ(distinct.size(), got.size()) << "a sample drawn twice in an epoch";
      for (auto id : got) EXPECT_TRUE(all.insert(id).second) << "two ranks drew sample " << id;
      // Not in file order: the buffer shuffles (50 samples over runs dealt in a drawn order).
      EXPECT_FALSE(std::is_sorted(got.begin(), got.end()));
      // Resumed at minibatch 7 of the epoch: the same draws from there on.
      s.start(1, 7 * 4);
      std::vector<int64_t> rest;
      for (int64_t k = 7; k < s.batches_per_epoch(); ++k) {
        s.next(4, rows.data(), ids.data(), labels.data());
        rest.insert(rest.end(), ids.begin(), ids.end());
      }
      EXPECT_EQ(rest, std::vector<int64_t>(got.begin() + 28, got.end()));
      // Another epoch, other draws.
      s.start(2, 0);
      s.next(4, rows.data(), ids.data(), labels.data());
      EXPECT_NE(std::vector<int64_t>(ids.begin(), ids.end()), std::vector<int64_t>(got.begin(), got.begin() + 4));
    }
    // 32 runs (the last of 8 samples) dealt to the ranks: every rank draws the minibatches
    // of 4 that its smallest possible share fills, floor(32 / W) runs less the short one's
    // 24 missing samples: 250, 122 and 74 minibatches on 1, 2 and 3 ranks.
    const int64_t batches = ((32 / world) * 32 - 24) / 4;
    EXPECT_EQ(static_cast<int64_t>(all.size()), world * batches * 4) << world;
  }
}

TEST(Stream, BatchesPerEpochCountTheSmallestShare) {
  test::TempDir dir;
  const std::string path = write_set(dir, 100, 10);  // 10 runs of 10 when run_bytes is small
  Hdf5Dataset set(path, "train", 0);
  ShuffleStream::Options o;
  o.rows = 3;
  o.world = 4;
  o.run_bytes = 60;  // 10 rows
  // 10 runs dealt to 4 ranks: the fewest is 2 runs, 20 samples, 6 minibatches of 3.
  o.run_bytes = 60;
  ShuffleStream s(set, o);
  EXPECT_EQ(s.run_rows(), 2);  // halved until every rank is dealt several runs (8 each)
  o.world = 1;
  ShuffleStream one(set, o);
  EXPECT_EQ(one.run_rows(), 10);
  EXPECT_EQ(one.batches_per_epoch(), 33);
  o.rows = 200;
  EXPECT_NE(error_of<ConfigError>([&] { ShuffleStream big(set, o); }).find("fewer than its 200 rows"),
            std::string::npos);
}

TEST(Stream, TheLoaderStreamsFullBatchesWithPrefetch) {
  test::TempDir dir;
  const std::string path = write_set(dir, 500, 16);
  Hdf5Dataset set(path, "train", 0);
  LoaderOptions o{8, 1, 2, true, false, false, 5, 2};
  o.shuffle_buffer = 40;
  Loader a(set, nullptr, o);
  o.prefetch = 0;
  Loader b(set, nullptr, o);
  const Seen sa = run(a, 2), sb = run(b, 2);
  EXPECT_EQ(sa.x, sb.x);
  EXPECT_EQ(sa.rows, std::vector<int64_t>(sa.rows.size(), 4));
  EXPECT_EQ(a.batches_per_epoch(), a.stream()->batches_per_epoch());
  // Resumed at batch 3 of epoch 0: the same rows from there on.
  const Seen from3 = run(b, 2, 3);
  EXPECT_EQ(from3.x, std::vector<float>(sb.x.begin() + 3 * 4 * 6, sb.x.end()));
}

// --- the paged store: rows read in place --------------------------------------------------

TEST(Paged, ReadsTheStoredRowsChunkedOrContiguous) {
  test::TempDir dir;
  // 103 samples in chunks of 8 with checksums (the last chunk partial), and contiguous.
  for (const bool chunked : {true, false}) {
    SCOPED_TRACE(chunked ? "chunked" : "contiguous");
    const std::string path = write_set(dir, 103, chunked ? 8 : 0, chunked ? "c.h5" : "n.h5", chunked);
    Hdf5Dataset paged(path, "train", Hdf5Dataset::kPaged);
    // Sample i's byte j is (7i + j) mod 251: a worked example, repeats and the last row.
    const std::vector<int64_t> ids{102, 0, 57, 57, 96, 8};
    Tensor x(Shape{6, 1, 2, 3});
    std::vector<int32_t> labels(6);
    paged.read(ids, x.view(), labels.data(), TensorView());
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(labels[i], ids[i] % 5);
      for (int j = 0; j < 6; ++j) EXPECT_EQ(x.data()[i * 6 + j], static_cast<float>((ids[i] * 7 + j) % 251)) << ids[i];
    }
    std::vector<uint8_t> stored(6 * 6);
    paged.read_stored(ids, stored.data(), nullptr);
    EXPECT_EQ(stored[0], 102 * 7 % 251);
    EXPECT_EQ(stored[35], (8 * 7 + 5) % 251);
    const int64_t past = 103;
    EXPECT_NE(error_of<DataError>([&] {
                paged.read(std::span<const int64_t>(&past, 1), x.view(), nullptr, TensorView());
              }).find("sample 103 out of range [0, 103)"),
              std::string::npos);
  }
}

TEST(Paged, SameBatchesAsResidentOnOneAndTwoRanksThroughSubsets) {
  test::TempDir dir;
  const std::string path = write_set(dir, 103);
  for (int world = 1; world <= 2; ++world)
    for (int prefetch : {0, 2}) {
      const auto seen = on_ranks(world, [&](int rank) {
        auto resident = std::make_shared<Hdf5Dataset>(path, "train");
        auto paged = std::make_shared<Hdf5Dataset>(path, "train", Hdf5Dataset::kPaged);
        std::vector<int64_t> keep;
        for (int64_t i = 0; i < 103; i += 1 + i % 2) keep.push_back(i);  // a held-out fraction's rest
        ClassSubset a(std::make_shared<Subset>(resident, keep, "rest"), {4, 1, 2});
        ClassSubset b(std::make_shared<Subset>(paged, keep, "rest"), {4, 1, 2});
        LoaderOptions o{6, rank, world, true, false, false, 3, prefetch};
        Loader want(a, nullptr, o), got(b, nullptr, o);
        return std::make_pair(run(want, 2, 1), run(got, 2, 1));
      });
      for (int r = 0; r < world; ++r) {
        SCOPED_TRACE(testing::Message() << "rank " << r << " of " << world << ", prefetch " << prefetch);
        EXPECT_FALSE(seen[r].second.x.empty());
        EXPECT_EQ(seen[r].first.x, seen[r].second.x);
        EXPECT_EQ(seen[r].first.labels, seen[r].second.labels);
      }
    }
}

TEST(Paged, AChunksChecksumIsVerifiedBeforeItsRowsAreUsed) {
  test::TempDir dir;
  const std::string path = write_set(dir, 64, 8);
  Hdf5Dataset paged(path, "train", Hdf5Dataset::kPaged);
  Tensor x(Shape{1, 1, 2, 3});
  const int64_t first = 3, damaged = 19;  // chunks 0 and 2
  paged.read(std::span<const int64_t>(&first, 1), x.view(), nullptr, TensorView());
  // Flip the first byte of row 19 in the file, in place (same size, same inode).
  int64_t at = 0;
  {
    h5::File f = h5::File::open_read(path);
    h5::Handle d = h5::open_dataset(f, "/train/images");
    const auto layout =
        h5::row_layout(f, d, "/train/images", H5T_NATIVE_UINT8, static_cast<int64_t>(std::filesystem::file_size(path)));
    ASSERT_EQ(layout.rows_per_chunk, 8);
    ASSERT_EQ(layout.offsets.size(), 8u);
    EXPECT_TRUE(layout.checksum);
    at = layout.offsets[2] + 3 * 6;
  }
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(at);
    const int byte = file.get();
    ASSERT_EQ(byte, damaged * 7 % 251);
    file.seekp(at);
    file.put(static_cast<char>(byte ^ 0x40));
  }
  const std::string e =
      error_of<DataError>([&] { paged.read(std::span<const int64_t>(&damaged, 1), x.view(), nullptr, TensorView()); });
  EXPECT_NE(e.find(path + ":/train/images: reading failed (a damaged file, or a checksum mismatch)"), std::string::npos)
      << e;
  // Chunk 0 was verified before the damage: its rows still read, as stored.
  paged.read(std::span<const int64_t>(&first, 1), x.view(), nullptr, TensorView());
  EXPECT_EQ(x.data()[0], 21.0f);
}

TEST(Paged, ACompressedSplitOrAChangedFileIsADataErrorNamingIt) {
  test::TempDir dir;
  const std::string z = write_set(dir, 64, 8, "z.h5", true, 1);
  const std::string e = error_of<DataError>([&] { Hdf5Dataset(z, "train", Hdf5Dataset::kPaged); });
  EXPECT_NE(
      e.find(
          z +
          ":/train/images: is stored byte-shuffled and compressed (deflate): its rows cannot be read in place; store: "
          "paged reads rows in place, from a split stored uncompressed"),
      std::string::npos)
      << e;
  const std::string path = write_set(dir, 64, 8);
  Hdf5Dataset paged(path, "train", Hdf5Dataset::kPaged);
  Tensor x(Shape{1, 1, 2, 3});
  const int64_t one = 1;
  std::filesystem::resize_file(path, 2000);
  EXPECT_NE(error_of<DataError>([&] {
              paged.read(std::span<const int64_t>(&one, 1), x.view(), nullptr, TensorView());
            }).find(path + ":/train: the file changed size since it was opened"),
            std::string::npos);
}

// --- prepare: the one-time read before the first epoch ------------------------------------

TEST(Prepare, AResidentSplitIsInMemoryAfterItAndReadsNeedNoFile) {
  test::TempDir dir;
  const std::string path = write_set(dir, 50), copy = write_set(dir, 50, 8, "copy.h5");
  auto resident = std::make_shared<Hdf5Dataset>(path, "train");
  auto unprepared = std::make_shared<Hdf5Dataset>(copy, "train");
  Subset rest(resident, {1, 4, 9, 49}, "rest");
  LoaderOptions o{2, 0, 1, false, false, false, 1, 2};
  Loader l(rest, nullptr, o);
  l.prepare();  // through the subset, on the loader's own thread
  std::filesystem::remove(path);
  std::filesystem::remove(copy);
  const Seen seen = run(l, 1);
  ASSERT_EQ(seen.x.size(), 4u * 6);
  EXPECT_EQ(seen.x[6], static_cast<float>(4 * 7 % 251));  // sample 4's first byte
  EXPECT_EQ(seen.x[23], static_cast<float>((49 * 7 + 5) % 251));
  // Not prepared, the first read needs the file.
  Tensor x(Shape{1, 1, 2, 3});
  const int64_t one = 1;
  EXPECT_NE(error_of<DataError>([&] {
              unprepared->read(std::span<const int64_t>(&one, 1), x.view(), nullptr, TensorView());
            }).find(":/train: the file is gone since it was opened"),
            std::string::npos);
}

// --- data.store -------------------------------------------------------------------------

TEST(Store, ChosenByTheBudgetAndTheRanks) {
  test::TempDir dir;
  // 60000 samples of 6 bytes: 0.34 MiB.
  const std::string path = write_set(dir, 60000, 256);
  auto open_with = [&](const std::string& extra, Placement where) {
    return open(Config::parse("file: " + path + "\nval_fraction: 0\n" + extra, "data"), false, where);
  };
  EXPECT_EQ(open_with("", {0, 1, 1}).store, "resident");
  EXPECT_EQ(open_with("memory_mb: 1\n", {0, 1, 1}).store, "resident");
  const Splits two = open_with("store: partitioned\n", {1, 2, 2});
  EXPECT_EQ(two.store, "partitioned");
  EXPECT_TRUE(two.train->collective());
  const Splits streamed = open_with("store: streaming\nshuffle_buffer: 77\n", {0, 2, 2});
  EXPECT_EQ(streamed.store, "streaming");
  EXPECT_EQ(streamed.shuffle_buffer, 77);
  EXPECT_NE(streamed.store_why.find("NOT the exact global permutation"), std::string::npos);
  const Splits paged = open_with("store: paged\n", {0, 2, 2});
  EXPECT_EQ(paged.store, "paged");
  EXPECT_EQ(paged.shuffle_buffer, 0);
  EXPECT_FALSE(paged.train->collective());
  EXPECT_NE(paged.store_why.find(path + ":/train (1 MiB) left in the file"), std::string::npos) << paged.store_why;
  EXPECT_NE(error_of<ConfigError>([&] { open_with("store: everywhere\n", {}); }).find("store is auto, resident"),
            std::string::npos);
}

TEST(Store, AutoPartitionsWhenAPartFitsAndStreamsWhenNot) {
  test::TempDir dir;
  // 200000 samples of 6 bytes: 1.14 MiB, over a 1 MiB budget.
  const std::string path = write_set(dir, 200000, 1024);
  auto open_with = [&](const std::string& extra, Placement where) {
    return open(Config::parse("file: " + path + "\nval_fraction: 0\nmemory_mb: 1\n" + extra, "data"), false, where);
  };
  EXPECT_EQ(open_with("", {0, 1, 1}).store, "streaming");
  EXPECT_EQ(open_with("", {1, 2, 2}).store, "partitioned");
  const std::string e = error_of<ConfigError>([&] { open_with("store: resident\n", {0, 1, 1}); });
  EXPECT_NE(e.find("does not fit data.memory_mb: 1 MiB"), std::string::npos) << e;
  const std::string p = error_of<ConfigError>([&] { open_with("store: partitioned\n", {0, 1, 1}); });
  EXPECT_NE(p.find("rank 0: its part of " + path + ":/train (2 MiB) over 1 ranks is 2 MiB"), std::string::npos) << p;
}

}  // namespace hubel::datasets

namespace hubel::datasets {

TEST(Stream, AFileCutShortWhileStreamingIsADataErrorNamingIt) {
  test::TempDir dir;
  const std::string path = write_set(dir, 20000, 256);
  Hdf5Dataset set(path, "train", 0);
  ShuffleStream::Options o;
  o.rows = 8;
  o.buffer = 100;
  ShuffleStream s(set, o);
  std::vector<float> rows(8 * 6);
  std::vector<int64_t> ids(8);
  for (int epoch = 0; epoch < 2; ++epoch) {  // every chunk read before, also when the file is cut
    s.start(epoch, 0);
    for (int64_t k = 0; k < s.batches_per_epoch(); ++k) s.next(8, rows.data(), ids.data(), nullptr);
  }
  s.start(2, 0);
  std::filesystem::resize_file(path, 20000);
  const std::string e = error_of<DataError>([&] {
    for (int64_t k = 1; k < s.batches_per_epoch(); ++k) s.next(8, rows.data(), ids.data(), nullptr);
  });
  EXPECT_NE(e.find(path + ":/train: the file changed size since it was opened"), std::string::npos) << e;
  // Gone, or replaced.
  std::filesystem::remove(path);
  Tensor x(Shape{1, 1, 2, 3});
  const int64_t one = 1;
  EXPECT_NE(error_of<DataError>([&] {
              set.read(std::span<const int64_t>(&one, 1), x.view(), nullptr, TensorView());
            }).find(":/train: the file is gone since it was opened"),
            std::string::npos);
  Hdf5Dataset other(write_set(dir, 300, 16, "other.h5"), "train", 0);
  write_set(dir, 300, 16, "other.h5");  // (written to a new file, renamed over the old)
  EXPECT_NE(error_of<DataError>([&] {
              other.read(std::span<const int64_t>(&one, 1), x.view(), nullptr, TensorView());
            }).find(":/train: the file was replaced by another"),
            std::string::npos);
}

}  // namespace hubel::datasets
