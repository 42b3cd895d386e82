#include "util/text.hpp"

#include <cstddef>
#include <vector>

namespace mlctl::util {

namespace {

// Edits from `a` to `b` (optimal string alignment: a swap of neighbours counts as one edit).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  // Three rows of the (n + 1) × (m + 1) table: the row before the last, the last, this one.
  std::vector<std::size_t> before(m + 1), last(m + 1), row(m + 1);
  for (std::size_t j = 0; j <= m; ++j) {
    last[j] = j;
  }
  for (std::size_t i = 1; i <= n; ++i) {
    row[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t replace = last[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({last[j] + 1, row[j - 1] + 1, replace});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        row[j] = std::min(row[j], before[j - 2] + 1);
      }
    }
    before.swap(last);
    last.swap(row);
  }
  return last[m];
}

} // namespace

std::string nearest_name(std::string_view word, std::span<const std::string> names) {
  if (word.empty()) {
    return {};
  }
  const std::size_t limit = std::min<std::size_t>(2, (word.size() - 1) / 2);
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const auto& name : names) {
    const auto d = edit_distance(word, name);
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  return best;
}

} // namespace mlctl::util
