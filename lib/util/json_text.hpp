#pragma once
// JSON text written by hand on hot paths (the gateway's answers, the access log), where building
// an nlohmann::json value costs more than the answer itself.

#include <string>
#include <string_view>

namespace mlctl::util {

// Appends `s` to `out` as a JSON string literal (quotes included): `"` and `\` escaped, control
// characters as \n, \r, \t or \u00XX, and invalid UTF-8 (a decoded URL path may hold any byte)
// as U+FFFD, so the result is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

} // namespace mlctl::util
