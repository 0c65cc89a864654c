// The Net: graph construction, shape inference, arenas, forward and backward.
#include "framework/net.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include "framework/config.hpp"
#include "framework/onnx.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "framework/registry.hpp"

namespace hubel {

namespace {
constexpr int kNetInput = -1;
}

struct Net::Impl {
  struct Edge {
    int node;  // consumer
    int slot;  // which of its inputs
  };
  struct Node {
    std::unique_ptr<Layer> layer;
    std::vector<int> inputs;  // producer node per input slot; kNetInput for the network input
    std::vector<Shape> in_shapes;
    Shape out;
    std::vector<ParamSpec> specs;
    std::vector<Edge> consumers;
    std::vector<Param> params;
    bool frozen = false;
    bool needs_grad = false;  // has trainable parameters, or feeds from a node that has
    int64_t grads_done = 0;   // after this node's backward, gradients [0, grads_done) are final
    Tensor y;                 // training: the output, kept for backward
    float* yp = nullptr;      // where the output is: y, or (inference) a slab shared with others
    // One gradient buffer per consumer (at least one): each consumer overwrites its own,
    // and the extra ones are added into grad[0] in consumer order before backward. They
    // point into grad_slabs, shared by buffers whose lifetimes do not overlap.
    std::vector<float*> grad;
    // Per-call views, sized once so the step does not allocate.
    std::vector<ConstTensorView> x_views;
    std::vector<TensorView> dx_views;
    std::vector<int> dx_buffer;  // index into the producer's grad list, per slot
    // Fusion (Layer::fuse): this node computes node fused_next's work in its own passes,
    // or (fused_into) its work is done in that node's.
    int fused_next = -1, fused_into = -1;
    double forward_seconds = 0, backward_seconds = 0;
    int64_t forward_calls = 0;
  };
  bool profiling = false;
  bool fusion = true;
  // After bind: offers each node whose output only a parameter-free one-input node reads
  // that fusion (Layer::fuse), in model order.
  void plan_fusion();

  Shape input_shape;
  std::vector<Node> nodes;
  std::map<std::string, int> by_name;
  std::map<std::string, int> type_counts;
  int64_t max_batch = 0;
  Tensor input;
  AlignedBuffer params, grads;
  std::vector<AlignedBuffer> grad_slabs;
  std::vector<AlignedBuffer> output_slabs;  // inference: outputs whose lifetimes do not overlap share one
  bool inference = false;
  Precision precision = Precision::fp32;
  void plan_gradient_buffers(int64_t max_batch);
  void plan_output_buffers(int64_t max_batch);
  // Arena layout: trainable parameters last layer first, so backward fills the gradient
  // arena from offset 0; then frozen parameters and buffers. Fills info, trainable_size
  // and each node's grads_done; returns each parameter's offset and sets `size`.
  std::vector<std::vector<int64_t>> lay_out_arena(int64_t& size);
  std::vector<ParamInfo> info;
  int64_t trainable_size = 0;  // floats of the arenas' trainable prefix

  ConstTensorView output_of(int producer, int64_t n) const {
    if (producer == kNetInput) return ConstTensorView(input.data(), input_shape.with_batch(n));
    const Node& p = nodes[producer];
    return ConstTensorView(p.yp, p.out.with_batch(n));
  }
  const Shape& shape_of(int producer) const { return producer == kNetInput ? input_shape : nodes[producer].out; }
  std::string name_of(int producer) const { return producer == kNetInput ? kInput : nodes[producer].layer->name(); }
};

Net::Net(const Shape& input_sample_shape) : impl_(std::make_unique<Impl>()) {
  if (input_sample_shape.rank() < 1 || input_sample_shape.rank() > Shape::kMaxRank - 1)
    throw ShapeError(cat("the network input ", input_sample_shape.str(),
                         " must have 1 to 4 dimensions per sample (features; or C,W; C,H,W; C,D,H,W)"));
  for (int64_t d : input_sample_shape)
    if (d <= 0) throw ShapeError(cat("the network input ", input_sample_shape.str(), " has a non-positive dimension"));
  impl_->input_shape = input_sample_shape;
}

Net::Net(Net&&) noexcept = default;
Net& Net::operator=(Net&&) noexcept = default;
Net::~Net() = default;

std::string Net::unique_name(const std::string& type) { return cat(type, ++impl_->type_counts[type]); }

const Shape& Net::shape_of(const std::string& name) const {
  const Impl& m = *impl_;
  if (name == kInput) return m.input_shape;
  auto it = m.by_name.find(name);
  if (it == m.by_name.end()) throw ConfigError(cat("no layer named '", name, "' defined so far"));
  return m.shape_of(it->second);
}

Layer& Net::add(std::unique_ptr<Layer> layer, const std::vector<std::string>& inputs) {
  Impl& m = *impl_;
  if (built()) throw Error("Net::add after build(): add every layer before building");
  if (layer->name().empty()) layer->set_name(unique_name(layer->type()));
  const std::string& name = layer->name();
  if (name == kInput || m.by_name.count(name))
    throw ConfigError(
        cat("layer name '", name, "' is used twice (or is the reserved name 'input'); names must be unique"));

  Impl::Node node;
  if (inputs.empty()) {
    node.inputs.push_back(m.nodes.empty() ? kNetInput : static_cast<int>(m.nodes.size()) - 1);
  } else {
    for (const auto& in : inputs) {
      if (in == kInput) {
        node.inputs.push_back(kNetInput);
        continue;
      }
      auto it = m.by_name.find(in);
      if (it == m.by_name.end())
        throw ConfigError(cat("layer '", name, "': input '", in,
                              "' is not a layer defined before it (layers may only use earlier layers or 'input')"));
      node.inputs.push_back(it->second);
    }
  }
  const int arity = layer->arity();
  if (arity > 0 && static_cast<int>(node.inputs.size()) != arity)
    throw ConfigError(
        cat("layer '", name, "' (", layer->type(), ") takes ", arity, " input(s); ", node.inputs.size(), " given"));
  for (int p : node.inputs) node.in_shapes.push_back(m.shape_of(p));
  node.out = layer->output_shape(node.in_shapes);
  for (int64_t d : node.out)
    if (d <= 0)
      throw ShapeError(
          cat("layer '", name, "' (", layer->type(), ") would output ", node.out.str(), ": a non-positive size"));
  if (node.out.rank() < 1 || node.out.rank() > Shape::kMaxRank - 1)
    throw ShapeError(cat("layer '", name, "' (", layer->type(), ") output ", node.out.str(),
                         " has an unsupported number of dimensions"));
  node.specs = layer->param_specs(node.in_shapes);
  std::map<std::string, int> seen;
  for (const auto& s : node.specs)
    if (seen[s.name]++) throw Error(cat("layer '", name, "' declares parameter '", s.name, "' twice"));
  const int index = static_cast<int>(m.nodes.size());
  for (size_t slot = 0; slot < node.inputs.size(); ++slot) {
    const int p = node.inputs[slot];
    if (p != kNetInput) m.nodes[p].consumers.push_back({index, static_cast<int>(slot)});
  }
  node.layer = std::move(layer);
  m.by_name[name] = index;
  m.nodes.push_back(std::move(node));
  return *m.nodes.back().layer;
}

namespace {

// Reads model.layers into a Net, expanding blocks: a block is defined once under
// model.blocks with default parameters and a list of layers, and used in model.layers as
// {block: name, repeat: n, name: prefix, <parameter>: value, first: {<parameter>: value}}.
// Its layers are named "<prefix>.<layer>" (with ".<k>" after the prefix when repeated), a
// "$parameter" value reads the instance's value, and `inputs` inside a block name the
// block's own layers or `in`, the block's input (whatever precedes the block).
class ModelReader {
 public:
  ModelReader(Net& net, const Config& model, const LayerRegistry& registry)
      : net_(net), registry_(registry), blocks_(model.find("blocks")) {}

