#pragma once
// Timestamps on the wire: RFC 3339 in UTC with milliseconds ("2026-11-28T12:00:00.123Z"),
// so their text order is their time order.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mlctl::api {

// Returns `tp` as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string format_time(std::chrono::system_clock::time_point tp);

// Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fraction]]" with "Z", "+HH:MM" or "-HH:MM"
// (none means UTC); returns nothing for anything else.
std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view text);

// Parses a duration: a whole number with a unit `s`, `m`, `h` or `d` ("90s", "10m"), or, when
// `bare_seconds`, a plain number of seconds; returns nothing for anything else (negative, over
// 100,000,000 units, another unit).
std::optional<std::chrono::seconds> parse_duration(std::string_view text, bool bare_seconds = false);

} // namespace mlctl::api
