// Parameter initializers: zeros, constant, uniform, normal, Xavier/Glorot, He/Kaiming and
// LeCun (each uniform or normal), drawn from a seeded generator.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace hubel {

class Config;
class Rng;

struct Init {
  enum class Kind {
    Zeros,
    Constant,
    Uniform,
    Normal,
    XavierUniform,
    XavierNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal
  };
  Kind kind = Kind::Zeros;
  // Constant: a = value. Uniform: [a, b). Normal: mean a, standard deviation b.
  // Scaled kinds: a = gain (multiplies the standard deviation / the bound).
  double a = 0, b = 0;

  static Init zeros() { return {Kind::Zeros, 0, 0}; }
  static Init constant(double v) { return {Kind::Constant, v, 0}; }
  static Init uniform(double lo, double hi) { return {Kind::Uniform, lo, hi}; }
  static Init normal(double mean, double std) { return {Kind::Normal, mean, std}; }
  static Init scaled(Kind k, double gain = 1.0) { return {k, gain, 0}; }

  // Reads an initializer: a name ("he_normal"), a number (a constant), or a map
  // ({type: uniform, low: -0.1, high: 0.1}, {type: normal, mean: 0, std: 0.01},
  //  {type: xavier_uniform, gain: 1.0}, {type: constant, value: 0.1}).
  static Init parse(const Config& c);
  std::string str() const;
};

// Fills w according to init. fan_in / fan_out are the number of inputs feeding one
// output unit and of outputs fed by one input unit (for a convolution: C*k*k and K*k*k).
void initialize(std::span<float> w, const Init& init, int64_t fan_in, int64_t fan_out, Rng& rng);

}  // namespace hubel
