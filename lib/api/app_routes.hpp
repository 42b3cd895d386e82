#pragma once
// Route paths of applications and the inference gateway (the registry's are in routes.hpp):
//
//   GET    /api/v1/applications                    {"applications": [...]}
//   GET    /api/v1/applications/{name}             one application (server/applications.hpp)
//   PUT    /api/v1/applications/{name}             body: the canonical Application document
//   DELETE /api/v1/applications/{name}
//   GET    /api/v1/applications/{name}/revisions
//   POST   /api/v1/applications/{name}/rollback    {"revision": N} (absent: the one before)
//   POST   /api/v1/applications/{name}/predict     {"images": [...]} (the simple form)
//   GET    /v2, /v2/health/live, /v2/health/ready  Open Inference Protocol (KServe V2)
//   GET    /v2/models/{app}[/versions/{v}][/ready]
//   POST   /v2/models/{app}[/versions/{v}]/infer

#include <string>
#include <string_view>

namespace mlctl::api::routes {

// Each returns the path of the route; `name` must be a valid name already.
std::string applications();
std::string application(std::string_view name);
std::string application_revisions(std::string_view name);
std::string application_rollback(std::string_view name);
std::string application_predict(std::string_view name);
std::string v2_model(std::string_view name);
std::string v2_infer(std::string_view name);

// The request header that pins a variant: `x-mlctl-variant: mnist:4`.
inline constexpr const char* k_variant_header = "x-mlctl-variant";

namespace pattern {
inline constexpr const char* k_applications = R"(/api/v1/applications)";
inline constexpr const char* k_application = R"(/api/v1/applications/([^/]+))";
inline constexpr const char* k_application_revisions = R"(/api/v1/applications/([^/]+)/revisions)";
inline constexpr const char* k_application_rollback = R"(/api/v1/applications/([^/]+)/rollback)";
inline constexpr const char* k_application_predict = R"(/api/v1/applications/([^/]+)/predict)";
inline constexpr const char* k_v2 = R"(/v2/?)";
inline constexpr const char* k_v2_live = R"(/v2/health/live)";
inline constexpr const char* k_v2_ready = R"(/v2/health/ready)";
inline constexpr const char* k_v2_model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
inline constexpr const char* k_v2_model_ready = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/ready)";
inline constexpr const char* k_v2_infer = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)";
} // namespace pattern

} // namespace mlctl::api::routes
