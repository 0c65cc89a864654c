// Config: a checked view of one node of an experiment file (YAML). Every error names the
// file, the line and column, and the key path; every key a reader does not ask for is an
// error when the reader calls finish(), so a typo never passes silently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

// yaml-cpp stays behind this class: its header reaches only config.cpp.
namespace YAML {
class Node;
}

namespace hubel {

class Config {
 public:
  // Reads a YAML file. Missing file, unreadable file or a YAML syntax error: ConfigError.
  static Config load_file(const std::string& path);
  // Parses YAML text; `source` names it in errors (a file name, or "<string>").
  static Config parse(const std::string& text, const std::string& source = "<string>");

  // Assignment rebinds the handle (yaml-cpp's own node assignment would overwrite the
  // node's content in the document).
  Config(const Config&) = default;
  Config& operator=(const Config& o);
  Config& operator=(Config&& o) { return *this = static_cast<const Config&>(o); }

  // Applies "a.b.c=value" (list items by index: "model.layers.2.units=64"). The value is
  // read as YAML, so numbers stay numbers. Must be called on the root before reading.
  void apply_override(const std::string& assignment);

  // The source text (for checkpoints and run directories) and the source name.
  const std::string& text() const;
  const std::string& source() const;
  // The folder that relative paths in the document are relative to: the experiment file's
  // (load_file sets it, as an absolute path); "" for the current directory.
  const std::string& base() const;
  void set_base(const std::string& dir);
  // A path value: relative to base() when it comes from the document, to the current
  // directory when it comes from --set (the shell's), as is when absolute. Inputs (data
  // files, weights) are read this way; outputs (checkpoint.dir) are not.
  std::string path_of(const std::string& key) const;

  bool is_map() const;
  bool is_sequence() const;
  bool is_scalar() const;
  bool is_null() const;
  // Path from the root: "model.layers[2].units"; "" for the root.
  const std::string& path() const { return path_; }
  // "exp.yaml:14:7 (model.layers[2].units)", or "--set model.lr=0.1".
  std::string where() const;
  // The path of a key of this map node, for messages: "optimizer.lr".
  std::string key_path(const std::string& key) const;

  // Does this map have the key? (Asking counts as reading: the key is known.)
  bool has(const std::string& key) const;
  // A required child; ConfigError if it is missing.
  Config at(const std::string& key) const;
  // An optional child.
  std::optional<Config> find(const std::string& key) const;
  // Items of a sequence.
  std::vector<Config> items() const;
  // Keys of a map, in file order (all counted as read).
  std::vector<std::string> keys() const;

  // This scalar (or sequence, for vectors) as T; ConfigError naming the expected type.
  template <class T>
  T as() const;
  // A required value / a value with a default.
  template <class T>
  T get(const std::string& key) const {
    return at(key).as<T>();
  }
  template <class T>
  T get(const std::string& key, const T& fallback) const {
    auto c = find(key);
    return c && !c->is_null() ? c->as<T>() : fallback;
  }
  // A value from a closed set of choices; the error lists the choices.
  std::string choice(const std::string& key, const std::vector<std::string>& choices,
                     const std::string& fallback = "") const;

  // Throws ConfigError for the first key of this map that no one asked for, listing the
  // keys that are understood here.
  void finish() const;
  // Throws ConfigError "<where>: <message>".
  [[noreturn]] void fail(const std::string& message) const;

  // Renders this node as YAML text (for summaries and error messages).
  std::string dump() const;

  // Block parameters: a copy of this node in which any value written "$name" below it
  // reads as vars[name] (a node elsewhere in the file, with its own location). A "$name"
  // with no entry is an error listing the parameters; `context` names the block in it.
  using Vars = std::map<std::string, Config>;
  Config with_vars(Vars vars, std::string context) const;

 private:
  struct Document;
  Config(std::shared_ptr<Document> doc, const YAML::Node& node, std::string path);
  Config child(const YAML::Node& n, const std::string& path) const;
  std::string key_text(const YAML::Node& key) const;

  std::shared_ptr<Document> doc_;
  std::shared_ptr<YAML::Node> node_;  // a handle into doc_'s tree
  std::string path_;
  // Keys of this map that a reader asked for; shared by copies of this Config.
  std::shared_ptr<std::set<std::string>> asked_;
  struct Scope {
    Vars vars;
    std::string context;
  };
  std::shared_ptr<const Scope> scope_;
};

// Does `text` match `pattern`, where '*' stands for any run of characters? (Layer and
// parameter patterns of experiment files: "conv*", "stage2.*", "*/b".)
bool glob_match(const std::string& pattern, const std::string& text);

template <>
std::string Config::as<std::string>() const;
template <>
bool Config::as<bool>() const;
template <>
int Config::as<int>() const;
template <>
int64_t Config::as<int64_t>() const;
template <>
uint64_t Config::as<uint64_t>() const;
template <>
double Config::as<double>() const;
template <>
float Config::as<float>() const;
template <>
std::vector<int64_t> Config::as<std::vector<int64_t>>() const;
template <>
std::vector<double> Config::as<std::vector<double>>() const;
template <>
std::vector<std::string> Config::as<std::vector<std::string>>() const;

}  // namespace hubel
