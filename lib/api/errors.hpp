#pragma once
// The one table between error kinds and HTTP statuses, and the JSON error body of the
// platform API: `{"error": {"code": "not_found", "message": "..."}}`. The server maps an
// `Error` to a status with it; the client maps the status and code back, so a 409 is
// `conflict` on both sides.

#include "util/error.hpp"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mlctl::api {

// Wire codes that have no `ErrorKind` of their own (HTTP-level refusals).
inline constexpr std::string_view k_code_unauthorized = "unauthorized";      // 401
inline constexpr std::string_view k_code_forbidden = "forbidden";            // 403
inline constexpr std::string_view k_code_too_large = "too_large";            // 413
inline constexpr std::string_view k_code_method_not_allowed = "method_not_allowed"; // 405
inline constexpr std::string_view k_code_unsupported = "unsupported";        // 501

// Returns the HTTP status for `kind`: invalid_input and corrupt 400, not_found 404,
// conflict 409, unavailable and interrupted 503, io and internal 500.
int http_status(ErrorKind kind);

// Returns the kind a client reports for a response with `status` and wire `code`: the kind
// named by `code` when it is one (`not_found`, ...); otherwise by status: 404 not_found,
// 409 conflict, 502/503/504 unavailable, 400/401/403/405/413/other 4xx invalid_input,
// other 5xx internal.
ErrorKind error_kind_for(int status, std::string_view code);

struct ErrorBody {
  std::string code;    // an `ErrorKind` name or one of the `k_code_*` above
  std::string message; // one lowercase line
};

// Returns the JSON text `{"error": {"code": ..., "message": ...}}`.
std::string error_json(std::string_view code, std::string_view message);
// Returns the error body of an `Error` (code = the kind's name).
std::string error_json(const Error& error);
// Parses an error body; returns nothing when `body` is not one (e.g. a proxy's HTML page).
std::optional<ErrorBody> parse_error_body(std::string_view body);

} // namespace mlctl::api
