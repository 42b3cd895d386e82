#pragma once
// JSON text written and read by hand on hot paths (the gateway's answers and the pixels of its
// requests, the access log), where a general JSON library costs more than the work itself.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::util {

// Appends `s` to `out` as a JSON string literal (quotes included): `"` and `\` escaped, control
// characters as \n, \r, \t or \u00XX, and invalid UTF-8 (a decoded URL path may hold any byte)
// as U+FFFD, so the result is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

// The first character at or after `p` that is not JSON whitespace; `p` points into a text that
// ends with a NUL (as std::string's c_str() and simdjson's padded buffers do).
const char* skip_json_space(const char* p);

// Reads the JSON list of numbers that starts at `text` (at its `[`) when every number in it is
// short: at most 15 digits and no exponent, the way clients write pixels (0, 255, 0.5, 0.0039).
// Such a decimal m / 10^k is read exactly as a correctly rounding parser reads it (m < 2^53 and
// 10^k are exact doubles, so one IEEE division rounds once). Appends the numbers to `out` and
// returns a pointer past the list's `]`; returns nullptr, with `out` partly appended, for
// anything else: an empty list, a nested list, a longer number or an exponent, more than
// `limit` numbers in `out`, text that is not JSON. The caller reads those with a general
// parser. `text` must end with a NUL, the only bound the reader checks.
const char* read_short_numbers(const char* text, std::vector<double>& out, std::size_t limit);

} // namespace mlctl::util
