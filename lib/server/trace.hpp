#pragma once
// W3C Trace Context (`traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`): a
// request that carries a valid header keeps its trace id; any other gets a fresh one: the Unix
// time in milliseconds (12 hex digits), then 80 random bits.

#include <string>
#include <string_view>

namespace mlctl::server {

struct TraceContext {
  std::string trace_id; // 32 lowercase hex
  std::string span_id;  // 16 lowercase hex, this server's span

  // Returns `00-<trace_id>-<span_id>-01`.
  std::string traceparent() const;
};

// Continues the trace of a valid `traceparent` header value (a new span id), or starts a new
// trace when `header` is empty or malformed (all-zero ids are malformed).
TraceContext trace_from_header(std::string_view header);

} // namespace mlctl::server