  void item(const Config& item) {
    if (!item.is_map())
      item.fail("each layer is a map with at least a 'type', e.g. {type: dense, units: 10}; or a {block: name}");
    if (item.has("block"))
      block(item);
    else
      layer(item, "", "", nullptr);
  }

 private:
  // Names become HDF5 group names in checkpoints ("/model/<layer>/<param>"): checked where
  // they are written, not at the first checkpoint an epoch later.
  static void check_name(const Config& item, const std::string& name) {
    for (char ch : name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.'))
        item.at("name").fail(cat(
            "layer name '", name, "' has '", ch,
            "': names may hold letters, digits, '_', '-' and '.' (they name the layer's parameters in checkpoints)"));
  }

  // {type: add, inputs: [main, shortcut], project: never | auto | always}: ResNet's
  // projection shortcut (option B) as a node of its own, a 1x1 convolution without bias
  // named "<add>_proj", strided to the main input's size, between the shortcut and the
  // add (`auto`: when the shapes differ). The add stays a plain join. Names the add if the
  // file did not, so the projection's name follows it.
  void project_shortcut(const Config& item, std::string& name, std::vector<std::string>& inputs) {
    const std::string project = item.choice("project", {"never", "auto", "always"}, "never");
    if (project == "never") return;
    if (inputs.size() != 2)
      item.fail(cat("a projected shortcut needs exactly two inputs [main, shortcut]; got ", inputs.size()));
    const Shape& main = net_.shape_of(inputs[0]);
    const Shape& cut = net_.shape_of(inputs[1]);
    if (project == "auto" && main == cut) return;
    if (main.rank() < 2 || main.rank() != cut.rank())
      item.fail(cat("the projection of the shortcut (input 1, ", cut.str(), ") to input 0 (", main.str(),
                    ") needs two inputs [channels, spatial...] of the same rank"));
    std::string strides;
    for (int d = 1; d < main.rank(); ++d) {
      const int64_t s = (cut[d] + main[d] - 1) / main[d];  // ceil
      if (main[d] > cut[d] || (cut[d] - 1) / s + 1 != main[d])
        item.fail(cat("cannot project the shortcut ", cut.str(), " to ", main.str(), ": spatial size ", cut[d],
                      " does not reduce to ", main[d], " by an integer stride"));
      strides += cat(d > 1 ? ", " : "", s);
    }
    if (name.empty()) name = net_.unique_name("add");
    const Config conv = Config::parse(
        cat("{type: conv, filters: ", main[0], ", kernel: 1, stride: [", strides, "], rounding: floor, bias: none}"),
        cat(item.where(), " (the projection of layer '", name, "')"));
    auto proj = registry_.make_layer("conv", conv);
    proj->set_name(name + "_proj");
    net_.add(std::move(proj), {inputs[1]});
    inputs[1] = name + "_proj";
  }

  // One layer; inside a block, `prefix` is "<instance>." and `in` the block's input.
  // Inside a block, `local` holds the block's layer names and `name` this layer's.
  void layer(const Config& item, const std::string& prefix, const std::string& in, const std::set<std::string>* local,
             std::string name = "") {
    const std::string type = item.get<std::string>("type");
    std::vector<std::string> inputs;
    if (auto i = item.find("inputs")) inputs = i->as<std::vector<std::string>>();
    if (!local) name = item.get<std::string>("name", "");
    check_name(item, name);
    if (local) {
      for (auto& s : inputs) {
        if (s == "in")
          s = in;
        else if (local->count(s))
          s = prefix + s;
        else
          item.at("inputs").fail(cat(
              "'", s,
              "' is not a layer of this block: inside a block, inputs name the block's layers, or 'in' for its input"));
      }
      name = prefix + name;
    }
    try {
      if (type == "add") project_shortcut(item, name, inputs);
      auto l = registry_.make_layer(type, item);
      if (!name.empty()) l->set_name(name);
      net_.add(std::move(l), inputs);
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      // Errors already located in the file pass through; others get this layer's place.
      if (msg.find(item.source()) == 0 || msg.find("--set") == 0) throw;
      item.fail(msg);
    } catch (const ShapeError& e) {
      item.fail(e.what());
    }
    item.finish();
  }

  void block(const Config& use) {
    const std::string kind = use.get<std::string>("block");
    if (!blocks_) use.fail(cat("there is no model.blocks section defining block '", kind, "'"));
    const auto def = blocks_->find(kind);
    if (!def) {
      std::string known;
      for (const auto& k : blocks_->keys()) known += (known.empty() ? "" : ", ") + k;
      use.at("block").fail(cat("no block named '", kind, "' in model.blocks (defined: ", known, ")"));
    }
    const std::string context = cat("block '", kind, "'");
    // Parameters: the defaults, then the instance's values; null defaults are required.
    Config::Vars vars;
    std::optional<Config> params = def->find("params");
    if (params)
      for (const auto& k : params->keys()) vars.emplace(k, params->at(k));
    const std::set<std::string> reserved{"block", "repeat", "name", "first"};
    for (const auto& k : use.keys()) {
      if (reserved.count(k)) continue;
      if (!vars.count(k))
        use.at(k).fail(cat("'", k, "' is not a parameter of ", context,
                           params ? cat(" (see its params)") : " (it declares no params)"));
      vars.insert_or_assign(k, use.at(k));
    }
    for (const auto& [k, v] : vars)
      if (v.is_null()) use.fail(cat(context, " needs a value for its parameter '", k, "'"));
    const int64_t repeat = use.get<int64_t>("repeat", 1);
    if (repeat < 1 || repeat > 10000) use.at("repeat").fail(cat("repeat must be in [1, 10000]; got ", repeat));
    std::string base = use.get<std::string>("name", "");
    check_name(use, base);
    if (base.empty()) base = cat(kind, ++block_counts_[kind]);
    std::optional<Config> first = use.find("first");
    const std::vector<Config> layers = def->at("layers").items();
    if (layers.empty()) def->at("layers").fail("a block needs at least one layer");
    // Local names: given, or the type and a count within the block ("relu1").
    std::set<std::string> local;
    std::vector<std::string> names;
    std::map<std::string, int> counts;
    for (const auto& l : layers) {
      if (l.is_map() && l.has("block")) l.fail("blocks do not nest: a block's layers are layers");
      if (!l.is_map()) l.fail("each layer is a map with at least a 'type'");
      std::string n = l.get<std::string>("name", "");
      check_name(l, n);
      if (n == "in") l.at("name").fail("'in' names the block's input; give the layer another name");
      if (n.empty()) n = cat(l.with_vars(vars, context).get<std::string>("type"), ++counts[l.get<std::string>("type")]);
      if (!local.insert(n).second) l.fail(cat("the block has two layers named '", n, "'"));
      names.push_back(n);
    }
    def->finish();
    for (int64_t r = 1; r <= repeat; ++r) {
      Config::Vars v = vars;
      if (r == 1 && first)
        for (const auto& k : first->keys()) {
          if (!vars.count(k)) first->at(k).fail(cat("'", k, "' is not a parameter of ", context));
          v.insert_or_assign(k, first->at(k));
        }
      const std::string instance = repeat > 1 ? cat(base, ".", r) : base;
      const std::string in = net_.size() ? net_.layer(net_.size() - 1).name() : Net::kInput;
      for (size_t i = 0; i < layers.size(); ++i) {
        const Config& l = layers[i];
        try {
          layer(l.with_vars(v, context), instance + ".", in, &local, names[i]);
        } catch (const ConfigError& e) {
          throw ConfigError(cat(e.what(), "\n  in ", context, " as '", instance, "', used at ", use.where()));
        }
      }
    }
    use.finish();
  }

  Net& net_;
  const LayerRegistry& registry_;
  std::optional<Config> blocks_;
  std::map<std::string, int> block_counts_;
};

}  // namespace

Net Net::from_config(const Config& model, const LayerRegistry& registry) {
  const auto in = model.get<std::vector<int64_t>>("input");
  Shape input_shape;
  try {
    input_shape = Shape(in);
    for (int64_t d : in)
      if (d <= 0) throw ShapeError("non-positive dimension");
    if (in.empty() || in.size() > 4) throw ShapeError("rank");
  } catch (const ShapeError&) {
    model.at("input").fail(
        cat("the input shape is 1 to 4 positive sizes per sample, e.g. [1, 28, 28]; got ", model.at("input").dump()));
  }
  Net net(input_shape);
  const Config layers = model.at("layers");
  const auto items = layers.items();
  if (items.empty()) layers.fail("a model needs at least one layer");
  ModelReader reader(net, model, registry);
  // Every layer's mistakes, not only the first; after a failed layer, the shapes that
  // follow are not the ones the user meant, so only configuration errors are reported.
  ErrorList errors;
  for (const auto& item : items) {
    if (errors.empty()) {
      errors.attempt([&] { reader.item(item); });
    } else {
      try {
        reader.item(item);
      } catch (const ConfigError& e) {
        errors.attempt([&] { throw; });
      } catch (const ShapeError&) {
      }
    }
  }
  errors.raise();
  // model.fuse: false runs every layer alone (Net::set_fusion).
  if (auto f = model.find("fuse")) net.set_fusion(f->as<bool>());
  // model.freeze: layer name patterns.
  if (auto f = model.find("freeze")) {
    for (const auto& pattern : f->as<std::vector<std::string>>()) {
      bool any = false;
      for (size_t i = 0; i < net.size(); ++i)
        if (glob_match(pattern, net.layer(i).name())) {
          net.freeze(net.layer(i).name());
          any = true;
        }
      if (!any)
        f->fail(cat("the pattern '", pattern, "' matches no layer (layers: ", net.layer(0).name(), " ... ",
                    net.layer(net.size() - 1).name(), ")"));
    }
  }
  return net;
}

int64_t Net::memory_bytes(int64_t max_batch) const {
  long double params = 0, activations = static_cast<long double>(impl_->input_shape.numel()) * max_batch;
  for (const auto& node : impl_->nodes) {
    try {
      for (const auto& s : node.specs) params += static_cast<long double>(s.shape.numel());
      activations +=
          static_cast<long double>(node.out.numel()) * max_batch * (1 + std::max<size_t>(1, node.consumers.size()));
    } catch (const ShapeError&) {
      return std::numeric_limits<int64_t>::max();
    }
  }
  const long double bytes = 4 * (2 * params + activations);
  return bytes >= static_cast<long double>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                                : static_cast<int64_t>(bytes);
}

int64_t Net::activation_bytes() const {
  const Impl& m = *impl_;
  int64_t floats = m.input.numel();
  for (const auto& node : m.nodes) floats += node.y.numel();
  for (const auto& s : m.grad_slabs) floats += s.size();
  for (const auto& s : m.output_slabs) floats += s.size();
  return floats * static_cast<int64_t>(sizeof(float));
}

void Net::check_memory(int64_t max_batch) const {
  // Counted in long double: absurd sizes must give this error, not an overflow.
  const Impl& m = *impl_;
  long double params = 0, activations = static_cast<long double>(m.input_shape.numel()) * max_batch, largest = 0;
  std::string largest_name;
  for (const auto& node : m.nodes) {
    long double p = 0, a = 0;
    try {
      for (const auto& s : node.specs) p += static_cast<long double>(s.shape.numel());
      // Output and its gradient buffers (one per consumer), for max_batch rows.
      a = static_cast<long double>(node.out.numel()) * max_batch * (1 + std::max<size_t>(1, node.consumers.size()));
    } catch (const ShapeError& e) {
      throw ConfigError(
          cat("layer '", node.layer->name(), "' (", node.layer->type(), "): ", e.what(), ": far too large"));
    }
    params += p;
    activations += a;
    if (2 * p + a > largest) largest = 2 * p + a, largest_name = node.layer->name();
  }
  const long double bytes = 4 * (2 * params + activations);
  const long double pages = static_cast<long double>(::sysconf(_SC_PHYS_PAGES)),
                    page = static_cast<long double>(::sysconf(_SC_PAGESIZE));
  const long double memory = pages > 0 && page > 0 ? pages * page : 0;
  constexpr long double GiB = 1024.0L * 1024 * 1024;
  if (memory > 0 && bytes > 0.9L * memory)
    throw ConfigError(cat("this model needs ", std::setprecision(3), static_cast<double>(bytes / GiB), " GiB at ",
                          max_batch, " rows per rank (parameters and their gradients ",
                          static_cast<double>(8 * params / GiB), " GiB, activations and their gradients ",
                          static_cast<double>(4 * activations / GiB), " GiB; the largest layer is '", largest_name,
                          "' with ", static_cast<double>(4 * largest / GiB), " GiB), more than this machine's ",
                          static_cast<double>(memory / GiB),
                          " GiB: use fewer units or filters, a smaller batch, or more ranks"));
}

// Gradient buffers share memory when their lifetimes do not overlap. Backward visits the
// nodes last to first; at time t = N-1-i it runs node i. Node i's buffer for consumer c
// is written when c runs (the last node's: by the loss, before backward, t = -1) and read
// when i runs; the buffers a node reads and writes in one backward call are live at the
// same time, so they never share. Greedy: buffers by first use, each into the free slab
// nearest its size (grown when too small), or a new slab. A chain needs two slabs.
//
// Where c passes its gradient through (Layer::passes_gradient: a residual add), node i's
// buffer for c is c's own gradient buffer, live until i has read it, and c's backward
// copies nothing. Only buffers nobody writes after c may be shared that way: one that the
// fan-out adds into (buffer 0 of a node with several consumers) keeps its own.
void Net::Impl::plan_gradient_buffers(int64_t max_batch) {
  Impl& m = *this;
  struct Use {
    int node;
    size_t b;
    int64_t size;
    int start, end;
  };
  const int N = static_cast<int>(m.nodes.size());
  // The buffer each (node, buffer) is: itself, or (passed through) its consumer's.
  std::vector<std::vector<std::pair<int, size_t>>> holder(static_cast<size_t>(N));
  std::vector<int> end(static_cast<size_t>(N), -1);  // when each node's buffer 0 is last read
  for (int i = N - 1; i >= 0; --i) {
    auto& node = m.nodes[i];
    if (!node.needs_grad) continue;
    const size_t buffers = std::max<size_t>(1, node.consumers.size());
    node.grad.assign(buffers, nullptr);
    auto& own = holder[static_cast<size_t>(i)];
    for (size_t b = 0; b < buffers; ++b) own.emplace_back(i, b);
    const int read = node.fused_into >= 0 ? node.fused_into : i;
    end[static_cast<size_t>(i)] = N - 1 - read;
    if (node.fused_next >= 0 || node.fused_into >= 0) continue;
    for (size_t b = 0; b < node.consumers.size(); ++b) {
      const int c = node.consumers[b].node;
      const auto& consumer = m.nodes[c];
      if (c <= i || holder[static_cast<size_t>(c)].empty() || !consumer.layer->passes_gradient() ||
          consumer.fused_into >= 0 || consumer.fused_next >= 0 || (b == 0 && buffers > 1))
        continue;
      own[b] = holder[static_cast<size_t>(c)][0];
      int& last = end[static_cast<size_t>(own[b].first)];
      last = std::max(last, N - 1 - i);
    }
  }
  std::vector<Use> uses;
  for (int i = 0; i < N; ++i) {
    auto& node = m.nodes[i];
    if (!node.needs_grad) continue;
    // A node that computes its consumer's backward (fusion) takes that consumer's gradient
    // instead of one of its own; the consumer's is read at this node's backward.
    if (node.fused_next >= 0) continue;
    for (size_t b = 0; b < node.grad.size(); ++b) {
      if (holder[static_cast<size_t>(i)][b] != std::pair<int, size_t>(i, b)) continue;  // passed through
      const int read = node.fused_into >= 0 ? node.fused_into : i;
      uses.push_back({i, b, node.out.numel() * max_batch, node.consumers.empty() ? -1 : N - 1 - node.consumers[b].node,
                      b == 0 ? end[static_cast<size_t>(i)] : N - 1 - read});
    }
  }
  std::stable_sort(uses.begin(), uses.end(), [](const Use& a, const Use& b) { return a.start < b.start; });
  struct Slab {
    int64_t size;
    int free_after;  // the last time its current buffer is read
  };
  std::vector<Slab> slabs;
  std::vector<size_t> slab_of(uses.size());
  for (size_t u = 0; u < uses.size(); ++u) {
    size_t best = slabs.size();
    for (size_t s = 0; s < slabs.size(); ++s) {
      if (slabs[s].free_after >= uses[u].start) continue;
      if (best == slabs.size()) {
        best = s;
        continue;
      }
      // Prefer the smallest slab that fits, else the largest (least growth).
      const bool fits = slabs[s].size >= uses[u].size, best_fits = slabs[best].size >= uses[u].size;
      if ((fits && (!best_fits || slabs[s].size < slabs[best].size)) ||
          (!fits && !best_fits && slabs[s].size > slabs[best].size))
        best = s;
    }
    if (best == slabs.size()) slabs.push_back({0, -2});
    slabs[best].size = std::max(slabs[best].size, uses[u].size);
    slabs[best].free_after = uses[u].end;
    slab_of[u] = best;
  }
  m.grad_slabs.clear();
  for (const auto& s : slabs) m.grad_slabs.emplace_back(s.size);
  for (size_t u = 0; u < uses.size(); ++u) m.nodes[uses[u].node].grad[uses[u].b] = m.grad_slabs[slab_of[u]].data();
  for (int i = 0; i < N; ++i)
    for (size_t b = 0; b < holder[static_cast<size_t>(i)].size(); ++b) {
      const auto [h, hb] = holder[static_cast<size_t>(i)][b];
      m.nodes[i].grad[b] = m.nodes[h].grad[hb];
    }
}

void Net::build(int64_t max_batch, uint64_t seed) {
  Impl& m = *impl_;
  if (built()) throw Error("Net::build called twice");
  if (m.nodes.empty()) throw ConfigError("the network has no layers");
  if (max_batch <= 0) throw ConfigError(cat("batch size must be positive, got ", max_batch));
  // Every layer must contribute to the output (the last layer).
  for (size_t i = 0; i + 1 < m.nodes.size(); ++i)
    if (m.nodes[i].consumers.empty())
      throw ConfigError(cat("layer '", m.nodes[i].layer->name(),
                            "' feeds nothing: every layer must lead to the output (the last layer, '",
                            m.nodes.back().layer->name(), "')"));
  check_memory(max_batch);
  m.max_batch = max_batch;
  m.input = Tensor(m.input_shape.with_batch(max_batch));
  // Which nodes run backward: those with trainable parameters and all that follow them.
  for (auto& node : m.nodes) {
    node.needs_grad = false;
    for (const auto& s : node.specs) node.needs_grad = node.needs_grad || (!s.buffer && !node.frozen);
    for (int p : node.inputs) node.needs_grad = node.needs_grad || (p != kNetInput && m.nodes[p].needs_grad);
  }

  // Arena layout: trainable parameters last layer first, so backward fills the gradient
  // arena from offset 0; then frozen parameters and buffers.
  int64_t offset = 0;
  const std::vector<std::vector<int64_t>> offsets = m.lay_out_arena(offset);
  m.params = AlignedBuffer(offset);
  m.grads = AlignedBuffer(offset);

  for (size_t i = 0; i < m.nodes.size(); ++i) {
    auto& node = m.nodes[i];
    for (size_t j = 0; j < node.specs.size(); ++j) {
      const auto& s = node.specs[j];
      const int64_t off = offsets[i][j];
      node.params.push_back({s.name, s.shape, m.params.data() + off, m.grads.data() + off});
      Rng rng(hash_combine(hash_combine(seed, hash_string(node.layer->name())), hash_string(s.name)));
      initialize({node.params.back().w, static_cast<size_t>(s.shape.numel())}, s.init, s.fan_in, s.fan_out, rng);
    }
  }
  for (auto& node : m.nodes) {
    node.y = Tensor(node.out.with_batch(max_batch));
    node.yp = node.y.data();
    node.x_views.resize(node.inputs.size());
    node.dx_views.resize(node.inputs.size());
    node.dx_buffer.assign(node.inputs.size(), -1);
    node.layer->bind(Binding{node.in_shapes, node.out, max_batch, node.params, false, m.precision});
  }
  m.plan_fusion();
  m.plan_gradient_buffers(max_batch);
  // Which gradient buffer of its producer each input slot writes.
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const auto& consumers = m.nodes[i].consumers;
    if (!m.nodes[i].needs_grad) continue;
    for (size_t c = 0; c < consumers.size(); ++c)
      m.nodes[consumers[c].node].dx_buffer[consumers[c].slot] = static_cast<int>(c);
  }
  // A node that needs no gradient never runs backward; a consumer of it gets no dx buffer.
  if (!m.nodes.back().needs_grad)
    throw ConfigError("the network has no trainable parameters (are all layers frozen?): there is nothing to train");
}

void Net::Impl::plan_fusion() {
  if (!fusion) return;
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node& node = nodes[i];
    if (node.fused_into >= 0 || node.inputs.size() != 1 || node.consumers.size() != 1) continue;
    Node& next = nodes[static_cast<size_t>(node.consumers[0].node)];
    if (next.inputs.size() != 1 || !next.specs.empty() || !node.layer->fuse(*next.layer)) continue;
    node.fused_next = node.consumers[0].node;
    next.fused_into = static_cast<int>(i);
  }
}

