// Checked reading of YAML experiment files.
#include "framework/config.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "framework/error.hpp"
#include "framework/suggest.hpp"

namespace hubel {

struct Config::Document {
  std::string source;
  std::string text;
  std::string base;
  YAML::Node root;
  // Paths set by --set, with the assignment, so errors can point at the command line.
  std::map<std::string, std::string> overrides;
  // Asked-for keys per map path, so that two Config handles of one map agree.
  std::map<std::string, std::shared_ptr<std::set<std::string>>> asked;
};

namespace {

std::string join_path(const std::string& base, const std::string& key) { return base.empty() ? key : base + "." + key; }

// Splits "model.layers[2].units" or "model.layers.2.units" into parts.
std::vector<std::string> split_key_path(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '.' || c == '[' || c == ']') {
      if (!cur.empty()) parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  return parts;
}

bool is_index(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

const char* type_name_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Undefined:
      return "nothing";
    default:
      return "a value";
  }
}

}  // namespace

bool Config::is_map() const { return node_->IsMap(); }
bool Config::is_sequence() const { return node_->IsSequence(); }
bool Config::is_scalar() const { return node_->IsScalar(); }
bool Config::is_null() const { return !node_->IsDefined() || node_->IsNull(); }

Config::Config(std::shared_ptr<Document> doc, const YAML::Node& node, std::string path)
    : doc_(std::move(doc)), node_(std::make_shared<YAML::Node>(node)), path_(std::move(path)) {
  auto& slot = doc_->asked[path_];
  if (!slot) slot = std::make_shared<std::set<std::string>>();
  asked_ = slot;
}

Config& Config::operator=(const Config& o) {
  if (this == &o) return *this;
  doc_ = o.doc_;
  node_ = o.node_;
  path_ = o.path_;
  asked_ = o.asked_;
  scope_ = o.scope_;
  return *this;
}

namespace {
// yaml-cpp keeps the first of two equal keys and says nothing: a typo'd override in the
// file would silently lose. Every map is checked, naming both lines.
void check_duplicate_keys(const YAML::Node& node, const std::string& source, const std::string& path) {
  if (node.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : node) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("(a non-scalar key)");
      const auto m = kv.first.Mark();
      const std::string where = path.empty() ? key : path + "." + key;
      auto [it, fresh] = seen.emplace(key, m);
      if (!fresh)
        throw ConfigError(cat(source, ":", m.line + 1, ":", m.column + 1, " (", where, "): duplicate key '", key,
                              "' (also on line ", it->second.line + 1, "); give each key once"));
      check_duplicate_keys(kv.second, source, where);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) check_duplicate_keys(node[i], source, cat(path, "[", i, "]"));
  }
}
}  // namespace

Config Config::parse(const std::string& text, const std::string& source) {
  auto doc = std::make_shared<Document>();
  doc->source = source;
  doc->text = text;
  try {
    doc->root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(cat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not valid YAML: ", e.msg));
  }
  check_duplicate_keys(doc->root, source, "");
  if (!doc->root.IsMap())
    throw ConfigError(cat(source,
                          ": an experiment file is a YAML map of sections (model, data, optimizer, ...); found ",
                          type_name_of(doc->root)));
  return Config(doc, doc->root, "");
}

Config Config::load_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(cat(path, ": is a directory, not an experiment file (give the .yaml file itself)"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(cat(path, ": cannot open the experiment file (does it exist, and is it readable?)"));
  std::ostringstream ss;
  ss << in.rdbuf();
  Config c = parse(ss.str(), path);
  c.set_base(std::filesystem::absolute(path, ec).parent_path().lexically_normal().string());
  return c;
}

const std::string& Config::text() const { return doc_->text; }
const std::string& Config::source() const { return doc_->source; }
const std::string& Config::base() const { return doc_->base; }
void Config::set_base(const std::string& dir) { doc_->base = dir; }

std::string Config::path_of(const std::string& key) const {
  const Config c = at(key);
  const auto value = c.as<std::string>();
  const std::filesystem::path p(value);
  if (value.empty() || p.is_absolute() || doc_->base.empty() || c.where().rfind("--set ", 0) == 0) return value;
  return (std::filesystem::path(doc_->base) / p).lexically_normal().string();
}

void Config::apply_override(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(cat("--set ", assignment, ": expected key.path=value, e.g. --set optimizer.lr=0.05"));
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw ConfigError(cat("--set ", assignment, ": the value is not valid YAML: ", e.msg));
  }
  check_duplicate_keys(parsed, cat("--set ", assignment), "");
  const auto parts = split_key_path(key);
  if (parts.empty()) throw ConfigError(cat("--set ", assignment, ": empty key"));
  // Walk with reset(): plain assignment between yaml-cpp nodes would overwrite the tree.
  YAML::Node cur;
  cur.reset(doc_->root);
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const bool last = i + 1 == parts.size();
    if (cur.IsSequence()) {
      if (!is_index(p))
        throw ConfigError(cat("--set ", assignment, ": '", walked, "' is a list; use an index, not '", p, "'"));
      const size_t idx = p.size() > 9 ? std::numeric_limits<size_t>::max() : std::stoul(p);
      if (idx >= cur.size())
        throw ConfigError(
            cat("--set ", assignment, ": '", walked, "' has ", cur.size(), " items; index ", p, " is out of range"));
      walked += "[" + p + "]";
      if (last) {
        cur[idx] = parsed;
      } else {
        YAML::Node next = cur[idx];
        cur.reset(next);
      }
    } else {
      if (cur.IsDefined() && !cur.IsMap() && !cur.IsNull())
        throw ConfigError(cat("--set ", assignment, ": '", walked, "' is a value, not a section with keys"));
      walked = join_path(walked, p);
      if (last) {
        cur[p] = parsed;
      } else {
        YAML::Node next = cur[p];
        cur.reset(next);
      }
    }
  }
  doc_->overrides[walked] = assignment;
}

