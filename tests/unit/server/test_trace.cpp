#include "server/trace.hpp"

#include <chrono>
#include <doctest/doctest.h>

using mlctl::server::trace_from_header;

TEST_CASE("a valid traceparent keeps its trace id; anything else starts a new trace") {
  const auto t = trace_from_header("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(t.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(t.span_id.size() == 16);
  CHECK(t.span_id != "00f067aa0ba902b7");
  CHECK(t.traceparent() == "00-4bf92f3577b34da6a3ce929d0e0e4736-" + t.span_id + "-01");
  for (const char* bad : {"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
    const auto n = trace_from_header(bad);
    CHECK_MESSAGE(n.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736", bad);
    CHECK(n.trace_id.size() == 32);
    CHECK(n.trace_id.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  // A later version may append fields.
  CHECK(
      trace_from_header("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").trace_id ==
      "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(trace_from_header("").trace_id != trace_from_header("").trace_id);
}

TEST_CASE("a fresh trace id starts with the time in milliseconds and is otherwise random") {
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto a = trace_from_header("").trace_id;
  const auto b = trace_from_header("").trace_id;
  REQUIRE(a.size() == 32);
  const auto stamped = std::stoll(a.substr(0, 12), nullptr, 16);
  CHECK(stamped >= before);
  CHECK(stamped <= before + 2000);
  CHECK(a.substr(12) != b.substr(12));
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
}