std::vector<std::vector<int64_t>> Net::Impl::lay_out_arena(int64_t& size) {
  std::vector<std::vector<int64_t>> offsets(nodes.size());
  int64_t offset = 0;
  info.clear();
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = static_cast<int>(nodes.size()) - 1; i >= 0; --i) {
      auto& node = nodes[i];
      offsets[i].resize(node.specs.size());
      for (size_t j = 0; j < node.specs.size(); ++j) {
        const auto& s = node.specs[j];
        const bool trainable = !s.buffer && !node.frozen;
        if (trainable != (pass == 0)) continue;
        ParamInfo p{node.layer->name(), s.name, s.shape, offset, s.shape.numel(), s.decay && trainable};
        p.trainable = trainable;
        p.buffer = s.buffer;
        p.average_over_ranks = s.buffer && s.average_over_ranks;
        p.node = i;
        info.push_back(p);
        offsets[i][j] = offset;
        offset += align_floats(p.size);
      }
      if (pass == 0) node.grads_done = offset;
    }
    if (pass == 0) trainable_size = offset;
  }
  size = offset;
  return offsets;
}

void Net::Impl::plan_output_buffers(int64_t max_batch) {
  // In model order, each output takes a free slab (one whose last reader came before this
  // node) or a new one; a slab grows to the largest output it holds. The net's output is
  // never given up.
  const int N = static_cast<int>(nodes.size());
  std::vector<int> last_use(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) {
    last_use[static_cast<size_t>(i)] = i == N - 1 ? N : i;
    for (const auto& c : nodes[static_cast<size_t>(i)].consumers)
      last_use[static_cast<size_t>(i)] = std::max(last_use[static_cast<size_t>(i)], c.node);
  }
  struct Slab {
    int64_t size = 0;
    int busy_until = -1;  // the last node that reads what it holds
  };
  std::vector<Slab> slabs;
  std::vector<size_t> slab_of(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) {
    const int64_t need = align_floats(nodes[static_cast<size_t>(i)].out.numel() * max_batch);
    // A fused node's output is written while its producer runs (and reads its own input).
    const int from = nodes[static_cast<size_t>(i)].fused_into >= 0 ? nodes[static_cast<size_t>(i)].fused_into : i;
    size_t best = slabs.size();
    for (size_t s = 0; s < slabs.size(); ++s) {
      if (slabs[s].busy_until >= from) continue;
      // The smallest that fits, else the largest (grown).
      if (best == slabs.size() ||
          (slabs[s].size >= need && (slabs[best].size < need || slabs[s].size < slabs[best].size)) ||
          (slabs[best].size < need && slabs[s].size > slabs[best].size))
        best = s;
    }
    if (best == slabs.size()) slabs.push_back({});
    slabs[best].size = std::max(slabs[best].size, need);
    slabs[best].busy_until = last_use[static_cast<size_t>(i)];
    slab_of[static_cast<size_t>(i)] = best;
  }
  output_slabs.clear();
  for (const auto& s : slabs) output_slabs.emplace_back(s.size);
  for (int i = 0; i < N; ++i) nodes[static_cast<size_t>(i)].yp = output_slabs[slab_of[static_cast<size_t>(i)]].data();
}

