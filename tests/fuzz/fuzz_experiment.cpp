// libFuzzer target: the experiment-file parser with --set overrides. The input is YAML; a
// line "---set a.b=value" after it is an override. The experiment is read, the model built
// and, when it fits, allocated for a batch of 2 (a layer of a billion units must be refused
// before any allocation: -rss_limit_mb catches one that is not).
#include <string>
#include <vector>

#include "framework/config.hpp"
#include "framework/error.hpp"
#include "framework/experiment.hpp"
#include "framework/optimizer.hpp"
#include "layers/builtin.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> sets;
  for (size_t at = text.find("\n---set "); at != std::string::npos; at = text.find("\n---set ")) {
    const size_t end = text.find('\n', at + 1);
    sets.push_back(text.substr(at + 8, end == std::string::npos ? std::string::npos : end - at - 8));
    text.erase(at, end == std::string::npos ? std::string::npos : end - at);
  }
  try {
    hubel::Config root = hubel::Config::parse(text, "fuzz.yaml");
    for (const auto& s : sets) root.apply_override(s);
    hubel::Experiment e = hubel::Experiment::from_config(root);
    hubel::BuiltModel m = hubel::build_model(e.model, hubel::layers::builtin_registry());
    // Models that fit in the fuzzer's memory limit are built (the rest is what the memory
    // check in Net::build is for; tests cover it).
    if (m.net.memory_bytes(2) < (int64_t{64} << 20)) {
      m.net.build(2, 1);
      hubel::Optimizer::create(e.optimizer, m.net);
    }
  } catch (const hubel::Error&) {
  }
  return 0;
}
