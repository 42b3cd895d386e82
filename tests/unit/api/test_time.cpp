#include "api/time.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <ctime>
#include <random>

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

TEST_CASE("format_time writes what gmtime_r and printf write, from 1700 to 2250") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    // Milliseconds from 1700-01-01 to 2250-01-01 (system_clock's nanoseconds reach 1677-2262).
    const auto ms = -8'520'336'000'000LL + static_cast<long long>(rng() % 17'356'291'200'000ULL);
    auto secs = static_cast<std::time_t>(ms / 1000);
    auto millis = static_cast<int>(ms % 1000);
    if (millis < 0) {
      millis += 1000;
      --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char want[96];
    std::snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    REQUIRE(api::format_time(system_clock::time_point(milliseconds(ms))) == want);
  }
  CHECK(api::format_time(system_clock::time_point(milliseconds(0))) == "1970-01-01T00:00:00.000Z");
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