void Net::build_inference(int64_t max_batch, const Net* shared) {
  Impl& m = *impl_;
  if (built()) throw Error("Net::build_inference called on a built net");
  if (m.nodes.empty()) throw ConfigError("the network has no layers");
  if (max_batch <= 0) throw ConfigError(cat("batch size must be positive, got ", max_batch));
  const Impl* other = shared ? shared->impl_.get() : nullptr;
  if (other && (other->nodes.size() != m.nodes.size() || other->params.size() == 0))
    throw Error("Net::build_inference: the shared net is not built from the same model");
  m.inference = true;
  m.max_batch = max_batch;
  m.input = Tensor(m.input_shape.with_batch(max_batch));
  // The arena as build() lays it out, so that a checkpoint loads into it; no gradient arena.
  for (auto& node : m.nodes) node.needs_grad = false;
  int64_t offset = 0;
  const std::vector<std::vector<int64_t>> offsets = m.lay_out_arena(offset);
  if (other && other->params.size() != offset) throw Error("Net::build_inference: the shared net's arena differs");
  if (!other) m.params = AlignedBuffer(offset);
  float* base = other ? const_cast<float*>(other->params.data()) : m.params.data();
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    auto& node = m.nodes[i];
    for (size_t j = 0; j < node.specs.size(); ++j)
      node.params.push_back({node.specs[j].name, node.specs[j].shape, base + offsets[i][j], nullptr});
  }
  for (auto& node : m.nodes) {
    node.x_views.resize(node.inputs.size());
    node.layer->bind(Binding{node.in_shapes, node.out, max_batch, node.params, true, m.precision});
  }
  m.plan_fusion();
  m.plan_output_buffers(max_batch);
}

