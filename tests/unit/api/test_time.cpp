#include "api/time.hpp"

#include <doctest/doctest.h>

namespace api = mlctl::api;
using namespace std::chrono;

TEST_CASE("timestamps are RFC 3339 UTC with milliseconds and parse back") {
  const auto tp = system_clock::time_point(milliseconds(1'795'000'000'123LL));
  const auto text = api::format_time(tp);
  CHECK(text == "2026-11-18T11:06:40.123Z");
  CHECK(api::parse_time(text) == tp);
  CHECK(api::parse_time("2026-11-18T12:06:40.123+01:00") == tp);
  CHECK(api::parse_time("2026-11-18") == system_clock::time_point(seconds(1'795'000'000LL - 11 * 3600 - 6 * 60 - 40)));
  CHECK(api::parse_time("2026-11-18T08:26Z").has_value());
  CHECK(api::format_time(system_clock::time_point(milliseconds(-1))) == "1969-12-31T23:59:59.999Z");
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-18T25:00Z", "2026-11-18T08:26:40.Z",
                          "2026-11-18T08:26:40+0100", "12345"}) {
    CHECK_FALSE_MESSAGE(api::parse_time(bad).has_value(), bad);
  }
}

TEST_CASE("durations take a unit, or bare seconds where allowed") {
  CHECK(api::parse_duration("90s") == seconds(90));
  CHECK(api::parse_duration("10m") == minutes(10));
  CHECK(api::parse_duration("2h") == hours(2));
  CHECK(api::parse_duration("1d") == hours(24));
  CHECK_FALSE(api::parse_duration("30").has_value());
  CHECK(api::parse_duration("30", true) == seconds(30));
  for (const char* bad : {"", "m", "-5m", "5w", "1.5h", "ten", "5 m", "1000000000s"}) {
    CHECK_FALSE_MESSAGE(api::parse_duration(bad, true).has_value(), bad);
  }
}
