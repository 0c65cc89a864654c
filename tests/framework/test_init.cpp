// Initializers: values, variances, seeding and parsing.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/init.hpp"
#include "framework/random.hpp"

namespace hubel {

namespace {
struct Moments {
  double mean, std, min, max;
};
Moments moments(const std::vector<float>& v) {
  double s = 0, s2 = 0, lo = 1e30, hi = -1e30;
  for (float x : v) {
    s += x;
    s2 += static_cast<double>(x) * x;
    lo = std::min<double>(lo, x);
    hi = std::max<double>(hi, x);
  }
  const double m = s / v.size();
  return {m, std::sqrt(s2 / v.size() - m * m), lo, hi};
}
std::vector<float> draw(const Init& init, int64_t fan_in, int64_t fan_out, uint64_t seed = 3, size_t n = 200000) {
  std::vector<float> v(n);
  Rng rng(seed);
  initialize(v, init, fan_in, fan_out, rng);
  return v;
}
}  // namespace

TEST(Init, ConstantsAndRanges) {
  for (float x : draw(Init::constant(0.25), 1, 1, 3, 10)) EXPECT_EQ(x, 0.25f);
  for (float x : draw(Init::zeros(), 1, 1, 3, 10)) EXPECT_EQ(x, 0.0f);
  auto m = moments(draw(Init::uniform(-0.2, 0.6), 1, 1));
  EXPECT_GE(m.min, -0.2);
  EXPECT_LT(m.max, 0.6);
  EXPECT_NEAR(m.mean, 0.2, 0.005);
}

TEST(Init, ScaledVariances) {
  // He normal: std sqrt(2 / fan_in); Xavier uniform: bound sqrt(6 / (fan_in + fan_out));
  // LeCun normal: std sqrt(1 / fan_in).
  EXPECT_NEAR(moments(draw(Init::scaled(Init::Kind::HeNormal), 50, 10)).std, std::sqrt(2.0 / 50), 0.002);
  auto x = moments(draw(Init::scaled(Init::Kind::XavierUniform), 30, 70));
  EXPECT_NEAR(x.max, std::sqrt(6.0 / 100), 0.001);
  EXPECT_NEAR(x.std, std::sqrt(6.0 / 100) / std::sqrt(3.0), 0.002);
  EXPECT_NEAR(moments(draw(Init::scaled(Init::Kind::LecunNormal), 25, 1)).std, 0.2, 0.002);
  EXPECT_NEAR(moments(draw(Init::scaled(Init::Kind::HeUniform, 2.0), 24, 1)).max, 2.0 * std::sqrt(6.0 / 24), 0.002);
  EXPECT_NEAR(moments(draw(Init::scaled(Init::Kind::XavierNormal), 10, 40)).std, std::sqrt(2.0 / 50), 0.002);
  EXPECT_NEAR(moments(draw(Init::scaled(Init::Kind::LecunUniform), 12, 1)).max, 0.5, 0.002);
  EXPECT_NEAR(moments(draw(Init::normal(1.0, 0.1), 1, 1)).std, 0.1, 0.001);
}

TEST(Init, SameSeedSameValues) {
  EXPECT_EQ(draw(Init::scaled(Init::Kind::HeNormal), 5, 5, 11, 100),
            draw(Init::scaled(Init::Kind::HeNormal), 5, 5, 11, 100));
  EXPECT_NE(draw(Init::scaled(Init::Kind::HeNormal), 5, 5, 11, 100),
            draw(Init::scaled(Init::Kind::HeNormal), 5, 5, 12, 100));
}

TEST(Init, Parsing) {
  Config c = Config::parse(
      "a: he_normal\nb: 0.1\nc: {type: uniform, low: -1, high: 1}\nd: {type: normal, std: 0.02}\n"
      "e: {type: xavier_uniform, gain: 2}\nf: bogus\ng: {type: uniform, low: 1, high: 0}\nh: {type: normal, sd: 1}\n",
      "i.yaml");
  EXPECT_EQ(Init::parse(c.at("a")).kind, Init::Kind::HeNormal);
  EXPECT_EQ(Init::parse(c.at("b")).kind, Init::Kind::Constant);
  EXPECT_DOUBLE_EQ(Init::parse(c.at("b")).a, 0.1);
  EXPECT_DOUBLE_EQ(Init::parse(c.at("c")).b, 1.0);
  EXPECT_DOUBLE_EQ(Init::parse(c.at("d")).b, 0.02);
  EXPECT_DOUBLE_EQ(Init::parse(c.at("e")).a, 2.0);
  EXPECT_THROW(Init::parse(c.at("f")), ConfigError);
  EXPECT_THROW(Init::parse(c.at("g")), ConfigError);
  EXPECT_THROW(Init::parse(c.at("h")), ConfigError);  // unknown key sd
}

}  // namespace hubel
