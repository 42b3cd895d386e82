#include "api/app_routes.hpp"

#include "api/routes.hpp"

namespace mlctl::api::routes {

std::string applications() {
  return std::string(k_api_prefix) + "/applications";
}
std::string application(std::string_view name) {
  return applications() + "/" + url_encode(name);
}
std::string application_revisions(std::string_view name) {
  return application(name) + "/revisions";
}
std::string application_rollback(std::string_view name) {
  return application(name) + "/rollback";
}
std::string application_predict(std::string_view name) {
  return application(name) + "/predict";
}
std::string v2_model(std::string_view name) {
  return "/v2/models/" + url_encode(name);
}
std::string v2_infer(std::string_view name) {
  return v2_model(name) + "/infer";
}

} // namespace mlctl::api::routes
