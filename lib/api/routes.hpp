#pragma once
// Route paths of the platform API: the client builds paths with the functions below, the
// server registers the `pattern::` regular expressions (cpp-httplib matches the decoded path
// against them; every `([^/]+)` segment is validated by the handler, so a bad name is a 400
// rather than a 404).
//
//   GET    /healthz                                   liveness
//   GET    /readyz                                    readiness (storage open)
//   GET    /api/v1/models?prefix=&tag=k=v&limit=&page_token=
//   GET    /api/v1/models/{name}
//   GET    /api/v1/models/{name}/versions?tag=k=v&limit=&page_token=&order=asc|desc
//   POST   /api/v1/models/{name}/versions?force_new=true   body: the artifact (tar.gz)
//   GET    /api/v1/models/{name}/versions/{v}          {v}: number, alias or `latest`
//   DELETE /api/v1/models/{name}/versions/{v}
//   GET    /api/v1/models/{name}/versions/{v}/artifact (ETag = sha256)
//   PATCH  /api/v1/models/{name}/versions/{v}/tags     {"set": {k: v}, "remove": [k]}
//   GET    /api/v1/models/{name}/aliases
//   PUT    /api/v1/models/{name}/aliases/{alias}       {"version": N}
//   DELETE /api/v1/models/{name}/aliases/{alias}
//   GET    /api/v1/events?since=&until=&name=&limit=
//   POST   /api/v1/gc?dry_run=true

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlctl::api::routes {

inline constexpr std::string_view k_healthz = "/healthz";
inline constexpr std::string_view k_readyz = "/readyz";
inline constexpr std::string_view k_api_prefix = "/api/v1";

// Each returns the path (no query) of the route; names and selectors must be valid already.
std::string models();
std::string model(std::string_view name);
std::string versions(std::string_view name);
std::string version(std::string_view name, std::string_view selector);
std::string artifact(std::string_view name, std::string_view selector);
std::string tags(std::string_view name, std::string_view selector);
std::string aliases(std::string_view name);
std::string alias(std::string_view name, std::string_view alias);
std::string events();
std::string gc();

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);
// Returns `?k1=v1&k2=v2` (encoded) for the pairs whose value is not empty, or "" when none.
std::string query(const std::vector<std::pair<std::string, std::string>>& params);

// Regular expressions for the server's router (whole-path matches).
namespace pattern {
inline constexpr const char* k_models = R"(/api/v1/models)";
inline constexpr const char* k_model = R"(/api/v1/models/([^/]+))";
inline constexpr const char* k_versions = R"(/api/v1/models/([^/]+)/versions)";
inline constexpr const char* k_version = R"(/api/v1/models/([^/]+)/versions/([^/]+))";
inline constexpr const char* k_artifact = R"(/api/v1/models/([^/]+)/versions/([^/]+)/artifact)";
inline constexpr const char* k_tags = R"(/api/v1/models/([^/]+)/versions/([^/]+)/tags)";
inline constexpr const char* k_aliases = R"(/api/v1/models/([^/]+)/aliases)";
inline constexpr const char* k_alias = R"(/api/v1/models/([^/]+)/aliases/([^/]+))";
inline constexpr const char* k_events = R"(/api/v1/events)";
inline constexpr const char* k_gc = R"(/api/v1/gc)";
} // namespace pattern

} // namespace mlctl::api::routes
