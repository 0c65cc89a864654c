// LeNet-5's Euclidean RBF output layer.
#include "layers/rbf.hpp"

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"

namespace hubel::layers {

namespace {

// The digits 0..9 on a 7 x 12 grid ('#' = +1, '.' = -1), stylized as in the paper's
// Figure 3, far apart: every pair differs in at least 11 of the 84 places
// (tests/layers/test_rbf.cpp checks it).
constexpr const char* kDigits[10][12] = {
    {".......", "..###..", ".#...#.", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#", ".#...#.",
     "..###..", "......."},
    {".......", "...#...", "..##...", ".#.#...", "...#...", "...#...", "...#...", "...#...", "...#...", "...#...",
     ".#####.", "......."},
    {".......", "..###..", ".#...#.", "#.....#", "......#", ".....#.", "....#..", "...#...", "..#....", ".#.....",
     "#######", "......."},
    {".......", ".#####.", "#.....#", "......#", "......#", "..####.", "......#", "......#", "......#", "#.....#",
     ".#####.", "......."},
    {".......", ".....#.", "....##.", "...#.#.", "..#..#.", ".#...#.", "#....#.", "#######", ".....#.", ".....#.",
     ".....#.", "......."},
    {".......", "#######", "#......", "#......", "#.###..", "##...#.", "......#", "......#", "......#", "#.....#",
     ".#####.", "......."},
    {".......", "....##.", "...#...", "..#....", ".#.....", "#.###..", "##...#.", "#.....#", "#.....#", ".#...#.",
     "..###..", "......."},
    {".......", "#######", "......#", ".....#.", ".....#.", "....#..", "....#..", "...#...", "...#...", "..#....",
     "..#....", "......."},
    {".......", "..###..", ".#...#.", "#.....#", ".#...#.", "..###..", ".#...#.", "#.....#", "#.....#", ".#...#.",
     "..###..", "......."},
    {".......", "..###..", ".#...#.", "#.....#", "#.....#", ".#...##", "..###.#", "......#", "......#", ".....#.",
     ".####..", "......."},
};

}  // namespace

Rbf::Rbf(int64_t classes) : classes_(classes) {
  for (int64_t i = 0; i < 10; ++i)
    for (int r = 0; r < 12; ++r)
      for (int c = 0; c < 7; ++c)
        codes_[static_cast<size_t>(i * kInputs + r * 7 + c)] = kDigits[i][r][c] == '#' ? 1.f : -1.f;
}

std::unique_ptr<Layer> Rbf::from_config(const Config& c) {
  const auto classes = c.get<int64_t>("classes", 10);
  if (classes < 2 || classes > 10)
    c.at("classes").fail(
        cat("rbf has the codes of 10 classes (the digits' bitmaps); classes must be in [2, 10], got ", classes));
  return std::make_unique<Rbf>(classes);
}

Shape Rbf::output_shape(const Shape& x) const {
  if (x.numel() != kInputs)
    throw ShapeError(cat("rbf takes the ", kInputs, " outputs of LeNet-5's F6 (a 7x12 code per class); its input is ",
                         x.str(), " (", x.numel(), " values): put a dense layer of 84 units in front"));
  return Shape{classes_};
}

void Rbf::forward(ConstTensorView x, TensorView y, const StepContext&) {
  const int64_t k = classes_;
  parallel_chunks(x.batch(), grain_for(k * kInputs), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.data() + r * kInputs;
      for (int64_t i = 0; i < k; ++i) {
        const float* ci = code(i);
        double d = 0;  // (distances reach hundreds: summed in double)
        for (int64_t j = 0; j < kInputs; ++j) d += static_cast<double>(xr[j] - ci[j]) * (xr[j] - ci[j]);
        y.data()[r * k + i] = static_cast<float>(-d);
      }
    }
  });
}

void Rbf::backward(ConstTensorView x, ConstTensorView, ConstTensorView dy, TensorView dx, const StepContext&) {
  if (dx.empty()) return;
  const int64_t k = classes_;
  parallel_chunks(x.batch(), grain_for(k * kInputs), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.data() + r * kInputs;
      const float* dyr = dy.data() + r * k;
      float* dxr = dx.data() + r * kInputs;
      float sum = 0;
      for (int64_t i = 0; i < k; ++i) sum += dyr[i];
      // -2 sum_i dy_i (x_j - c_ij) = -2 (x_j sum_i dy_i - sum_i dy_i c_ij)
      for (int64_t j = 0; j < kInputs; ++j) {
        float dc = 0;
        for (int64_t i = 0; i < k; ++i) dc += dyr[i] * code(i)[j];
        dxr[j] = -2 * (xr[j] * sum - dc);
      }
    }
  });
}

}  // namespace hubel::layers

namespace hubel::layers {

// Decomposed: y[k] = -sum_j (x[j] - code_k[j])^2 as x [N, 1, 84] minus the codes [K, 84],
// squared and summed over the last axis, negated.
void Rbf::to_onnx(onnx::Graph& g, std::span<const std::string> x, std::span<const Shape>, const std::string& y) const {
  const std::string n = name();
  const std::string x3 =
      g.op("Unsqueeze", {x[0], g.constant_i64(n + "_axis", {1}, std::vector<int64_t>{1})}, n + "_rows");
  const std::string d =
      g.op("Sub", {x3, g.constant(n + "_codes", {classes_, kInputs}, {codes_.data(), size_t(classes_ * kInputs)})},
           n + "_differences");
  g.node("Neg", {g.reduce("ReduceSumSquare", d, {2}, false, n + "_distances")}, {y});
}

}  // namespace hubel::layers
