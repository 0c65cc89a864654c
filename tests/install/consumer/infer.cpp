// A user's inference program on the installed hubel: loads the checkpoint the consumer
// trained (hubel::Model, no MPI, no training state), classifies the spirals' test points
// from two threads at once, and checks that both agree and beat chance.
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "datasets/spirals.hpp"
#include "inference/model.hpp"

int main() {
  using namespace hubel;
  const Model model = Model::load((std::filesystem::temp_directory_path() / "hubel-consumer-run/checkpoints").string());
  // The points as the experiment generated its test split (data.spirals, test: 200).
  const datasets::Spirals test({200, 2, 1.0, 0.05, 1 + 0x9e3779b9ULL}, "test");
  std::vector<int64_t> ids(200);
  for (int64_t i = 0; i < 200; ++i) ids[static_cast<size_t>(i)] = i;
  Tensor x(Shape{200, 2});
  std::vector<int32_t> labels(200);
  test.read(ids, x.view(), labels.data(), TensorView());
  std::vector<Model::Class> a, b;
  std::thread t([&] { a = model.classify(x.data(), 200); });
  b = model.classify(x.data(), 200);
  t.join();
  int correct = 0, same = 0;
  for (size_t i = 0; i < 200; ++i) {
    correct += a[i].label == labels[i];
    same += a[i].label == b[i].label && a[i].probability == b[i].probability;
  }
  std::printf("infer: %s, %lld parameters, accuracy %.3f on 200 points, both threads agree on %d\n",
              model.input_shape().str().c_str(), static_cast<long long>(model.parameters()), correct / 200.0, same);
  return same == 200 && correct > 110 ? 0 : 1;
}
