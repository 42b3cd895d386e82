#include "api/time.hpp"

#include <charconv>
#include <type_traits>

namespace mlctl::api {

std::string format_time(std::chrono::system_clock::time_point tp) {
  // Calendar arithmetic rather than gmtime_r and snprintf: every inference request stamps its
  // time, and glibc's gmtime_r takes a process-wide lock (tzset_lock) at each call, shared by
  // all the request threads.
  using namespace std::chrono;
  // Nanoseconds in 64 bits: years 1677-2262, always four digits.
  static_assert(std::is_same_v<system_clock::duration, nanoseconds>);
  const auto ms = floor<milliseconds>(tp);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  std::string out = "0000-00-00T00:00:00.000Z";
  const auto put = [&out](std::size_t end, auto value) { // the digits of value ending at `end`
    for (auto v = static_cast<long long>(value); v > 0; v /= 10) {
      out[--end] = static_cast<char>('0' + v % 10);
    }
  };
  put(4, static_cast<int>(date.year()));
  put(7, static_cast<unsigned>(date.month()));
  put(10, static_cast<unsigned>(date.day()));
  put(13, time.hours().count());
  put(16, time.minutes().count());
  put(19, time.seconds().count());
  put(23, time.subseconds().count());
  return out;
}

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) {
    return false;
  }
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

} // namespace

std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view s) {
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(s, 0, 4, year) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day)) {
    return std::nullopt;
  }
  std::size_t pos = 10;
  long long millis = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
    if (!digits(s, pos + 1, 2, hour) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, minute)) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!digits(s, pos + 1, 2, second)) {
        return std::nullopt;
      }
      pos += 3;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int scale = 100;
        const auto start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          millis += (s[pos] - '0') * scale;
          scale /= 10;
          ++pos;
        }
        if (pos == start) {
          return std::nullopt;
        }
      }
    }
  }
  long offset_seconds = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int oh = 0, om = 0;
      if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
          !digits(s, pos + 4, 2, om)) {
        return std::nullopt;
      }
      offset_seconds = (s[pos] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
      pos += 6;
    }
  }
  if (pos != s.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = timegm(&tm);
  return std::chrono::system_clock::from_time_t(t - offset_seconds) +
         std::chrono::milliseconds(millis);
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text, bool bare_seconds) {
  if (text.empty() || text.size() > 12) {
    return std::nullopt;
  }
  const bool has_unit = text.back() < '0' || text.back() > '9';
  if (!has_unit && !bare_seconds) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  const auto* end = text.data() + text.size() - (has_unit ? 1 : 0);
  const auto [p, ec] = std::from_chars(text.data(), end, n);
  if (ec != std::errc() || p != end || p == text.data() || n < 0 || n > 100'000'000) {
    return std::nullopt;
  }
  switch (has_unit ? text.back() : 's') {
  case 's':
    return std::chrono::seconds(n);
  case 'm':
    return std::chrono::minutes(n);
  case 'h':
    return std::chrono::hours(n);
  case 'd':
    return std::chrono::hours(24 * n);
  default:
    return std::nullopt;
  }
}

} // namespace mlctl::api
