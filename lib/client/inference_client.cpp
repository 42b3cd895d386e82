#include "client/inference_client.hpp"

#include "api/errors.hpp"
#include "api/names.hpp"
#include "api/routes.hpp"
#include "client/http.hpp"
#include "util/error.hpp"

#include <array>
#include <chrono>
#include <cstdio>

namespace mlctl::client {

std::string images_body(std::span<const std::uint8_t> images, std::size_t pixels) {
  // Every byte value's text, computed once: the body of a large batch is mostly this.
  static const auto k_text = [] {
    std::array<std::string, 256> t;
    for (int v = 0; v < 256; ++v) {
      if (v == 0) {
        t[0] = "0.0";
      } else if (v == 255) {
        t[255] = "1.0";
      } else {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%.5f", v / 255.0);
        t[static_cast<std::size_t>(v)] = buf;
      }
    }
    return t;
  }();
  std::string out;
  out.reserve(16 + images.size() * 8);
  out += "{\"images\":[";
  const std::size_t count = pixels == 0 ? 0 : images.size() / pixels;
  for (std::size_t i = 0; i < count; ++i) {
    out += i == 0 ? "[" : ",[";
    for (std::size_t k = 0; k < pixels; ++k) {
      if (k != 0) {
        out += ',';
      }
      out += k_text[images[i * pixels + k]];
    }
    out += ']';
  }
  out += "]}";
  return out;
}

InferenceClient::InferenceClient(ApiClientOptions options) : m_options(std::move(options)) {
  if (m_options.server.rfind("http://", 0) != 0 && m_options.server.rfind("https://", 0) != 0) {
    throw Error(ErrorKind::invalid_input,
                "server '" + m_options.server + "': expected an http:// or https:// URL");
  }
  while (!m_options.server.empty() && m_options.server.back() == '/') {
    m_options.server.pop_back();
  }
}

InferenceReply InferenceClient::post_predict(std::string_view application,
                                             const std::string& body) {
  HttpRequest req;
  req.method = "POST";
  req.url = m_options.server + std::string(api::routes::k_api_prefix) + "/applications/" +
            api::routes::url_encode(application) + "/predict";
  req.headers = {{"Accept", "application/json"}, {"Content-Type", "application/json"}};
  if (!m_options.token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + m_options.token);
  }
  if (!m_options.user.empty()) {
    req.headers.emplace_back("X-Mlctl-User", m_options.user);
  }
  req.body = body;
  auto opts = http_options(m_options);
  opts.timeout = m_options.timeout;
  opts.retry_server_errors = false; // a POST is answered once; a 5xx is a result to report
  const auto t0 = std::chrono::steady_clock::now();
  const auto res = http_perform(req, opts);
  InferenceReply reply;
  reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  reply.status = res.status;
  if (const auto tp = res.headers.find("traceparent");
      tp != res.headers.end() && tp->second.size() >= 35) {
    reply.trace_id = tp->second.substr(3, 32);
  }
  if (res.status != 200) {
    if (const auto body_error = api::parse_error_body(res.body)) {
      reply.error = body_error->message;
    } else {
      const auto j = nlohmann::json::parse(res.body, nullptr, false);
      reply.error = j.is_object() && j.contains("error") && j["error"].is_string()
                        ? j["error"].get<std::string>()
                        : "HTTP " + std::to_string(res.status);
    }
    return reply;
  }
  with_context(
      req.url,
      [&] {
        const auto j = nlohmann::json::parse(res.body);
        for (const auto& p : j.at("predictions")) {
          reply.classes.push_back(p.at("class").get<std::int64_t>());
          reply.probabilities.push_back(p.at("probabilities").get<std::vector<float>>());
        }
        reply.model = j.at("model").get<std::string>();
        reply.variant = j.value("variant", std::string());
        if (j.contains("trace_id") && j["trace_id"].is_string()) {
          reply.trace_id = j["trace_id"].get<std::string>();
        }
      },
      ErrorKind::corrupt);
  return reply;
}

InferenceReply InferenceClient::predict(std::string_view application,
                                        std::span<const std::uint8_t> images, std::size_t pixels) {
  return post_predict(application, images_body(images, pixels));
}

} // namespace mlctl::client