std::string Config::where() const {
  // The innermost --set that covers this path, if any.
  for (const auto& [p, a] : doc_->overrides)
    if (path_ == p || (path_.size() > p.size() && path_.compare(0, p.size(), p) == 0 &&
                       (path_[p.size()] == '.' || path_[p.size()] == '[')))
      return cat("--set ", a);
  const auto m = node_->Mark();
  std::string loc = doc_->source;
  if (!m.is_null()) loc = cat(loc, ":", m.line + 1, ":", m.column + 1);
  return path_.empty() ? loc : cat(loc, " (", path_, ")");
}

std::string Config::key_path(const std::string& key) const { return join_path(path_, key); }

Config Config::child(const YAML::Node& n, const std::string& path) const {
  if (scope_ && n.IsScalar() && n.Scalar().size() > 1 && n.Scalar()[0] == '$') {
    const std::string name = n.Scalar().substr(1);
    auto it = scope_->vars.find(name);
    if (it != scope_->vars.end()) return it->second;
    std::string known;
    for (const auto& [k, v] : scope_->vars) known += (known.empty() ? "" : ", ") + k;
    Config(doc_, n, path)
        .fail(cat("'$", name, "' is not a parameter of ", scope_->context,
                  known.empty() ? std::string(" (it has none)") : cat(" (its parameters: ", known, ")")));
  }
  Config c(doc_, n, path);
  c.scope_ = scope_;
  return c;
}

Config Config::with_vars(Vars vars, std::string context) const {
  Config c = *this;
  c.scope_ = std::make_shared<const Scope>(Scope{std::move(vars), std::move(context)});
  return c;
}

bool Config::has(const std::string& key) const {
  asked_->insert(key);
  const YAML::Node& n = *node_;
  return n.IsMap() && n[key].IsDefined();
}

std::optional<Config> Config::find(const std::string& key) const {
  asked_->insert(key);
  if (!node_->IsMap()) {
    if (node_->IsNull() || !node_->IsDefined()) return std::nullopt;
    fail(cat("expected a section with keys (looking for '", key, "'), found ", type_name_of(*node_)));
  }
  const YAML::Node& cn = *node_;
  YAML::Node n = cn[key];
  if (!n.IsDefined()) return std::nullopt;
  return child(n, key_path(key));
}

Config Config::at(const std::string& key) const {
  auto c = find(key);
  if (!c) {
    // A key of this map near the one required is its misspelling: name it, where it is.
    if (node_->IsMap())
      for (auto it = node_->begin(); it != node_->end(); ++it) {
        const std::string k = key_text(it->first);
        if (!asked_->count(k) && !nearest(k, {key}).empty())
          child(it->first, key_path(k)).fail(cat("unknown key '", k, "'; did you mean '", key, "'?"));
      }
    fail(cat("missing required key '", key_path(key), "'"));
  }
  return *c;
}

std::vector<Config> Config::items() const {
  if (!node_->IsSequence()) fail(cat("expected a list, found ", type_name_of(*node_)));
  std::vector<Config> out;
  for (size_t i = 0; i < node_->size(); ++i) out.push_back(child((*node_)[i], cat(path_, "[", i, "]")));
  return out;
}