bool Net::inference_only() const { return impl_->inference; }

void Net::set_fusion(bool on) {
  if (built()) throw Error("Net::set_fusion after build(): set it before building");
  impl_->fusion = on;
}
bool Net::fusion() const { return impl_->fusion; }

void Net::set_precision(Precision p) {
  if (built()) throw Error("Net::set_precision after build(): set it before building");
  impl_->precision = p;
}
Precision Net::precision() const { return impl_->precision; }

void Net::freeze(const std::string& layer) {
  if (built()) throw Error("Net::freeze after build(): freeze layers before building");
  auto it = impl_->by_name.find(layer);
  if (it == impl_->by_name.end()) throw ConfigError(cat("cannot freeze '", layer, "': there is no layer of that name"));
  impl_->nodes[it->second].frozen = true;
}

bool Net::frozen(const std::string& layer) const {
  auto it = impl_->by_name.find(layer);
  return it != impl_->by_name.end() && impl_->nodes[it->second].frozen;
}

bool Net::built() const { return impl_->max_batch > 0; }

void Net::set_profiling(bool on) {
  impl_->profiling = on;
  for (auto& node : impl_->nodes) node.forward_seconds = node.backward_seconds = 0, node.forward_calls = 0;
}

std::vector<Net::LayerTime> Net::layer_times() const {
  std::vector<LayerTime> out;
  for (const auto& node : impl_->nodes)
    out.push_back(
        {node.layer->name(), node.layer->type(), node.forward_seconds, node.backward_seconds, node.forward_calls,
         node.fused_into >= 0 ? 0 : node.layer->flops(node.in_shapes, node.out),
         node.fused_into >= 0 ? cat("in ", impl_->name_of(node.fused_into), "'s passes (fused)") : node.layer->plan()});
  return out;
}
const Shape& Net::input_shape() const { return impl_->input_shape; }
const Shape& Net::output_shape() const {
  if (impl_->nodes.empty()) throw Error("the network has no layers");
  return impl_->nodes.back().out;
}
int64_t Net::max_batch() const { return impl_->max_batch; }
size_t Net::size() const { return impl_->nodes.size(); }
Layer& Net::layer(size_t i) { return *impl_->nodes.at(i).layer; }
const Layer& Net::layer(size_t i) const { return *impl_->nodes.at(i).layer; }
const Layer* Net::find(const std::string& name) const {
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : impl_->nodes[it->second].layer.get();
}

