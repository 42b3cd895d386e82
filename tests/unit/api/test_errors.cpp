#include "api/errors.hpp"

#include <doctest/doctest.h>

using mlctl::Error;
using mlctl::ErrorKind;
namespace api = mlctl::api;

TEST_CASE("every error kind maps to a status and back") {
  const std::pair<ErrorKind, int> table[] = {{ErrorKind::invalid_input, 400},
                                             {ErrorKind::corrupt, 400},
                                             {ErrorKind::not_found, 404},
                                             {ErrorKind::conflict, 409},
                                             {ErrorKind::unavailable, 503},
                                             {ErrorKind::interrupted, 503},
                                             {ErrorKind::io, 500},
                                             {ErrorKind::internal, 500},
                                             {ErrorKind::no_space, 507}};
  for (const auto& [kind, status] : table) {
    CHECK(api::http_status(kind) == status);
    // The wire code carries the exact kind back.
    CHECK(api::error_kind_for(status, mlctl::to_string(kind)) == kind);
  }
}

TEST_CASE("statuses without a known code map by status") {
  CHECK(api::error_kind_for(404, "") == ErrorKind::not_found);
  CHECK(api::error_kind_for(409, "") == ErrorKind::conflict);
  CHECK(api::error_kind_for(502, "") == ErrorKind::unavailable);
  CHECK(api::error_kind_for(503, "") == ErrorKind::unavailable);
  CHECK(api::error_kind_for(504, "") == ErrorKind::unavailable);
  CHECK(api::error_kind_for(401, "unauthorized") == ErrorKind::invalid_input);
  CHECK(api::error_kind_for(413, "too_large") == ErrorKind::invalid_input);
  CHECK(api::error_kind_for(500, "") == ErrorKind::internal);
  CHECK(api::error_kind_for(500, "internal") == ErrorKind::internal);
  CHECK(api::error_kind_for(507, "") == ErrorKind::no_space);
}

TEST_CASE("error bodies round-trip and foreign bodies are recognised as such") {
  const auto body = api::error_json(Error(ErrorKind::conflict, "model mnist:3 is in use"));
  CHECK(body == R"({"error":{"code":"conflict","message":"model mnist:3 is in use"}})");
  const auto parsed = api::parse_error_body(body);
  REQUIRE(parsed.has_value());
  CHECK(parsed->code == "conflict");
  CHECK(parsed->message == "model mnist:3 is in use");
  const auto v2 = api::parse_error_body(R"({"error": "bad shape"})");
  REQUIRE(v2.has_value());
  CHECK(v2->code.empty());
  CHECK(v2->message == "bad shape");
  CHECK_FALSE(api::parse_error_body("<html>502 Bad Gateway</html>").has_value());
  CHECK_FALSE(api::parse_error_body(R"({"models": []})").has_value());
  // Invalid UTF-8 in a message never breaks the JSON.
  CHECK(nlohmann::json::parse(api::error_json("invalid_input", "bad \xff byte")).is_object());
}
