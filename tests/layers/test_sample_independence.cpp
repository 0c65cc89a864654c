// A sample's output and input gradient depend on that sample alone: the same bits whether
// it is computed in a batch of 12 or in a piece of 1, 5 or 6 rows starting anywhere (what
// makes training the same on any number of ranks, each rank computing its own rows).
#include <gtest/gtest.h>

#include <cstring>

#include "framework/random.hpp"
#include "layers/gemm_kernels.hpp"
#include "tests/gradcheck.hpp"
#include "tests/layers/layer_from_yaml.hpp"

namespace hubel::layers {
namespace {

struct Case {
  const char* yaml;
  Shape x;
};

void check_pieces(const Case& c, bool training) {
  SCOPED_TRACE(cat(c.yaml, " on ", c.x.str(), training ? ", training" : ", evaluation"));
  constexpr int64_t kBatch = 12;
  auto whole = test::layer_from_yaml(c.yaml);
  test::LayerHarness hw(*whole, {c.x}, kBatch, 3);
  const StepContext ctx{training, 9, 4, 100};
  hw.backward(ctx);
  const int64_t in = c.x.numel(), out = hw.y_shape().numel();
  for (const auto& [first, rows] : {std::pair<int64_t, int64_t>{0, 1}, {1, 5}, {6, 6}, {11, 1}}) {
    SCOPED_TRACE(cat("rows ", first, " to ", first + rows));
    auto piece = test::layer_from_yaml(c.yaml);
    test::LayerHarness hp(*piece, {c.x}, rows, 3);
    for (size_t p = 0; p < whole->params().size(); ++p)
      std::copy(hw.w(p).span().begin(), hw.w(p).span().end(), hp.w(p).span().begin());
    std::copy(hw.x().data() + first * in, hw.x().data() + (first + rows) * in, hp.x().data());
    std::copy(hw.dy().data() + first * out, hw.dy().data() + (first + rows) * out, hp.dy().data());
    StepContext pc = ctx;
    pc.first_sample = ctx.first_sample + first;
    hp.backward(pc);
    EXPECT_EQ(0, std::memcmp(hp.y().data(), hw.y().data() + first * out, static_cast<size_t>(rows * out) * 4)) << "y";
    EXPECT_EQ(0, std::memcmp(hp.dx().data(), hw.dx().data() + first * in, static_cast<size_t>(rows * in) * 4))
        << "dx";
  }
}

TEST(SampleIndependence, EveryLayerAtEveryKernelWidth) {
  const std::vector<Case> cases{
      {"{type: conv2d, filters: 6, kernel: 5, padding: 2, activation: relu}", {1, 28, 28}},
      {"{type: conv2d, filters: 16, kernel: 5}", {6, 14, 14}},
      {"{type: conv2d, filters: 32, kernel: 3, padding: same}", {3, 32, 32}},
      {"{type: conv2d, filters: 64, kernel: 3, padding: same}", {32, 16, 16}},
      {"{type: conv2d, filters: 8, kernel: 3, stride: 2, padding: 1}", {4, 15, 15}},
      {"{type: conv2d, filters: 96, kernel: 1}", {64, 8, 8}},
      {"{type: conv2d, filters: 4, kernel: 3, tiles: 2}", {3, 8, 8}},
      {"{type: conv2d, kernel: 3, connections: [[0, 1], [1, 2], [0, 2]]}", {3, 8, 8}},
      {"{type: conv3d, filters: 4, kernel: 3, padding: 1}", {2, 4, 5, 5}},
      {"{type: conv_transpose2d, filters: 8, kernel: 4, stride: 2, padding: 1}", {16, 7, 7}},
      {"{type: dense, units: 120}", {400}},
      {"{type: dense, units: 512}", {1024}},
      {"{type: dense, units: 10}", {84}},
      {"{type: maxpool2d, kernel: 2}", {6, 28, 28}},
      {"{type: maxpool2d, kernel: 3, stride: 2, padding: 1}", {4, 9, 9}},
      {"{type: avgpool2d, kernel: 2}", {4, 8, 8}},
      {"{type: subsample2d, kernel: 2}", {6, 8, 8}},
      {"{type: global_avgpool}", {8, 5, 5}},
      {"{type: relu}", {3, 7, 7}},
      {"{type: softmax}", {10}},
      {"{type: layernorm}", {6, 4, 4}},
      {"{type: batchnorm, sync: true}", {6, 4, 4}},
      {"{type: dropout, rate: 0.4}", {50}},
  };
  const int before = kernel_width();
  std::vector<int> widths = kernel_widths();
  if (widths.empty()) widths.push_back(0);
  for (const int bits : widths) {
    SCOPED_TRACE(cat(bits, "-bit kernels"));
    if (bits) use_kernel_width(bits);
    for (const auto& c : cases) {
      const bool batch_statistics = std::string(c.yaml).find("batchnorm") != std::string::npos;
      if (!batch_statistics) check_pieces(c, true);  // batch norm in training: the statistics are the batch's
      check_pieces(c, false);
    }
  }
  if (before) use_kernel_width(before);
}

}  // namespace
}  // namespace hubel::layers