namespace {
void check_rows(const Net& net, int64_t n) {
  if (!net.built()) throw Error("the Net is not built: call build(max_batch, seed) first");
  if (n <= 0 || n > net.max_batch())
    throw Error(cat("minibatch of ", n, " rows; this Net was built for 1 to ", net.max_batch()));
}
}  // namespace

TensorView Net::input(int64_t n) {
  check_rows(*this, n);
  return TensorView(impl_->input.data(), impl_->input_shape.with_batch(n));
}

ConstTensorView Net::forward(int64_t n, const StepContext& ctx) {
  check_rows(*this, n);
  Impl& m = *impl_;
  const bool timed = m.profiling && ctx.training;
  for (auto& node : m.nodes) {
    if (node.fused_into >= 0) {  // computed by its producer
      node.forward_calls += timed ? 1 : 0;
      continue;
    }
    for (size_t s = 0; s < node.inputs.size(); ++s) node.x_views[s] = m.output_of(node.inputs[s], n);
    const auto t0 = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const TensorView y(node.yp, node.out.with_batch(n));
    if (node.fused_next >= 0) {
      const Impl::Node& next = m.nodes[static_cast<size_t>(node.fused_next)];
      node.layer->forward_fused(node.x_views[0], y, TensorView(next.yp, next.out.with_batch(n)), ctx);
    } else {
      node.layer->forward(node.x_views, y, ctx);
    }
    if (timed) {
      node.forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++node.forward_calls;
    }
  }
  return m.output_of(static_cast<int>(m.nodes.size()) - 1, n);
}

