// Routes of automated canary analysis (issue 7): start, follow, list and abort the rollouts of
// an application (api/rollout.hpp has the paths and shapes).
#include "api/rollout.hpp"
#include "server/http_internal.hpp"

namespace mlctl::server::detail {

namespace {

Rollouts& rollouts_of(Platform& p) {
  if (!p.rollouts) {
    throw Error(ErrorKind::unavailable, "the rollout controller is not running");
  }
  return *p.rollouts;
}

} // namespace

void register_rollout_routes(httplib::Server& http, Platform& p) {
  namespace pattern = api::routes::pattern;
  http.Post(pattern::k_application_rollouts, guarded(p.log, [&p](const httplib::Request& req,
                                                                 httplib::Response& res) {
              const auto name = application_of(req);
              const auto spec = api::canary_spec_from_json(body_json(req));
              send_json(res, 201, rollouts_of(p).start(name, spec, actor_of(req)));
            }));
  http.Get(pattern::k_application_rollouts,
           guarded(p.log, [&p](const httplib::Request& req, httplib::Response& res) {
             send_json(res, 200, rollouts_of(p).list(application_of(req)));
           }));
  http.Get(pattern::k_application_rollout,
           guarded(p.log, [&p](const httplib::Request& req, httplib::Response& res) {
             send_json(res, 200, rollouts_of(p).latest(application_of(req)));
           }));
  http.Post(pattern::k_application_rollout_abort,
            guarded(p.log, [&p](const httplib::Request& req, httplib::Response& res) {
              send_json(res, 200, rollouts_of(p).abort(application_of(req), actor_of(req)));
            }));
}

} // namespace mlctl::server::detail
