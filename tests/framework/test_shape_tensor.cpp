// Shape arithmetic, tensor storage and views.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "framework/error.hpp"
#include "framework/tensor.hpp"

namespace hubel {

TEST(Shape, NumelRankAndPrinting) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.str(), "[2, 3, 4]");
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ(s.with_batch(5), (Shape{5, 2, 3, 4}));
  EXPECT_EQ(s.drop_first(), (Shape{3, 4}));
  EXPECT_NE(s, (Shape{2, 3}));
}

TEST(Shape, AtMostFiveDimensions) {
  EXPECT_NO_THROW((Shape{1, 2, 3, 4, 5}));
  EXPECT_THROW((Shape{1, 2, 3, 4, 5, 6}), ShapeError);
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}.with_batch(2)), ShapeError);
}

TEST(Tensor, AlignedAndZeroed) {
  Tensor t(Shape{3, 5, 7});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (float v : t.span()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(t.numel(), 105);
}

// The VmFlags line of the mapping of /proc/self/smaps that holds p ("" if none does).
std::string mapping_flags(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') inside = lo <= at && at < hi;
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(Tensor, LargeBuffersAskForHugePages) {
  // 5 MB and a few floats: on whole 2 MiB pages, advised as huge pages, still zeroed.
  const int64_t n = (5 << 20) / 4 + 3;
  AlignedBuffer big(n);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % (2u << 20), 0u);
  int64_t nonzero = 0;
  for (float v : big.span()) nonzero += v != 0.0f;
  EXPECT_EQ(nonzero, 0);
  EXPECT_EQ(big.size(), n);
#if defined(__linux__)
  EXPECT_NE(mapping_flags(big.data()).find(" hg"), std::string::npos) << mapping_flags(big.data());
  EXPECT_NE(mapping_flags(big.data() + n - 1).find(" hg"), std::string::npos);
#endif
  // Below 4 MiB: the usual 64-byte alignment.
  AlignedBuffer small(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
}

TEST(Tensor, RowViewsAndReshape) {
  Tensor t(Shape{4, 2, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(i);
  TensorView rows = t.view().rows(1, 2);
  EXPECT_EQ(rows.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(rows[0], 6.0f);
  EXPECT_EQ(rows.stride0(), 6);
  ConstTensorView flat = t.view().reshaped(Shape{4, 6});
  EXPECT_EQ(flat[7], 7.0f);
  EXPECT_EQ(flat.batch(), 4);
}

}  // namespace hubel
