// "Did you mean ...?": the known words nearest a mistyped one (a command, an option, a key,
// a layer type), by edit distance with transpositions (Damerau-Levenshtein), close enough
// to be a typo: at most 1 edit for words of up to 4 letters, 2 up to 8, 3 beyond.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace hubel {

inline int64_t edit_distance(const std::string& a, const std::string& b) {
  const auto n = static_cast<int64_t>(a.size()), m = static_cast<int64_t>(b.size());
  std::vector<std::vector<int64_t>> d(static_cast<size_t>(n + 1), std::vector<int64_t>(static_cast<size_t>(m + 1)));
  for (int64_t i = 0; i <= n; ++i) d[i][0] = i;
  for (int64_t j = 0; j <= m; ++j) d[0][j] = j;
  for (int64_t i = 1; i <= n; ++i)
    for (int64_t j = 1; j <= m; ++j) {
      const int64_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

// The candidates within typo distance of word, nearest first (ties in the given order), at
// most `most` of them.
inline std::vector<std::string> nearest(const std::string& word, const std::vector<std::string>& candidates,
                                        size_t most = 3) {
  const int64_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  std::vector<std::pair<int64_t, std::string>> scored;
  for (const auto& c : candidates)
    if (const int64_t d = edit_distance(word, c); d <= limit && c != word) scored.emplace_back(d, c);
  std::stable_sort(scored.begin(), scored.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < most; ++i) out.push_back(scored[i].second);
  return out;
}

// "; did you mean 'x'?" or "; did you mean 'x', 'y' or 'z'?" (empty when nothing is near).
inline std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                                const std::string& quote = "'") {
  const auto near = nearest(word, candidates);
  if (near.empty()) return {};
  std::string s = "; did you mean ";
  for (size_t i = 0; i < near.size(); ++i)
    s += (i == 0 ? "" : i + 1 == near.size() ? " or " : ", ") + quote + near[i] + quote;
  return s + "?";
}

}  // namespace hubel