TensorView Net::output_grad(int64_t n) {
  check_rows(*this, n);
  if (impl_->inference) throw Error("Net::output_grad: this net was built for inference only");
  auto& last = impl_->nodes.back();
  return TensorView(last.grad[0], last.out.with_batch(n));
}

void Net::backward(int64_t n, const StepContext& ctx) { backward(n, ctx, {}); }

void Net::backward(int64_t n, const StepContext& ctx, const std::function<void(int64_t)>& on_progress) {
  if (impl_->inference) throw Error("Net::backward: this net was built for inference only");
  check_rows(*this, n);
  Impl& m = *impl_;
  for (int i = static_cast<int>(m.nodes.size()) - 1; i >= 0; --i) {
    auto& node = m.nodes[i];
    if (!node.needs_grad) continue;
    const auto t0 = m.profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const int64_t len = n * node.out.numel();
    // Fan-out: add the other consumers' gradients into the first, in consumer order.
    for (size_t b = 1; b < node.grad.size(); ++b) {
      float* dst = node.grad[0];
      const float* src = node.grad[b];
      parallel_chunks(len, 16384, [&](int64_t b0, int64_t b1) {
        for (int64_t j = b0; j < b1; ++j) dst[j] += src[j];
      });
    }
    if (node.fused_into < 0) {  // (a fused node's backward is its producer's)
      for (size_t s = 0; s < node.inputs.size(); ++s) {
        const int p = node.inputs[s];
        node.x_views[s] = m.output_of(p, n);
        const bool wants = p != kNetInput && m.nodes[p].needs_grad;
        node.dx_views[s] =
            wants ? TensorView(m.nodes[p].grad[node.dx_buffer[s]], m.nodes[p].out.with_batch(n)) : TensorView();
      }
      if (node.fused_next >= 0) {
        const Impl::Node& next = m.nodes[static_cast<size_t>(node.fused_next)];
        node.layer->backward_fused(node.x_views[0], m.output_of(i, n),
                                   ConstTensorView(next.grad[0], next.out.with_batch(n)), node.dx_views[0], ctx);
      } else {
        node.layer->backward(node.x_views, m.output_of(i, n), ConstTensorView(node.grad[0], node.out.with_batch(n)),
                             node.dx_views, ctx);
      }
    }
    if (m.profiling)
      node.backward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_progress) on_progress(node.grads_done);
  }
  if (on_progress) on_progress(m.trainable_size);
}

ConstTensorView Net::activation(const std::string& layer, int64_t n) const {
  check_rows(*this, n);
  auto it = impl_->by_name.find(layer);
  if (it == impl_->by_name.end()) throw Error(cat("no layer named '", layer, "'"));
  return impl_->output_of(it->second, n);
}

namespace {
bool all_finite(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}
}  // namespace

std::optional<Net::NonFinite> Net::first_nonfinite_output(int64_t n) const {
  check_rows(*this, n);
  if (!all_finite(impl_->input.data(), n * impl_->input_shape.numel()))
    return NonFinite{kInput, "the input minibatch (the data)"};
  for (const auto& node : impl_->nodes)
    if (!all_finite(node.yp, n * node.out.numel()))
      return NonFinite{node.layer->name(), cat("the output of layer '", node.layer->name(), "'")};
  return std::nullopt;
}

