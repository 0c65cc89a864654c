// Activation factories and descriptions.
#include "layers/activations.hpp"

#include "framework/config.hpp"
#include "framework/onnx.hpp"

namespace hubel::layers {

std::string ScaledTanhOp::describe() const { return cat(a, " tanh(", s, " x)"); }
std::string LeakyReluOp::describe() const { return cat("slope ", slope); }
std::string EluOp::describe() const { return cat("alpha ", alpha); }

std::unique_ptr<Layer> make_sigmoid(const Config&) { return std::make_unique<Sigmoid>(); }
std::unique_ptr<Layer> make_tanh(const Config&) { return std::make_unique<Tanh>(); }
std::unique_ptr<Layer> make_relu(const Config&) { return std::make_unique<Relu>(); }

std::unique_ptr<Layer> make_scaled_tanh(const Config& c) {
  ScaledTanhOp op;
  op.a = c.get<float>("amplitude", op.a);
  op.s = c.get<float>("slope", op.s);
  if (!(op.a > 0) || !(op.s > 0)) c.fail("scaled_tanh needs amplitude > 0 and slope > 0");
  return std::make_unique<ScaledTanh>(op);
}

std::unique_ptr<Layer> make_leaky_relu(const Config& c) {
  LeakyReluOp op;
  op.slope = c.get<float>("slope", op.slope);
  if (!(op.slope >= 0 && op.slope < 1)) c.at("slope").fail(cat("leaky_relu slope must be in [0, 1); got ", op.slope));
  return std::make_unique<LeakyRelu>(op);
}

std::unique_ptr<Layer> make_elu(const Config& c) {
  EluOp op;
  op.alpha = c.get<float>("alpha", op.alpha);
  if (!(op.alpha > 0)) c.at("alpha").fail(cat("elu alpha must be positive; got ", op.alpha));
  return std::make_unique<Elu>(op);
}

// ONNX export.
void SigmoidOp::onnx(onnx::Graph& g, const std::string& x, const std::string& y) const { g.node("Sigmoid", {x}, {y}); }
void TanhOp::onnx(onnx::Graph& g, const std::string& x, const std::string& y) const { g.node("Tanh", {x}, {y}); }
// a * tanh(s * x), decomposed.
void ScaledTanhOp::onnx(onnx::Graph& g, const std::string& x, const std::string& y) const {
  const std::string t = g.op("Tanh", {g.op("Mul", {x, g.scalar(y + "_s", s)}, y + "_in")}, y + "_tanh");
  g.node("Mul", {t, g.scalar(y + "_a", a)}, {y});
}
void ReluOp::onnx(onnx::Graph& g, const std::string& x, const std::string& y) const { g.node("Relu", {x}, {y}); }
void LeakyReluOp::onnx(onnx::Graph& g, const std::string& x, const std::string& y) const {
  g.node("LeakyRelu", {x}, {y}, {onnx::attr("alpha", slope)});
}
void EluOp::onnx(onnx::Graph& g, const std::string& x, const std::string& y) const {
  g.node("Elu", {x}, {y}, {onnx::attr("alpha", alpha)});
}

}  // namespace hubel::layers
