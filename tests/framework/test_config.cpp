// Experiment-file reading: typed values, and errors that name file, line and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/experiment.hpp"
#include "tests/expect_error.hpp"

namespace hubel {

namespace {

template <class F>
std::string error_of(F&& f) {
  return test::error_of<ConfigError>(std::forward<F>(f));
}

const char* kText =
    "model:\n"
    "  input: [1, 28, 28]\n"
    "  units: 64\n"
    "optimizer:\n"
    "  lr: 0.05\n"
    "  nesterov: true\n"
    "  name: sgd\n"
    "layers:\n"
    "  - {type: dense, units: 10}\n"
    "  - {type: relu}\n";

}  // namespace

TEST(Config, TypedValues) {
  Config c = Config::parse(kText, "exp.yaml");
  EXPECT_EQ(c.at("model").get<std::vector<int64_t>>("input"), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(c.at("model").get<int>("units"), 64);
  EXPECT_DOUBLE_EQ(c.at("optimizer").get<double>("lr"), 0.05);
  EXPECT_TRUE(c.at("optimizer").get<bool>("nesterov"));
  EXPECT_EQ(c.at("optimizer").get<std::string>("name"), "sgd");
  EXPECT_EQ(c.at("optimizer").get<double>("momentum", 0.9), 0.9);
  auto items = c.at("layers").items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].get<std::string>("type"), "relu");
  EXPECT_EQ(items[1].path(), "layers[1]");
}

TEST(Config, MissingKeyNamesFileLineAndKey) {
  Config c = Config::parse(kText, "exp.yaml");
  const std::string msg = error_of([&] { c.at("optimizer").get<double>("momentum"); });
  EXPECT_NE(msg.find("exp.yaml:5:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("optimizer.momentum"), std::string::npos) << msg;
}

TEST(Config, WrongTypeNamesExpectedTypeAndValue) {
  Config c = Config::parse(kText, "exp.yaml");
  const std::string msg = error_of([&] { c.at("optimizer").get<int>("name"); });
  EXPECT_NE(msg.find("exp.yaml:7:9"), std::string::npos) << msg;
  EXPECT_NE(msg.find("optimizer.name"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected an integer, found 'sgd'"), std::string::npos) << msg;
  const std::string msg2 = error_of([&] { c.at("model").get<int>("input"); });
  EXPECT_NE(msg2.find("found a list"), std::string::npos) << msg2;
  // 0.05 is not an integer either.
  EXPECT_NE(error_of([&] { c.at("optimizer").get<int64_t>("lr"); }).find("expected an integer"), std::string::npos);
}

TEST(Config, UnknownKeyIsAnErrorWithItsLine) {
  Config c = Config::parse(kText, "exp.yaml");
  Config opt = c.at("optimizer");
  opt.get<double>("lr");
  opt.get<bool>("nesterov");
  const std::string msg = error_of([&] { opt.finish(); });
  EXPECT_NE(msg.find("exp.yaml:7:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'name'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("known keys here: lr, nesterov"), std::string::npos) << msg;
  opt.get<std::string>("name");
  EXPECT_NO_THROW(opt.finish());
}

TEST(Config, NotYamlGivesTheLine) {
  const std::string msg = error_of([] { Config::parse("model:\n  input: [1, 2\n  x: }\n", "bad.yaml"); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid YAML"), std::string::npos) << msg;
  EXPECT_NE(
      error_of([] { Config::parse("- a\n- b\n", "list.yaml"); }).find("list.yaml: an experiment file is a YAML map"),
      std::string::npos);
}

TEST(Config, MissingFile) {
  const std::string msg = error_of([] { Config::load_file("/nonexistent/exp.yaml"); });
  EXPECT_NE(msg.find("/nonexistent/exp.yaml: cannot open"), std::string::npos) << msg;
}

TEST(Config, OverridesKeepTypesAndAreNamedInErrors) {
  Config c = Config::parse(kText, "exp.yaml");
  c.apply_override("optimizer.lr=0.5");
  c.apply_override("layers.0.units=32");
  c.apply_override("layers[1].type=tanh");
  c.apply_override("train.epochs=3");  // creates a new section
  EXPECT_DOUBLE_EQ(c.at("optimizer").get<double>("lr"), 0.5);
  EXPECT_EQ(c.at("layers").items()[0].get<int>("units"), 32);
  EXPECT_EQ(c.at("layers").items()[1].get<std::string>("type"), "tanh");
  EXPECT_EQ(c.at("train").get<int>("epochs"), 3);
  c.apply_override("model.units=many");
  const std::string msg = error_of([&] { c.at("model").get<int>("units"); });
  EXPECT_NE(msg.find("--set model.units=many"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { c.apply_override("layers.7.units=1"); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_override("noequals"); }).find("expected key.path=value"), std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_override("optimizer.lr.x=1"); }).find("is a value"), std::string::npos);
}

TEST(Config, ChoiceListsTheChoices) {
  Config c = Config::parse("optimizer: {type: sgdd}\n", "e.yaml");
  const std::string msg = error_of([&] { c.at("optimizer").choice("type", {"sgd", "adam"}); });
  EXPECT_NE(msg.find("e.yaml:1:19"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected one of: sgd, adam"), std::string::npos) << msg;
}

TEST(Experiment, UnknownSectionIsAnError) {
  Config c = Config::parse("model: {}\ndata: {}\noptimizer: {}\ntrian: {epochs: 1}\n", "e.yaml");
  const std::string msg = error_of([&] { Experiment::from_config(c); });
  EXPECT_NE(msg.find("e.yaml:4:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'trian'"), std::string::npos) << msg;
}

TEST(Experiment, TrainSectionIsChecked) {
  Config c = Config::parse("model: {}\ndata: {}\noptimizer: {}\ntrain: {epochs: 0}\n", "e.yaml");
  EXPECT_NE(error_of([&] { Experiment::from_config(c); }).find("epochs must be positive"), std::string::npos);
  Config d = Config::parse("model: {}\ndata: {}\noptimizer: {}\ntrain: {epochs: 2, batch: 16, seed: 5, max_steps: 9}\n",
                           "e.yaml");
  Experiment e = Experiment::from_config(d);
  EXPECT_EQ(e.train.epochs, 2);
  EXPECT_EQ(e.train.batch, 16);
  EXPECT_EQ(e.train.seed, 5u);
  EXPECT_EQ(e.train.max_steps, 9);
}

}  // namespace hubel

namespace hubel {
TEST(Config, AssignmentRebindsTheHandleAndLeavesTheDocumentAlone) {
  const Config root = Config::parse("a: 1\nb: 2\n", "t.yaml");
  Config x = root.at("a");
  x = root.at("b");  // yaml-cpp's node assignment would write 2 into a
  EXPECT_EQ(x.as<int>(), 2);
  EXPECT_EQ(root.get<int>("a"), 1);
  std::optional<Config> o = root.at("a");
  o = root.at("b");
  EXPECT_EQ(root.get<int>("a"), 1);
}
}  // namespace hubel

namespace hubel {
TEST(Config, KeysThatAreMapsOrListsAreErrorsNotCrashes) {
  const Config root = Config::parse("model: {? {a: 1} : 2}\n", "k.yaml");
  EXPECT_THROW(root.at("model").keys(), ConfigError);
  const Config root2 = Config::parse("train: {[1, 2]: 3}\n", "k.yaml");
  root2.find("train");
  EXPECT_THROW(root2.at("train").finish(), ConfigError);
}
}  // namespace hubel
