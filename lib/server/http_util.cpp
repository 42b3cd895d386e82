#include "api/errors.hpp"
#include "api/names.hpp"
#include "server/http_internal.hpp"
#include "util/json_text.hpp"

#include <algorithm>
#include <charconv>

namespace mlctl::server::detail {

bool Platform::past_stop_deadline() const {
  if (!stopping.load()) {
    return false;
  }
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() > stop_deadline_ns.load();
}

void send_json(httplib::Response& res, int status, const nlohmann::json& value) {
  res.status = status;
  res.set_content(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, std::string_view code, std::string_view message) {
  res.status = status;
  res.set_content(api::error_json(code, message), "application/json");
}

void send_error(httplib::Response& res, const Error& error) {
  send_error(res, api::http_status(error.kind()), to_string(error.kind()), error.what());
}

std::string v2_error(std::string_view message) {
  std::string out = "{\"error\":";
  util::append_json_string(out, message);
  out += '}';
  return out;
}

void send_error(const httplib::Request& req, httplib::Response& res, int status,
                std::string_view code, std::string_view message) {
  if (req.path == "/v2" || req.path.starts_with("/v2/")) {
    res.status = status;
    res.set_content(v2_error(message), "application/json");
    return;
  }
  send_error(res, status, code, message);
}

httplib::Server::Handler guarded(const util::LogFn& log,
                                 std::function<void(const httplib::Request&, httplib::Response&)> fn) {
  return [log, fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
    try {
      fn(req, res);
    } catch (const Error& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      if (log) {
        log(std::string("internal error in ") + req.method + " " + req.path + ": " + e.what());
      }
      send_error(res, 500, "internal", std::string("internal error: ") + e.what());
    }
  };
}

httplib::Server::HandlerWithContentReader guarded(
    const util::LogFn& log,
    std::function<void(const httplib::Request&, httplib::Response&, const httplib::ContentReader&)> fn) {
  return [log, fn = std::move(fn)](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& reader) {
    try {
      fn(req, res, reader);
    } catch (const Error& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      if (log) {
        log(std::string("internal error in ") + req.method + " " + req.path + ": " + e.what());
      }
      send_error(res, 500, "internal", std::string("internal error: ") + e.what());
    }
  };
}

Actor actor_of(const httplib::Request& req) {
  Actor actor;
  actor.remote = req.remote_addr;
  const auto user = req.get_header_value("X-Mlctl-User");
  const bool plausible = !user.empty() && user.size() <= 64 && std::all_of(user.begin(), user.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '@';
  });
  if (plausible) {
    actor.user = user;
  }
  return actor;
}

std::int64_t int_param(const httplib::Request& req, const char* key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) {
  if (!req.has_param(key)) {
    return fallback;
  }
  const auto text = req.get_param_value(key);
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < min || v > max) {
    throw Error(ErrorKind::invalid_input, std::string(key) + " '" + text.substr(0, 20) + "': must be an integer in " +
                                              std::to_string(min) + ".." + std::to_string(max));
  }
  return v;
}

bool bool_param(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) {
    return false;
  }
  const auto v = req.get_param_value(key);
  if (v == "true" || v == "1" || v == "yes" || v.empty()) {
    return true;
  }
  if (v == "false" || v == "0" || v == "no") {
    return false;
  }
  throw Error(ErrorKind::invalid_input, std::string(key) + " '" + v.substr(0, 20) + "': expected true or false");
}

nlohmann::json body_json(const httplib::Request& req, std::string_view what,
                         std::string_view hint) {
  const auto depth_check = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > k_max_json_depth) {
      throw Error(ErrorKind::invalid_input, std::string(what) + ": JSON nested deeper than " +
                                                std::to_string(k_max_json_depth) + " levels");
    }
    return true;
  };
  auto json = nlohmann::json::parse(req.body, depth_check, false);
  if (json.is_discarded()) {
    throw Error(ErrorKind::invalid_input,
                std::string(what) + ": not valid JSON" + std::string(hint));
  }
  return json;
}

std::string application_of(const httplib::Request& req) {
  auto name = req.matches[1].str();
  api::validate_name(name, "application name");
  return name;
}

} // namespace mlctl::server::detail
