// A sample's output and input gradient depend on that sample alone: the same bits whether
// it is computed in a batch of 12 or in a piece of 1, 5 or 6 rows starting anywhere (what
// makes training the same on any number of ranks, each rank computing its own rows).
#include <gtest/gtest.h>

#include <algorithm>
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
    EXPECT_EQ(0, std::memcmp(hp.dx().data(), hw.dx().data() + first * in, static_cast<size_t>(rows * in) * 4)) << "dx";
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
      {"{type: weighted_avgpool2d, kernel: 3, stride: 2, padding: 1}", {4, 9, 9}},
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

// Exact training (framework/chunks.hpp): the parameter gradient of 16 rows in chunks of 4,
// computed by one "rank", equals the same chunks split over 2 and 4 ranks, each rank's sum
// added to its partner's in the chunks' tree ((r0 + r1) + (r2 + r3)), bit for bit; also
// for a final batch of 10 rows (the last chunks partly or wholly empty).
TEST(SampleIndependence, ChunkGradientsAddUpTheSameOnAnyNumberOfRanks) {
  const std::vector<Case> cases{
      {"{type: conv2d, filters: 6, kernel: 5, padding: 2, activation: relu}", {1, 12, 12}},
      {"{type: conv2d, filters: 16, kernel: 3}", {6, 8, 8}},
      {"{type: conv2d, filters: 8, kernel: 3, stride: 2, padding: 1}", {4, 9, 9}},
      {"{type: conv2d, filters: 4, kernel: 3, tiles: 2, bias: location}", {3, 6, 6}},
      {"{type: conv2d, kernel: 3, connections: [[0, 1], [1, 2], [0, 2]]}", {3, 7, 7}},
      {"{type: conv_transpose2d, filters: 4, kernel: 3, stride: 2}", {3, 4, 4}},
      {"{type: dense, units: 30}", {50}},
      {"{type: subsample2d, kernel: 2}", {3, 6, 6}},
      {"{type: layernorm}", {4, 3, 3}},
      {"{type: weighted_avgpool2d, kernel: 3, stride: 2, padding: 1, weights: learned}", {3, 7, 7}},
  };
  constexpr int64_t kChunk = 4, kRows = 16;
  for (const int64_t rows : {kRows, int64_t{10}})
    for (const auto& c : cases) {
      SCOPED_TRACE(cat(c.yaml, ", ", rows, " rows"));
      const int64_t in = c.x.numel();
      // grads(first, count, ranks): the parameter gradients of rows [first, first + count)
      // of the batch, as a rank holding kRows / ranks rows computes them.
      auto whole = test::layer_from_yaml(c.yaml);
      test::LayerHarness ref(*whole, {c.x}, kRows, 5);
      const int64_t out = ref.y_shape().numel();
      auto grads = [&](int64_t first, int64_t ranks) {
        const int64_t local = kRows / ranks, count = std::clamp<int64_t>(rows - first, 0, local);
        auto layer = test::layer_from_yaml(c.yaml);
        test::LayerHarness h(*layer, {c.x}, local, 5);
        for (size_t p = 0; p < layer->params().size(); ++p)
          std::copy(ref.w(p).span().begin(), ref.w(p).span().end(), h.w(p).span().begin());
        std::vector<std::vector<float>> g;
        if (count > 0) {
          std::copy(ref.x().data() + first * in, ref.x().data() + (first + count) * in, h.x().data());
          std::copy(ref.dy().data() + first * out, ref.dy().data() + (first + count) * out, h.dy().data());
          // The harness runs `local` rows; a final batch's rank runs fewer.
          std::vector<ConstTensorView> xs{ConstTensorView(h.x().data(), c.x.with_batch(count))};
          std::vector<TensorView> dxs{TensorView(h.dx().data(), c.x.with_batch(count))};
          StepContext ctx{true, 9, 4, first, nullptr, kChunk, local / kChunk};
          layer->forward(xs, TensorView(h.y().data(), ref.y_shape().with_batch(count)), ctx);
          layer->backward(xs, ConstTensorView(h.y().data(), ref.y_shape().with_batch(count)),
                          ConstTensorView(h.dy().data(), ref.y_shape().with_batch(count)), dxs, ctx);
        }
        for (size_t p = 0; p < layer->params().size(); ++p)
          g.emplace_back(count > 0 ? std::vector<float>(h.dw(p).span().begin(), h.dw(p).span().end())
                                   : std::vector<float>(static_cast<size_t>(h.dw(p).numel()), 0.0f));
        return g;
      };
      auto add = [](std::vector<std::vector<float>> a, const std::vector<std::vector<float>>& b) {
        for (size_t t = 0; t < a.size(); ++t)
          for (size_t i = 0; i < a[t].size(); ++i) a[t][i] += b[t][i];
        return a;
      };
      const auto one = grads(0, 1);
      const auto two = add(grads(0, 2), grads(8, 2));
      const auto four = add(add(grads(0, 4), grads(4, 4)), add(grads(8, 4), grads(12, 4)));
      ASSERT_EQ(one.size(), two.size());
      for (size_t t = 0; t < one.size(); ++t) {
        EXPECT_EQ(0, std::memcmp(one[t].data(), two[t].data(), one[t].size() * 4)) << "2 ranks, parameter " << t;
        EXPECT_EQ(0, std::memcmp(one[t].data(), four[t].data(), one[t].size() * 4)) << "4 ranks, parameter " << t;
      }
    }
}

}  // namespace
}  // namespace hubel::layers
