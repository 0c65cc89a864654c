// Fusion (Layer::fuse, Net::set_fusion): a convolution computing the 2x2 max pooling that
// follows it in its own passes must give the two layers' bits, forward and backward, on
// every plan that fuses (and leave the others alone); the pooling's backward kernel, into
// the convolution's wider rows with the ReLU's cut windows, the bits of the plane and the mask.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "framework/config.hpp"
#include "framework/net.hpp"
#include "framework/random.hpp"
#include "layers/bf16_products.hpp"
#include "layers/builtin.hpp"
#include "layers/pool_fast.hpp"
#include "tests/gradcheck.hpp"

namespace hubel::layers {
namespace {

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Values with ties (small integers) and, when asked, NaN; the sign of zero varies too.
void fill(std::span<float> v, Rng& rng, bool nan) {
  for (float& x : v) {
    const double u = rng.uniform();
    x = static_cast<float>(std::floor(u * 9) - 4);
    if (x == 0 && rng.uniform() < 0.5) x = -0.0f;
    if (nan && rng.uniform() < 0.05) x = std::numeric_limits<float>::quiet_NaN();
  }
}

TEST(Fusion, PoolBackwardIntoWiderRowsWithCutWindowsEqualsThePlaneThenTheReluMask) {
  Rng rng(7);
  // Widths that take the 8-wide, 4-wide and scalar paths, odd sides (floor rounding).
  for (const auto& [H, W] :
       {std::pair<int64_t, int64_t>{4, 4}, {6, 10}, {32, 32}, {7, 33}, {5, 27}, {2, 16}, {34, 34}}) {
    for (const bool nan : {false, true}) {
      Window w;
      w.rank = 2;
      w.in = {1, H, W};
      w.out = {1, H / 2, W / 2};
      w.k = {1, 2, 2};
      w.s = {1, 2, 2};
      ASSERT_TRUE(pool_fast::max_2x2_applies(w));
      std::vector<float> x(static_cast<size_t>(H * W)), dy(static_cast<size_t>(w.out_vol()));
      fill(x, rng, nan);
      fill(dy, rng, nan);
      // The two layers: the pooling's argmax and backward, then a ReLU's mask by x > 0.
      std::vector<float> y(dy.size()), dx(x.size());
      std::vector<int32_t> argmax(dy.size());
      pool_fast::max_2x2_plane(w, x.data(), y.data(), argmax.data());
      pool_fast::max_2x2_backward_plane(w, dy.data(), argmax.data(), dx.data());
      for (size_t i = 0; i < dx.size(); ++i) dx[i] = x[i] > 0 ? dx[i] : 0.0f;
      // Fused: the windows whose maximum is not positive cut (-1), into rows 3 floats wider
      // than the plane (the extra columns left as they were).
      for (size_t q = 0; q < argmax.size(); ++q) argmax[q] = y[q] > 0 ? argmax[q] : -1;
      const int64_t ld = W + 3;
      std::vector<float> rows(static_cast<size_t>(H * ld), 99.0f);
      pool_fast::max_2x2_backward_plane(w, dy.data(), argmax.data(), rows.data(), ld);
      for (int64_t h = 0; h < H; ++h) {
        ASSERT_TRUE(
            same_bits({rows.data() + h * ld, static_cast<size_t>(W)}, {dx.data() + h * W, static_cast<size_t>(W)}))
            << H << "x" << W << " nan " << nan << " row " << h;
        for (int64_t c = W; c < ld; ++c) ASSERT_EQ(rows[static_cast<size_t>(h * ld + c)], 99.0f);
      }
    }
  }
}

// One forward and backward of a model with fusion on or off: every layer's output, the
// parameter gradients and the input gradient's effect (through a first layer).
struct Pass {
  std::vector<std::vector<float>> outputs;
  std::vector<float> grads;
  std::vector<std::string> plans;
};

Pass pass(const std::string& layers, const std::string& input, bool fusion, Precision precision, int64_t n = 5) {
  const Config c = Config::parse(cat("model:\n  input: ", input, "\n  layers:\n", layers), "fusion.yaml");
  Net net = Net::from_config(c.at("model"), builtin_registry());
  net.set_precision(precision);
  net.set_fusion(fusion);
  net.build(8, 3);
  Rng rng(11);
  TensorView x = net.input(n);
  test::randomize(x.span(), rng);
  StepContext ctx;
  ctx.training = true;
  const ConstTensorView out = net.forward(n, ctx);
  TensorView g = net.output_grad(n);
  for (int64_t i = 0; i < g.numel(); ++i) g[i] = std::sin(0.7f * static_cast<float>(i)) + 0.1f * out[i];
  net.backward(n, ctx);
  Pass p;
  for (size_t l = 0; l < net.size(); ++l) {
    const ConstTensorView a = net.activation(net.layer(l).name(), n);
    p.outputs.emplace_back(a.data(), a.data() + a.numel());
  }
  p.grads.assign(net.grads().begin(), net.grads().end());
  for (const auto& t : net.layer_times()) p.plans.push_back(t.plan);
  return p;
}

void expect_fused_like_alone(const std::string& layers, const std::string& input, int fused_layers,
                             const std::string& what, Precision precision = Precision::fp32) {
  const Pass alone = pass(layers, input, false, precision), fused = pass(layers, input, true, precision);
  if (precision == Precision::bf16) {  // (the convolution, layer 2, on its bf16 plan)
    EXPECT_NE(alone.plans[2].find("bf16"), std::string::npos) << what << ": " << alone.plans[2];
    EXPECT_NE(fused.plans[2].find("fused"), std::string::npos) << what << ": " << fused.plans[2];
  }
  int fused_seen = 0;
  for (const auto& plan : fused.plans) fused_seen += plan.find("(fused)") != std::string::npos;
  EXPECT_EQ(fused_seen, fused_layers) << what;
  for (const auto& plan : alone.plans) EXPECT_EQ(plan.find("fused"), std::string::npos) << what;
  ASSERT_EQ(alone.outputs.size(), fused.outputs.size());
  for (size_t l = 0; l < alone.outputs.size(); ++l)
    EXPECT_TRUE(same_bits(alone.outputs[l], fused.outputs[l])) << what << ": output of layer " << l;
  EXPECT_TRUE(same_bits(alone.grads, fused.grads)) << what << ": parameter gradients";
  // Not vacuous: the pass trained something.
  double sum = 0;
  for (float v : alone.grads) sum += std::fabs(v);
  EXPECT_GT(sum, 0.0) << what;
}

// A dense layer first, so the convolution's input gradient is checked through its weights.
// side: of the convolution's input (16: output rows of whole panels, for compact_rows).
std::string model(const std::string& conv, const std::string& pool = "{type: maxpool2d, kernel: 2}",
                  int64_t side = 10) {
  return cat("    - {type: dense, units: ", 3 * side * side, "}\n    - {type: reshape, shape: [3, ", side, ", ", side,
             "]}\n    - ", conv, "\n    - ", pool, "\n    - {type: flatten}\n    - {type: dense, units: 4}\n");
}

TEST(Fusion, ConvolutionWithItsPoolingGivesTheBitsOfTheTwoLayersOnEveryPlanThatFuses) {
  for (const std::string impl : {"fast", "implicit", "compact_rows", "positions", "im2col", "wide_im2col"})
    for (const std::string act : {"relu", "none"}) {
      // (positions needs whole panels of filters)
      const std::string conv = cat("{type: conv2d, filters: ", impl == "positions" ? 16 : 6,
                                   ", kernel: 3, padding: 1, activation: ", act, ", impl: ", impl, "}");
      expect_fused_like_alone(model(conv, "{type: maxpool2d, kernel: 2}", impl == "compact_rows" ? 16 : 10), "[4]", 1,
                              impl + " " + act);
    }
  // Odd sides (floor rounding: the last row and column in no window), no bias, flipped.
  expect_fused_like_alone(model("{type: conv2d, filters: 5, kernel: 2, activation: relu, bias: false}",
                                "{type: maxpool2d, kernel: 2, rounding: floor}"),
                          "[4]", 1, "9x9 output, floor");
  expect_fused_like_alone(model("{type: conv2d, filters: 4, kernel: 3, padding: 1, flip: true, activation: relu}"),
                          "[4]", 1, "flip");
  expect_fused_like_alone(
      model("{type: conv2d, filters: 7, kernel: 3, padding: 2, activation: relu}", "{type: maxpool2d, kernel: 2}", 32),
      "[4]", 1, "34 wide");
}

TEST(Fusion, Bf16ConvolutionWithItsPoolingGivesTheBitsOfTheTwoLayers) {
  if (!bf16_kernels()) GTEST_SKIP() << "this CPU or this build has no AVX512_BF16";
  for (const std::string conv : {"{type: conv2d, filters: 6, kernel: 3, padding: 1, activation: relu}",
                                 "{type: conv2d, filters: 7, kernel: 3, padding: 2, activation: relu}",
                                 "{type: conv2d, filters: 6, kernel: 5, padding: 2}"})
    for (const int64_t side : {10, 32}) {  // 32: output rows of whole panels, written in place
      expect_fused_like_alone(model(conv, "{type: maxpool2d, kernel: 2}", side), "[4]", 1,
                              cat(conv, " on ", side, "x", side), Precision::bf16);
    }
}

TEST(Fusion, OnlyAPoolingThatAloneReadsTheConvolutionIsFused) {
  // The convolution's output read twice (a residual add): not fused.
  const std::string branch =
      "    - {type: conv2d, name: c, filters: 2, kernel: 3, padding: 1, activation: relu}\n"
      "    - {type: maxpool2d, name: p, kernel: 2}\n"
      "    - {type: maxpool2d, name: q, kernel: 2, inputs: [c]}\n"
      "    - {type: add, inputs: [p, q]}\n"
      "    - {type: flatten}\n    - {type: dense, units: 3}\n";
  expect_fused_like_alone(branch, "[1, 8, 8]", 0, "two readers");
  // Average pooling, a 3x3 max, a 2x2 max at stride 1: not fused.
  for (const std::string pool :
       {"{type: avgpool2d, kernel: 2}", "{type: maxpool2d, kernel: 3, stride: 3, rounding: floor}",
        "{type: maxpool2d, kernel: 2, stride: 1}", "{type: maxpool2d, kernel: 2, impl: reference}"})
    expect_fused_like_alone(model("{type: conv2d, filters: 3, kernel: 3, padding: 1, activation: relu}", pool), "[4]",
                            0, pool);
  // The reference convolution has no fused pass.
  expect_fused_like_alone(model("{type: conv2d, filters: 3, kernel: 3, padding: 1, impl: reference}"), "[4]", 0,
                          "reference");
}

TEST(Fusion, AnInferenceNetFusesWithoutOverwritingWhatTheConvolutionReads) {
  // build_inference shares output buffers by lifetime: the pooling's output is written
  // while the convolution still reads its input, so they must not share one (the second
  // convolution computes a sample at a time here, and its pooled sample is twice its input
  // sample: sample 0's would overwrite sample 1's input).
  const std::string layers =
      "    - {type: conv2d, filters: 4, kernel: 3, padding: 1, activation: relu}\n"
      "    - {type: conv2d, filters: 32, kernel: 3, padding: 1, activation: relu}\n"
      "    - {type: maxpool2d, kernel: 2}\n"
      "    - {type: conv2d, filters: 4, kernel: 3, padding: 1, activation: relu}\n"
      "    - {type: maxpool2d, kernel: 2}\n"
      "    - {type: flatten}\n    - {type: dense, units: 3}\n";
  const Config c = Config::parse(cat("model:\n  input: [4, 32, 32]\n  layers:\n", layers), "fusion.yaml");
  auto run = [&](bool fusion) {
    Net trained = Net::from_config(c.at("model"), builtin_registry());
    trained.set_fusion(false);
    trained.build(4, 5);
    Net net = Net::from_config(c.at("model"), builtin_registry());
    net.set_fusion(fusion);
    net.build_inference(4, &trained);
    Rng rng(2);
    test::randomize(net.input(4).span(), rng);
    const ConstTensorView out = net.forward(4, StepContext{});
    EXPECT_EQ(net.layer_times()[2].plan.find("(fused)") != std::string::npos, fusion);
    return std::vector<float>(out.data(), out.data() + out.numel());
  };
  EXPECT_TRUE(same_bits(run(false), run(true)));
}

}  // namespace
}  // namespace hubel::layers
