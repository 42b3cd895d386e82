// Routes of the request store: the stored requests of an application, one trace, and
// ground-truth feedback (see api/requests.hpp for the shapes).
#include "api/names.hpp"
#include "api/requests.hpp"
#include "api/time.hpp"
#include "server/http_internal.hpp"

namespace mlctl::server::detail {

namespace {

bool include_input(const httplib::Request& req) {
  if (!req.has_param("include")) {
    return false;
  }
  const auto v = req.get_param_value("include");
  if (v == "input") {
    return true;
  }
  throw Error(ErrorKind::invalid_input, "include '" + v.substr(0, 20) + "': expected input");
}

RequestStore& store_of(Platform& p) {
  if (!p.request_store) {
    throw Error(ErrorKind::unavailable, "the request store is not open");
  }
  return *p.request_store;
}

} // namespace

void register_request_routes(httplib::Server& http, Platform& p) {
  http.Get(api::routes::pattern::k_application_requests,
           guarded(p.log, [&p](const httplib::Request& req, httplib::Response& res) {
             RequestListQuery q;
             q.application = req.matches[1];
             api::validate_name(q.application, "application name");
             q.since = req.get_param_value("since");
             q.until = req.get_param_value("until");
             q.limit = int_param(req, "limit", 100, 1, 10000);
             q.page_token = req.get_param_value("page_token");
             const auto order =
                 req.has_param("order") ? req.get_param_value("order") : std::string("desc");
             if (order != "asc" && order != "desc") {
               throw Error(ErrorKind::invalid_input,
                           "order '" + order.substr(0, 20) + "': expected asc or desc");
             }
             q.ascending = order == "asc";
             q.include_input = include_input(req);
             auto& store = store_of(p);
             // Read your writes: what was answered before this call is listed (bounded wait).
             store.flush(std::chrono::seconds(1));
             auto list = store.list(q);
             // A deleted application's requests stay listable; a name never served (a typo)
             // is not an empty history.
             if (list.requests.empty() && q.page_token.empty() && p.applications &&
                 !p.applications->exists(q.application)) {
               throw Error(ErrorKind::not_found,
                           "application '" + q.application + "' not found, and no request of it " +
                               (q.since.empty() && q.until.empty() ? "is stored"
                                                                   : "is stored in this range"));
             }
             send_json(res, 200, list);
           }));

  http.Get(api::routes::pattern::k_request_trace,
           guarded(p.log, [&p](const httplib::Request& req, httplib::Response& res) {
             const std::string trace_id = req.matches[1];
             if (!api::is_trace_id(trace_id)) {
               throw Error(ErrorKind::invalid_input, "trace id '" + trace_id.substr(0, 40) +
                                                         "': must be 32 lowercase hex digits");
             }
             auto& store = store_of(p);
             store.flush(std::chrono::seconds(1));
             auto found = store.trace(trace_id, include_input(req));
             if (found.requests.empty()) {
               throw Error(ErrorKind::not_found,
                           "trace " + trace_id + " not found in the request store");
             }
             send_json(res, 200, found);
           }));

  http.Post(
      api::routes::pattern::k_feedback,
      guarded(p.log, [&p](const httplib::Request& req, httplib::Response& res) {
        const auto application = req.get_param_value("application");
        if (!application.empty()) {
          api::validate_name(application, "application name");
        }
        const auto items = api::parse_feedback(
            body_json(req, "feedback", " (expected [{\"trace_id\", \"label\", \"index\"?}])"));
        auto result = store_of(p).add_feedback(items, application,
                                               api::format_time(std::chrono::system_clock::now()));
        send_json(res, 200, result);
      }));
}

} // namespace mlctl::server::detail
