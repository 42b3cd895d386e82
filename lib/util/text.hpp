#pragma once
// Small text helpers shared by the HTTP layer and the parsers of command-line expressions.

#include <algorithm>
#include <charconv>
#include <span>
#include <string>
#include <string_view>

namespace mlctl::util {

// `s` without the blanks (spaces and tabs) around it: an HTTP field value (RFC 9110's OWS),
// a term of a gate expression.
inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// True when `a` equals `lower` (lowercase) but for the case of its ASCII letters: an HTTP
// field name or token. Inline and locale-free (std::tolower is a libc call per character, on
// every header of every request).
inline bool iequals(std::string_view a, std::string_view lower) {
  return a.size() == lower.size() &&
         std::equal(a.begin(), a.end(), lower.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? static_cast<char>(x + ('a' - 'A')) : x) == y;
         });
}

// `v` in the fewest digits that read back as it, for messages: "0.1", "1", "-1e-09", "nan"
// (std::to_string gives "0.100000", and "-0.000000" for -1e-9).
inline std::string shortest_number(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// The name in `names` that `word` most likely misspells, for a "did you mean" hint: the nearest
// by edits (a character inserted, deleted or replaced, or two neighbours swapped: "trian" is 1
// from "train"), when it is at most 2 edits away and fewer than half of `word`'s characters,
// the first of `names` at that distance. Empty when no name is that near.
std::string nearest_name(std::string_view word, std::span<const std::string> names);

} // namespace mlctl::util
