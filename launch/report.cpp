// The HTML report.
#include "launch/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "framework/error.hpp"

namespace hubel::launch {

namespace fs = std::filesystem;

std::map<std::string, std::string> parse_json_line(const std::string& line) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto ws = [&] {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  };
  auto str = [&](std::string& s) {
    if (i >= line.size() || line[i] != '"') return false;
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      s += line[i];
    }
    if (i >= line.size()) return false;
    ++i;
    return true;
  };
  ws();
  if (i >= line.size() || line[i] != '{') return {};
  ++i;
  while (true) {
    ws();
    if (i < line.size() && line[i] == '}') return out;
    std::string key, value;
    if (!str(key)) return {};
    ws();
    if (i >= line.size() || line[i] != ':') return {};
    ++i;
    ws();
    if (i < line.size() && line[i] == '"') {
      if (!str(value)) return {};
    } else {
      while (i < line.size() && line[i] != ',' && line[i] != '}' && !std::isspace(static_cast<unsigned char>(line[i])))
        value += line[i++];
      if (value.empty()) return {};
    }
    out[key] = value;
    ws();
    if (i < line.size() && line[i] == ',') {
      ++i;
      continue;
    }
    if (i < line.size() && line[i] == '}') return out;
    return {};
  }
}

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v, int digits = 4) {
  std::ostringstream os;
  os << std::setprecision(digits) << v;
  return os.str();
}

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;
  bool thin = false;
};

// "Nice" tick positions covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo > 0 ? hi - lo : 1;
  const double raw = span / 5, mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag >= 5 ? 5 * mag : raw / mag >= 2 ? 2 * mag : mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step)
    t.push_back(std::abs(v) < 1e-12 * span ? 0 : v);
  return t;
}

std::string base64(const std::vector<uint8_t>& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    const uint32_t v = (uint32_t{in[i]} << 16) | (i + 1 < in.size() ? uint32_t{in[i + 1]} << 8 : 0) |
                       (i + 2 < in.size() ? uint32_t{in[i + 2]} : 0);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

// An SVG line chart with axes, their titles, ticks, a legend and dashed marks at the
// epochs' ends (x values); as wide as the page allows.
std::string chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                  const std::vector<Series>& series, const std::vector<double>& marks = {}) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  std::ostringstream os;
  os << "<figure><figcaption>" << escape(title) << "</figcaption>";
  if (x0 > x1) return os.str() + "<p class=\"none\">no data yet</p></figure>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    const double d = y0 != 0 ? 0.5 * std::abs(y0) : 1;
    y0 -= d, y1 += d;
  }
  const double pad = 0.05 * (y1 - y0);
  y0 = y0 - pad < 0 && y0 >= 0 ? 0 : y0 - pad;
  y1 += pad;
  const double W = 640, H = 300, L = 70, R = 15, T = 15, B = 45;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 " << W << " " << H
     << "\" role=\"img\">";
  os << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
     << "\" fill=\"#fff\" stroke=\"#999\"/>";
  for (double t : ticks(y0, y1))
    os << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(t) << "\" y2=\"" << py(t)
       << "\" stroke=\"#eee\"/><text x=\"" << L - 6 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">" << num(t)
       << "</text>";
  for (double t : ticks(x0, x1))
    os << "<line y1=\"" << T << "\" y2=\"" << H - B << "\" x1=\"" << px(t) << "\" x2=\"" << px(t)
       << "\" stroke=\"#eee\"/><text x=\"" << px(t) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">"
       << num(t, 6) << "</text>";
  os << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << escape(xlabel)
     << "</text><text transform=\"translate(14," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
     << escape(ylabel) << "</text>";
  for (double m : marks)
    if (m > x0 && m < x1)
      os << "<line y1=\"" << T << "\" y2=\"" << H - B << "\" x1=\"" << num(px(m), 7) << "\" x2=\"" << num(px(m), 7)
         << "\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>";
  std::string legend;
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    os << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"" << (s.thin ? 1 : 2) << "\""
       << (s.thin ? " stroke-opacity=\"0.7\"" : "") << " points=\"";
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) os << num(px(x), 7) << "," << num(py(y), 7) << " ";
    os << "\"/>";
    if (!s.thin)
      for (const auto& [x, y] : s.points)
        if (std::isfinite(x) && std::isfinite(y))
          os << "<circle cx=\"" << num(px(x), 7) << "\" cy=\"" << num(py(y), 7) << "\" r=\"2.5\" fill=\"" << s.color
             << "\"/>";
    legend += cat("<span class=\"key\"><span style=\"color:", s.color, "\">&#9632;</span> ", escape(s.name), "</span>");
  }
  os << "</svg><div class=\"legend\">" << legend << "</div></figure>";
  return os.str();
}

