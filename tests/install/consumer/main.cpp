// A user's program on the installed hubel: trains the spirals with checkpoints every 20
// steps, stops at step 30 as a time limit would, resumes from its own run directory and
// finishes; checks that it resumed at step 30 and that the loss went down.
#include <cstdio>
#include <filesystem>

#include "comm/communicator.hpp"
#include "datasets/loaders.hpp"
#include "framework/run.hpp"
#include "framework/runtime.hpp"
#include "layers/builtin.hpp"

int main() {
  using namespace hubel;
  const std::string dir = (std::filesystem::temp_directory_path() / "hubel-consumer-run").string();
  std::filesystem::remove_all(dir);
  auto run = [&](const std::string& resume, int64_t max_steps) {
    Experiment exp = Experiment::load(CONSUMER_DIR "/consumer.yaml", {"train.max_steps=" + std::to_string(max_steps)});
    BuiltModel model = build_model(exp.model, layers::builtin_registry());
    datasets::Splits data = datasets::open(exp.data);
    comm::LocalCommunicator comm;
    Runtime runtime(1);
    datasets::Loaders loaders(data, exp.train, 0, 1);
    Run r(exp, model, comm, loaders.run_data(), {.run_dir = dir, .resume = resume});
    return std::make_pair(runtime.run([&] { return r.train(); }), r.resumed_from());
  };
  const auto [first, none] = run("", 30);      // stopped at step 30, as by a time limit
  const auto [second, from] = run("auto", 0);  // continues from the run's own checkpoint
  std::printf("consumer: %lld steps, resumed from %s, loss %.4f -> %.4f\n", static_cast<long long>(second.steps),
              from.c_str(), first.history.front().train_loss, second.history.back().train_loss);
  const bool down = second.history.back().train_loss < first.history.front().train_loss;
  return from.ends_with("ckpt-000000030.h5") && second.steps == 125 && down ? 0 : 1;
}
