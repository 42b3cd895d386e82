#include "api/errors.hpp"

namespace mlctl::api {

int http_status(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::invalid_input:
  case ErrorKind::corrupt:
    return 400;
  case ErrorKind::not_found:
    return 404;
  case ErrorKind::conflict:
    return 409;
  case ErrorKind::unavailable:
  case ErrorKind::interrupted:
    return 503;
  case ErrorKind::no_space:
    return 507; // Insufficient Storage (RFC 4918)
  case ErrorKind::io:
  case ErrorKind::internal:
    return 500;
  }
  return 500;
}

ErrorKind error_kind_for(int status, std::string_view code) {
  // A code that names a kind wins, except `internal`, which is also what unknown names give.
  if (!code.empty() && code != "internal") {
    const auto kind = error_kind_from_string(code);
    if (kind != ErrorKind::internal) {
      return kind;
    }
  } else if (code == "internal") {
    return ErrorKind::internal;
  }
  if (status == 404) {
    return ErrorKind::not_found;
  }
  if (status == 409) {
    return ErrorKind::conflict;
  }
  if (status == 502 || status == 503 || status == 504) {
    return ErrorKind::unavailable;
  }
  if (status == 507) {
    return ErrorKind::no_space;
  }
  if (status >= 400 && status < 500) {
    return ErrorKind::invalid_input;
  }
  return ErrorKind::internal;
}

std::string error_json(std::string_view code, std::string_view message) {
  const nlohmann::json body = {{"error", {{"code", code}, {"message", message}}}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string error_json(const Error& error) { return error_json(to_string(error.kind()), error.what()); }

std::optional<ErrorBody> parse_error_body(std::string_view body) {
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return std::nullopt;
  }
  const auto it = json.find("error");
  if (it == json.end()) {
    return std::nullopt;
  }
  // Our own form is an object; the Open Inference Protocol's is a bare string.
  if (it->is_string()) {
    return ErrorBody{"", it->get<std::string>()};
  }
  if (!it->is_object()) {
    return std::nullopt;
  }
  ErrorBody out;
  if (const auto c = it->find("code"); c != it->end() && c->is_string()) {
    out.code = c->get<std::string>();
  }
  if (const auto m = it->find("message"); m != it->end() && m->is_string()) {
    out.message = m->get<std::string>();
  }
  return out;
}

} // namespace mlctl::api