double value(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end() || it->second == "null") return std::nan("");
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    return std::nan("");
  }
}

}  // namespace

void write_report(const fs::path& run_dir, const ReportInputs& in) {
  std::vector<std::map<std::string, std::string>> steps, epochs;
  std::map<std::string, std::string> test;
  std::string heldout = "held-out";
  {
    std::ifstream f(run_dir / "metrics.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      auto m = parse_json_line(line);
      const std::string kind = m.count("kind") ? m["kind"] : "";
      if (kind == "step")
        steps.push_back(std::move(m));
      else if (kind == "epoch") {
        if (m.count("heldout")) heldout = m["heldout"];
        epochs.push_back(std::move(m));
      } else if (kind == "test")
        test = std::move(m);
    }
  }
  Series step_loss{"train (between logged steps)", "#6baed6", {}, true}, train_loss{"train", "#08519c", {}},
      held_loss{heldout, "#d94801", {}};
  Series step_acc = step_loss, train_acc = train_loss, held_acc = held_loss;
  step_acc.points.clear(), train_acc.points.clear(), held_acc.points.clear();
  Series lr{"learning rate", "#238b45", {}};
  Series step_rate{"between logged steps", "#6baed6", {}, true}, epoch_rate{"epoch", "#08519c", {}};
  Series wait{"wait for the gradients", "#d94801", {}};
  Series fastest{"fastest rank", "#238b45", {}}, slowest{"slowest rank", "#cb181d", {}};
  std::vector<double> marks;
  for (const auto& m : steps) {
    const double s = value(m, "step");
    step_loss.points.emplace_back(s, value(m, "loss"));
    step_acc.points.emplace_back(s, value(m, "accuracy"));
    lr.points.emplace_back(s, value(m, "lr"));
    step_rate.points.emplace_back(s, value(m, "samples_per_second"));
  }
  bool has_accuracy = false;
  int slowest_rank = -1;
  for (const auto& m : epochs) {
    const double s = value(m, "steps");
    marks.push_back(s);
    train_loss.points.emplace_back(s, value(m, "train_loss"));
    held_loss.points.emplace_back(s, value(m, "heldout_loss"));
    train_acc.points.emplace_back(s, value(m, "train_accuracy"));
    held_acc.points.emplace_back(s, value(m, "heldout_accuracy"));
    has_accuracy = has_accuracy || std::isfinite(value(m, "train_accuracy"));
    if (steps.empty()) lr.points.emplace_back(s, value(m, "lr"));
    epoch_rate.points.emplace_back(s, value(m, "samples_per_second"));
    wait.points.emplace_back(s, value(m, "comm_wait_ms"));
    fastest.points.emplace_back(s, value(m, "busy_ms_min"));
    slowest.points.emplace_back(s, value(m, "busy_ms_max"));
    if (std::isfinite(value(m, "slowest_rank"))) slowest_rank = static_cast<int>(value(m, "slowest_rank"));
  }
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hubel report: " << escape(in.title)
       << "</title>\n<style>body{font-family:sans-serif;margin:2em;color:#222}figure{display:inline-block;margin:0 1em "
          "1em 0}"
          "figcaption{font-weight:bold;margin-bottom:.3em}svg "
          "text{font-size:11px;fill:#333}pre{background:#f6f6f6;padding:1em;"
          "overflow-x:auto;font-size:12px}table.cm{border-collapse:collapse;font-size:12px}table.cm td,table.cm "
          "th{border:1px solid "
          "#ccc;padding:3px 6px;text-align:right}table.cm "
          "th{background:#f0f0f0}.none{color:#888}.legend{font-size:12px}.key{margin-right:1.2em}"
          "figure{width:min(640px,100%)}table.about td,table.about th{text-align:left;padding:2px 12px 2px 0;"
          "vertical-align:top}table.about td{font-family:monospace}.worst figure{width:auto;text-align:center}"
          ".worst img{image-rendering:pixelated;border:1px solid #ccc}</style></head><body>\n";
  html << "<h1>hubel report</h1><p>Experiment <code>" << escape(in.title) << "</code>; " << epochs.size()
       << " epoch(s) logged";
  if (!epochs.empty()) html << ", " << num(value(epochs.back(), "steps"), 10) << " steps";
  if (!test.empty() && std::isfinite(value(test, "accuracy")))
    html << "; final " << escape(in.eval_name) << " accuracy <b>" << num(100 * value(test, "accuracy"), 4)
         << "%</b> on " << num(value(test, "samples"), 10) << " samples";
  html << ".</p>\n";
  if (!in.about.empty()) {
    html << "<table class=\"about\">";
    for (const auto& [k, v] : in.about) html << "<tr><th>" << escape(k) << "</th><td>" << escape(v) << "</td></tr>";
    html << "</table>\n";
  }
  if (fs::exists(run_dir / "visualize" / "visualize.html"))
    html << "<p><a href=\"visualize/visualize.html\">Filters and feature maps</a> (hubel visualize)</p>\n";
  html << "<h2>Curves</h2>\n<p>Dashed lines: the ends of the epochs.</p>\n";
  html << chart("Loss", "step", "loss", {step_loss, train_loss, held_loss}, marks);
  if (has_accuracy) html << chart("Accuracy", "step", "accuracy", {step_acc, train_acc, held_acc}, marks);
  html << chart("Learning rate", "step", "learning rate", {lr}, marks);
  html << chart("Throughput", "step", "samples per second", {step_rate, epoch_rate}, marks);
  html << chart("Waiting for the gradients (allreduce after backward)", "step", "ms per step", {wait}, marks);
  html << chart(slowest_rank >= 0
                    ? cat("Step time without that wait, per rank (slowest in the last epoch: rank ", slowest_rank, ")")
                    : std::string("Step time without that wait, per rank"),
                "step", "ms per step", {fastest, slowest}, marks);
  if (in.classes > 0 && static_cast<int64_t>(in.confusion.size()) == in.classes * in.classes) {
    const int64_t K = in.classes;
    auto name = [&](int64_t k) {
      return static_cast<int64_t>(in.class_names.size()) == K ? escape(in.class_names[static_cast<size_t>(k)])
                                                              : std::to_string(k);
    };
    int64_t total = 0, correct = 0, peak = 1;
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) {
        const int64_t v = in.confusion[static_cast<size_t>(i * K + j)];
        total += v;
        if (i == j) correct += v;
        peak = std::max(peak, v);
      }
    html << "<h2>Confusion matrix (" << escape(in.eval_name) << ", " << total << " samples, accuracy "
         << num(total ? 100.0 * static_cast<double>(correct) / static_cast<double>(total) : 0, 4)
         << "%)</h2>\n<p>Rows: true class; columns: predicted class.</p><table class=\"cm\"><tr><th>true \\ "
            "predicted</th>";
    for (int64_t j = 0; j < K; ++j) html << "<th>" << name(j) << "</th>";
    html << "<th>class accuracy</th></tr>\n";
    for (int64_t i = 0; i < K; ++i) {
      int64_t row = 0;
      for (int64_t j = 0; j < K; ++j) row += in.confusion[static_cast<size_t>(i * K + j)];
      html << "<tr><th>" << name(i) << "</th>";
      for (int64_t j = 0; j < K; ++j) {
        const int64_t v = in.confusion[static_cast<size_t>(i * K + j)];
        const double a = static_cast<double>(v) / static_cast<double>(peak);
        const double shade = i == j ? a : std::min(1.0, 4 * a);
        html << "<td style=\"background:rgba(" << (i == j ? "33,113,181," : "215,48,39,") << num(shade, 3) << ")"
             << (shade > 0.55 ? ";color:#fff" : "") << "\">" << v << "</td>";
      }
      html << "<td>"
           << (row ? num(100.0 * static_cast<double>(in.confusion[static_cast<size_t>(i * K + i)]) /
                             static_cast<double>(row),
                         4) +
                         "%"
                   : "-")
           << "</td></tr>\n";
    }
    html << "</table>\n";
  }
  if (!in.worst.empty()) {
    html << "<h2>The misclassified " << escape(in.eval_name)
         << " samples with the highest loss</h2>\n<div class=\"worst\">";
    for (const auto& w : in.worst)
      html << "<figure><img alt=\"" << escape(w.caption) << "\" src=\"data:image/png;base64," << base64(w.png)
           << "\"><figcaption style=\"font-weight:normal;font-size:12px\">" << escape(w.caption)
           << "</figcaption></figure>";
    html << "</div>\n";
  }
  html << "<h2>Model</h2><pre>" << escape(in.summary) << "</pre>\n<h2>Experiment as run</h2><pre>"
       << escape(in.experiment) << "</pre>\n</body></html>\n";
  const fs::path out = run_dir / "report.html", tmp = run_dir / ".report.html.tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << html.str();
    if (!f.flush()) throw DataError(cat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec) throw DataError(cat("cannot write ", out.string(), ": ", ec.message()));
}

}  // namespace hubel::launch