std::optional<Net::NonFinite> Net::first_nonfinite_gradient() const {
  for (const auto& node : impl_->nodes)
    for (const auto& p : node.params)
      if (!node.frozen && p.dw && !all_finite(p.dw, p.numel())) {
        bool buffer = false;
        for (const auto& s : node.specs) buffer = buffer || (s.name == p.name && s.buffer);
        if (!buffer) return NonFinite{node.layer->name(), cat("the gradient of ", node.layer->name(), "/", p.name)};
      }
  return std::nullopt;
}

namespace {
// The trainable prefix of an arena (empty for arenas an inference-only net does not hold).
template <class T>
std::span<T> prefix(std::span<T> arena, int64_t trainable) {
  return arena.first(std::min(arena.size(), static_cast<size_t>(trainable)));
}
}  // namespace

std::span<float> Net::params() { return prefix(impl_->params.span(), impl_->trainable_size); }
std::span<const float> Net::params() const { return prefix(impl_->params.span(), impl_->trainable_size); }
std::span<float> Net::grads() { return prefix(impl_->grads.span(), impl_->trainable_size); }
std::span<const float> Net::grads() const { return prefix(impl_->grads.span(), impl_->trainable_size); }
std::span<float> Net::state() { return impl_->params.span(); }
std::span<const float> Net::state() const { return impl_->params.span(); }
const std::vector<ParamInfo>& Net::param_info() const { return impl_->info; }

// Parameter values (frozen included), trainable ones, buffer values.
int64_t Net::num_params() const {
  int64_t total = 0;
  for (const auto& node : impl_->nodes)
    for (const auto& s : node.specs) total += s.buffer ? 0 : s.shape.numel();
  return total;
}
int64_t Net::num_trainable() const {
  int64_t total = 0;
  for (const auto& node : impl_->nodes)
    for (const auto& s : node.specs) total += s.buffer || node.frozen ? 0 : s.shape.numel();
  return total;
}
int64_t Net::num_buffer_values() const {
  int64_t total = 0;
  for (const auto& node : impl_->nodes)
    for (const auto& s : node.specs) total += s.buffer ? s.shape.numel() : 0;
  return total;
}

namespace {
// 1234567 -> "1.23M"
std::string human(int64_t v) {
  const char* units[] = {"", "K", "M", "G", "T"};
  double x = static_cast<double>(v);
  int u = 0;
  while (x >= 1000 && u < 4) x /= 1000, ++u;
  std::ostringstream os;
  if (u == 0)
    os << v;
  else
    os << std::fixed << std::setprecision(x < 10 ? 2 : x < 100 ? 1 : 0) << x << units[u];
  return os.str();
}
}  // namespace

std::string Net::to_onnx(onnx::Graph& g, const std::string& input,
                         const std::function<std::string(const std::string&)>& preprocess) const {
  const Impl& m = *impl_;
  if (!built()) throw Error("Net::to_onnx: build the net (and load its parameters) first");
  std::vector<std::string> values;
  for (const auto& node : m.nodes) values.push_back(g.reserve(node.layer->name()));
  const std::string x = preprocess ? preprocess(input) : input;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const auto& node = m.nodes[i];
    std::vector<std::string> ins;
    for (int p : node.inputs) ins.push_back(p == kNetInput ? x : values[static_cast<size_t>(p)]);
    node.layer->to_onnx(g, ins, node.in_shapes, values[i]);
  }
  return values.back();
}

void Net::summary(std::ostream& os) const {
  const Impl& m = *impl_;
  struct Row {
    std::string name, type, inputs, shape, params, flops, detail;
  };
  std::vector<Row> rows;
  rows.push_back({"layer", "type", "inputs", "output", "params", "flops", ""});
  rows.push_back({kInput, "input", "", m.input_shape.str(), "0", "0", ""});
  int64_t total_flops = 0;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const auto& node = m.nodes[i];
    std::string ins;
    const bool sequential = node.inputs.size() == 1 && node.inputs[0] == static_cast<int>(i) - 1;
    if (!sequential)
      for (int p : node.inputs) {
        if (!ins.empty()) ins += ',';
        ins += m.name_of(p);
      }
    int64_t count = 0;
    for (const auto& s : node.specs)
      if (!s.buffer) count += s.shape.numel();
    const int64_t flops = node.layer->flops(node.in_shapes, node.out);
    total_flops += flops;
    std::string detail = node.layer->describe();
    if (node.frozen) detail += detail.empty() ? "frozen" : ", frozen";
    rows.push_back(
        {node.layer->name(), node.layer->type(), ins, node.out.str(), std::to_string(count), human(flops), detail});
  }
  size_t w[6] = {0, 0, 0, 0, 0, 0};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.name.size());
    w[1] = std::max(w[1], r.type.size());
    w[2] = std::max(w[2], r.inputs.size());
    w[3] = std::max(w[3], r.shape.size());
    w[4] = std::max(w[4], r.params.size());
    w[5] = std::max(w[5], r.flops.size());
  }
  for (const auto& r : rows) {
    os << std::left << std::setw(w[0] + 2) << r.name << std::setw(w[1] + 2) << r.type;
    if (w[2] > 6) os << std::setw(w[2] + 2) << r.inputs;
    os << std::setw(w[3] + 2) << r.shape << std::right << std::setw(w[4]) << r.params << "  " << std::setw(w[5])
       << r.flops << "  " << r.detail << "\n";
  }
  const int64_t total = num_params();
  const int64_t trainable = num_trainable(), buffers = num_buffer_values();
  os << "total: " << m.nodes.size() << " layers, " << total << " parameters (" << human(total) << ", " << std::fixed
     << std::setprecision(1) << static_cast<double>(total) * 4.0 / 1024.0 << " KiB)";
  if (trainable != total) os << ", " << trainable << " trainable";
  if (buffers) os << ", " << buffers << " buffer values";
  os << ", " << human(total_flops) << " forward flops per sample\n";
  os.unsetf(std::ios::floatfield);
}

}  // namespace hubel
