#pragma once
// Route paths of monitoring and maintenance (issue 6):
//
//   GET  /metrics                                         Prometheus text exposition
//   GET  /api/v1/applications/{name}/metrics?since=&step= time series (JSON)
//   GET  /api/v1/applications/{name}/health               health per version and its events
//   POST /api/v1/applications/{name}/explain              RISE: {"images", "masks", "grid", "p",
//   "seed", "model"} GET
//   /api/v1/applications/{name}/subsample?n=&since=&until=&strategy=&labeled=&seed=

#include <string>
#include <string_view>

namespace mlctl::api::routes {

inline constexpr std::string_view k_prometheus = "/metrics";

// Each returns the path of the route; `name` must be a valid name already.
inline std::string application_metrics(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/metrics";
}
inline std::string application_health(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/health";
}
inline std::string application_explain(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/explain";
}
inline std::string application_subsample(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/subsample";
}

namespace pattern {
inline constexpr const char* k_application_metrics = R"(/api/v1/applications/([^/]+)/metrics)";
inline constexpr const char* k_application_health = R"(/api/v1/applications/([^/]+)/health)";
inline constexpr const char* k_application_explain = R"(/api/v1/applications/([^/]+)/explain)";
inline constexpr const char* k_application_subsample = R"(/api/v1/applications/([^/]+)/subsample)";
} // namespace pattern

} // namespace mlctl::api::routes
