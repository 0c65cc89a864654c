// The data section of an experiment.
#include "datasets/open.hpp"

#include "datasets/spirals.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"

namespace hubel::datasets {

namespace {

Splits open_spirals(const Config& c) {
  Spirals::Options o;
  o.classes = c.get<int64_t>("classes", 2);
  o.turns = c.get<double>("turns", 1.0);
  o.noise = c.get<double>("noise", 0.05);
  const auto seed = c.get<uint64_t>("seed", 1);
  const auto train = c.get<int64_t>("train", 2000);
  const auto test = c.get<int64_t>("test", 1000);
  if (o.classes < 2 || o.classes > 1000) c.fail(cat("spirals.classes must be in [2, 1000]; got ", o.classes));
  if (train <= 0) c.fail(cat("spirals.train must be positive; got ", train));
  if (test < 0) c.fail(cat("spirals.test must be >= 0; got ", test));
  if (!(o.noise >= 0)) c.fail(cat("spirals.noise must be >= 0; got ", o.noise));
  c.finish();
  Splits s;
  o.samples = train;
  o.seed = seed;
  s.train = std::make_unique<Spirals>(o, "train");
  if (test > 0) {
    o.samples = test;
    o.seed = seed + 0x9e3779b9ULL;  // an independent draw from the same distribution
    s.test = std::make_unique<Spirals>(o, "test");
  }
  return s;
}

}  // namespace

Splits open(const Config& data) {
  Splits s;
  if (auto sp = data.find("spirals")) {
    s = open_spirals(*sp);
  } else {
    data.fail("no data source: give 'spirals: {...}' (a generated set)");
  }
  data.finish();
  return s;
}

}  // namespace hubel::datasets
