#pragma once
// INTERNAL to lib/server: includes httplib.h, so only lib/server/*.cpp may include it (the
// public headers stay free of it). Route modules share the platform state and the helpers
// that turn `Error`s into JSON error responses. Each feature adds one
// `register_<feature>_routes(httplib::Server&, Platform&)`, called from server.cpp.

#include "server/applications.hpp"
#include "server/artifact_check.hpp"
#include "server/events.hpp"
#include "server/gateway.hpp"
#include "server/health.hpp"
#include "server/inference.hpp"
#include "server/metrics.hpp"
#include "server/registry.hpp"
#include "server/request_store.hpp"
#include "server/rollouts.hpp"
#include "server/server.hpp"
#include "util/error.hpp"
#include "util/inflate.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <httplib.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::server::detail {

// What every route module may use; lives as long as the `Server`.
struct Platform {
  ServerOptions options;
  util::LogFn log;
  std::unique_ptr<Registry> registry;
  ArtifactLimits artifact_limits;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> stop_deadline_ns{0}; // steady_clock; meaningful once stopping
  std::vector<InferenceSink*> inference_sinks;
  std::unique_ptr<RequestStore> request_store; // requests.db; also one of `inference_sinks`
  // The monitors (issue 6): metrics and health (one of `inference_sinks`), and the webhook that
  // receives health changes (declared first: the monitors' worker posts to it).
  std::unique_ptr<Webhook> webhook;
  std::unique_ptr<Metrics> metrics;
  // The gateway (issue 5): models loaded once, the live routing table, the applications
  // API. Declared after the sinks so that its shadow worker stops before they go.
  std::unique_ptr<ModelPool> model_pool;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<Applications> applications;
  // Canary analyses (issue 7): its worker acts on the applications, so it is declared after
  // them (and stops first).
  std::unique_ptr<Rollouts> rollouts;

  // Returns true once a stop was requested and the grace period is over: long transfers
  // give up then.
  bool past_stop_deadline() const;
};

// Sends `value` as JSON with `status`.
void send_json(httplib::Response& res, int status, const nlohmann::json& value);
// Sends `{"error": {"code", "message"}}` with `status`.
void send_error(httplib::Response& res, int status, std::string_view code,
                std::string_view message);
// Sends the error body of `error` with the status of its kind.
void send_error(httplib::Response& res, const Error& error);
// `{"error": "message"}`: the Open Inference Protocol's error body.
std::string v2_error(std::string_view message);
// As above, in the form of `req`'s protocol: `{"error": "message"}` under /v2 (the Open
// Inference Protocol's, which Triton's and KServe's clients read), the project's elsewhere.
void send_error(const httplib::Request& req, httplib::Response& res, int status,
                std::string_view code, std::string_view message);

// Wraps a handler so that an `Error` becomes its JSON error response and anything else a 500
// "internal" (logged through `log`).
httplib::Server::Handler
guarded(const util::LogFn& log,
        std::function<void(const httplib::Request&, httplib::Response&)> fn);
httplib::Server::HandlerWithContentReader guarded(
    const util::LogFn& log,
    std::function<void(const httplib::Request&, httplib::Response&, const httplib::ContentReader&)>
        fn);

// Returns the caller: `X-Mlctl-User` when it is a plausible user name, else "anonymous", and
// the peer address.
Actor actor_of(const httplib::Request& req);

// Parses an integer query parameter in [min, max], `fallback` when absent. Throws
// `Error{invalid_input}` naming the parameter.
std::int64_t int_param(const httplib::Request& req, const char* key, std::int64_t fallback,
                       std::int64_t min, std::int64_t max);
// Returns true for `?key=true|1|yes`, false for absent or `false|0|no`; throws otherwise.
bool bool_param(const httplib::Request& req, const char* key);

// How deep a request body's JSON may nest: nlohmann::json's dump, comparisons and conversions
// recurse, and a body of 2 million nested lists (4 MB) overflowed a worker's stack.
inline constexpr int k_max_json_depth = 64;

// Returns the request body parsed as JSON. Throws `Error{invalid_input}`: "`what`: not valid
// JSON`hint`", or nested deeper than k_max_json_depth.
nlohmann::json body_json(const httplib::Request& req, std::string_view what = "request body",
                         std::string_view hint = "");
// Returns the application name of the route's first capture group. Throws
// `Error{invalid_input}` for an invalid name.
std::string application_of(const httplib::Request& req);

// Records how many body bytes this request read (for the access log of streamed bodies).
void note_bytes_in(std::uint64_t bytes);

// How the body of the inference request being served is compressed (`Content-Encoding: gzip`
// or `deflate`), or nothing. The pre-routing step takes the header off the request, so
// cpp-httplib reads the compressed bytes as they are (it would inflate them without a limit),
// and the inference routes inflate them under the body limit.
std::optional<util::Compression> compressed_body();

// An inference route: `POST /api/v1/applications/{name}/predict` or
// `POST /v2/models/{name}[/versions/{version}]/infer`.
struct InferenceRoute {
  enum class Kind { predict, v2_infer };
  Kind kind = Kind::predict;
  std::string name;
  std::optional<std::string> version;
};
// Returns the inference route a request target names (as cpp-httplib's patterns would match
// it), or nothing; targets with a query or %-escapes give nothing.
std::optional<InferenceRoute> match_inference_route(std::string_view target);
// Answers an inference request (the handler cpp-httplib calls for these routes).
void serve_inference(Platform& platform, const InferenceRoute& route, const httplib::Request& req,
                     httplib::Response& res);

void register_health_routes(httplib::Server& http, Platform& platform);
void register_registry_routes(httplib::Server& http, Platform& platform);
void register_application_routes(httplib::Server& http, Platform& platform);
void register_gateway_routes(httplib::Server& http, Platform& platform);
void register_request_routes(httplib::Server& http, Platform& platform);
void register_monitor_routes(httplib::Server& http, Platform& platform);
void register_rollout_routes(httplib::Server& http, Platform& platform);
// Starts the monitors (metrics, health, webhook) and adds them to `inference_sinks`; call
// before the gateway starts. `stop_monitoring` stops their worker (after the gateway).
void start_monitoring(Platform& platform);
void stop_monitoring(Platform& platform);

} // namespace mlctl::server::detail
