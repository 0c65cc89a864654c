// Parameter initializers.
#include "framework/init.hpp"

#include <cmath>
#include <map>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/random.hpp"

namespace hubel {

namespace {

const std::map<std::string, Init::Kind>& kinds() {
  static const std::map<std::string, Init::Kind> k = {
      {"zeros", Init::Kind::Zeros},
      {"constant", Init::Kind::Constant},
      {"uniform", Init::Kind::Uniform},
      {"normal", Init::Kind::Normal},
      {"xavier_uniform", Init::Kind::XavierUniform},
      {"glorot_uniform", Init::Kind::XavierUniform},
      {"xavier_normal", Init::Kind::XavierNormal},
      {"glorot_normal", Init::Kind::XavierNormal},
      {"he_uniform", Init::Kind::HeUniform},
      {"kaiming_uniform", Init::Kind::HeUniform},
      {"he_normal", Init::Kind::HeNormal},
      {"kaiming_normal", Init::Kind::HeNormal},
      {"lecun_uniform", Init::Kind::LecunUniform},
      {"lecun_normal", Init::Kind::LecunNormal},
  };
  return k;
}

Init::Kind kind_named(const std::string& name, const Config& where) {
  auto it = kinds().find(name);
  if (it == kinds().end()) {
    std::string list;
    for (const auto& [n, k] : kinds()) list += (list.empty() ? "" : ", ") + n;
    where.fail(cat("unknown initializer '", name, "'; known: ", list));
  }
  return it->second;
}

Init with_defaults(Init::Kind k) {
  switch (k) {
    case Init::Kind::Uniform:
      return Init::uniform(-0.05, 0.05);
    case Init::Kind::Normal:
      return Init::normal(0.0, 0.01);
    case Init::Kind::Zeros:
    case Init::Kind::Constant:
      return {k, 0, 0};
    default:
      return Init::scaled(k, 1.0);
  }
}

}  // namespace

Init Init::parse(const Config& c) {
  if (c.is_scalar()) {
    // A number is a constant; anything else names an initializer.
    const std::string s = c.as<std::string>();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end && *end == '\0' && end != s.c_str()) return constant(v);
    return with_defaults(kind_named(s, c));
  }
  const std::string type = c.get<std::string>("type");
  Init init = with_defaults(kind_named(type, c.at("type")));
  switch (init.kind) {
    case Kind::Zeros:
      break;
    case Kind::Constant:
      init.a = c.get<double>("value");
      break;
    case Kind::Uniform:
      init.a = c.get<double>("low", init.a);
      init.b = c.get<double>("high", init.b);
      if (!(init.a < init.b)) c.fail(cat("uniform initializer needs low < high; got low ", init.a, ", high ", init.b));
      break;
    case Kind::Normal:
      init.a = c.get<double>("mean", init.a);
      init.b = c.get<double>("std", init.b);
      if (!(init.b >= 0)) c.fail(cat("normal initializer needs std >= 0; got ", init.b));
      break;
    default:
      init.a = c.get<double>("gain", 1.0);
      if (!(init.a > 0)) c.fail(cat("initializer gain must be positive; got ", init.a));
  }
  c.finish();
  return init;
}

std::string Init::str() const {
  for (const auto& [n, k] : kinds())
    if (k == kind) {
      switch (kind) {
        case Kind::Zeros:
          return n;
        case Kind::Constant:
          return cat(n, "(", a, ")");
        case Kind::Uniform:
          return cat(n, "(", a, ", ", b, ")");
        case Kind::Normal:
          return cat(n, "(", a, ", ", b, ")");
        default:
          return a == 1.0 ? n : cat(n, "(gain ", a, ")");
      }
    }
  return "?";
}

void initialize(std::span<float> w, const Init& init, int64_t fan_in, int64_t fan_out, Rng& rng) {
  fan_in = std::max<int64_t>(fan_in, 1);
  fan_out = std::max<int64_t>(fan_out, 1);
  auto fill_uniform = [&](double lo, double hi) {
    for (auto& v : w) v = static_cast<float>(rng.uniform(lo, hi));
  };
  auto fill_normal = [&](double mean, double std) {
    for (auto& v : w) v = static_cast<float>(mean + std * rng.normal());
  };
  // Variance targets: Xavier 2/(fan_in+fan_out), He 2/fan_in, LeCun 1/fan_in. A uniform
  // distribution on [-l, l] has variance l^2/3.
  const double g = init.a;
  switch (init.kind) {
    case Init::Kind::Zeros:
      std::fill(w.begin(), w.end(), 0.0f);
      break;
    case Init::Kind::Constant:
      std::fill(w.begin(), w.end(), static_cast<float>(init.a));
      break;
    case Init::Kind::Uniform:
      fill_uniform(init.a, init.b);
      break;
    case Init::Kind::Normal:
      fill_normal(init.a, init.b);
      break;
    case Init::Kind::XavierUniform: {
      const double l = g * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
      fill_uniform(-l, l);
      break;
    }
    case Init::Kind::XavierNormal:
      fill_normal(0, g * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)));
      break;
    case Init::Kind::HeUniform: {
      const double l = g * std::sqrt(6.0 / static_cast<double>(fan_in));
      fill_uniform(-l, l);
      break;
    }
    case Init::Kind::HeNormal:
      fill_normal(0, g * std::sqrt(2.0 / static_cast<double>(fan_in)));
      break;
    case Init::Kind::LecunUniform: {
      const double l = g * std::sqrt(3.0 / static_cast<double>(fan_in));
      fill_uniform(-l, l);
      break;
    }
    case Init::Kind::LecunNormal:
      fill_normal(0, g * std::sqrt(1.0 / static_cast<double>(fan_in)));
      break;
  }
}

}  // namespace hubel