// A map key as text; keys that are maps or lists are refused.
std::string Config::key_text(const YAML::Node& key) const {
  if (!key.IsScalar()) child(key, path_).fail(cat("a key must be a plain name, not ", type_name_of(key)));
  return key.Scalar();
}

std::vector<std::string> Config::keys() const {
  if (!node_->IsMap()) fail(cat("expected a section with keys, found ", type_name_of(*node_)));
  std::vector<std::string> out;
  for (auto it = node_->begin(); it != node_->end(); ++it) {
    out.push_back(key_text(it->first));
    asked_->insert(out.back());
  }
  return out;
}

void Config::fail(const std::string& message) const { throw ConfigError(cat(where(), ": ", message)); }

void Config::finish() const {
  if (!node_->IsMap()) return;
  for (auto it = node_->begin(); it != node_->end(); ++it) {
    const std::string key = key_text(it->first);
    if (asked_->count(key)) continue;
    std::string known;
    for (const auto& k : *asked_) known += (known.empty() ? "" : ", ") + k;
    const std::string near = did_you_mean(key, std::vector<std::string>(asked_->begin(), asked_->end()));
    Config bad = child(it->first, key_path(key));
    bad.fail(cat("unknown key '", key, "'", path_.empty() ? "" : cat(" in '", path_, "'"),
                 !near.empty()   ? near
                 : known.empty() ? std::string(" (this section takes no keys)")
                                 : cat("; known keys here: ", known)));
  }
}

std::string Config::choice(const std::string& key, const std::vector<std::string>& choices,
                           const std::string& fallback) const {
  std::string v = fallback.empty() ? get<std::string>(key) : get<std::string>(key, fallback);
  for (const auto& c : choices)
    if (c == v) return v;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  auto node = find(key);
  (node ? *node : *this).fail(cat("'", key_path(key), "' is '", v, "'; expected one of: ", list));
}

std::string Config::dump() const {
  YAML::Emitter e;
  e << *node_;
  return e.c_str();
}

namespace {

template <class T>
T convert_scalar(const YAML::Node& n, const Config& c, const char* expected) {
  if (!n.IsScalar()) c.fail(cat("expected ", expected, ", found ", type_name_of(n)));
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    c.fail(cat("expected ", expected, ", found '", n.Scalar(), "'"));
  }
}

}  // namespace

namespace {
bool glob(const char* p, const char* s) {
  if (*p == 0) return *s == 0;
  if (*p == '*') return glob(p + 1, s) || (*s && glob(p, s + 1));
  return *s && *p == *s && glob(p + 1, s + 1);
}
}  // namespace

bool glob_match(const std::string& pattern, const std::string& text) { return glob(pattern.c_str(), text.c_str()); }

template <>
std::string Config::as<std::string>() const {
  return convert_scalar<std::string>(*node_, *this, "a string");
}
template <>
bool Config::as<bool>() const {
  return convert_scalar<bool>(*node_, *this, "true or false");
}
template <>
int64_t Config::as<int64_t>() const {
  return convert_scalar<int64_t>(*node_, *this, "an integer");
}
template <>
int Config::as<int>() const {
  return convert_scalar<int>(*node_, *this, "an integer");
}
template <>
uint64_t Config::as<uint64_t>() const {
  return convert_scalar<uint64_t>(*node_, *this, "a non-negative integer");
}
template <>
double Config::as<double>() const {
  return convert_scalar<double>(*node_, *this, "a number");
}
template <>
float Config::as<float>() const {
  return static_cast<float>(as<double>());
}
template <>
std::vector<int64_t> Config::as<std::vector<int64_t>>() const {
  if (node_->IsScalar()) return {as<int64_t>()};
  std::vector<int64_t> out;
  for (const auto& item : items()) out.push_back(item.as<int64_t>());
  return out;
}
template <>
std::vector<double> Config::as<std::vector<double>>() const {
  if (node_->IsScalar()) return {as<double>()};
  std::vector<double> out;
  for (const auto& item : items()) out.push_back(item.as<double>());
  return out;
}
template <>
std::vector<std::string> Config::as<std::vector<std::string>>() const {
  if (node_->IsScalar()) return {as<std::string>()};
  std::vector<std::string> out;
  for (const auto& item : items()) out.push_back(item.as<std::string>());
  return out;
}

}  // namespace hubel
