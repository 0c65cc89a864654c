// Builds a small network with the installed hubel, trains it a few epochs on the spirals
// and checks that the loss went down.
#include <cstdio>

#include "comm/communicator.hpp"
#include "datasets/loader.hpp"
#include "datasets/spirals.hpp"
#include "framework/config.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "framework/runtime.hpp"
#include "framework/schedule.hpp"
#include "framework/trainer.hpp"
#include "layers/builtin.hpp"

int main() {
  using namespace hubel;
  Config c = Config::parse(
      "model: {input: [2], layers: [{type: dense, units: 32}, {type: tanh}, {type: dense, units: 2}], loss: softmax_cross_entropy}\n"
      "data: {}\noptimizer: {type: sgd, lr: 0.1, momentum: 0.9}\ntrain: {epochs: 5, batch: 16}\n",
      "consumer.yaml");
  Experiment exp = Experiment::from_config(c);
  Model m = build_model(exp.model, layers::builtin_registry());
  m.net.build(exp.train.batch, exp.train.seed);
  auto opt = Optimizer::create(exp.optimizer, m.net);
  auto sched = Schedule::create(exp.schedule, opt->base_lr(), exp.train.epochs);
  comm::LocalCommunicator comm;
  datasets::Spirals data({400, 2, 1.0, 0.05, 3}, "train");
  Runtime runtime(1);
  Trainer trainer(m.net, *m.loss, *opt, *sched, comm, exp.train);
  datasets::Loader loader(data, nullptr, {exp.train.batch, 0, 1, true, false, false, exp.train.seed, 2});
  auto h = runtime.run([&] { return trainer.fit(loader, nullptr); });
  std::printf("consumer: loss %.4f -> %.4f\n", h.front().train_loss, h.back().train_loss);
  return h.back().train_loss < h.front().train_loss ? 0 : 1;
}
