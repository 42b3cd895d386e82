#pragma once
// Applications on the platform: their numbered revisions in SQLite (tables `applications`
// and `application_revisions`), the model versions they pin in the registry (so a served
// version cannot be deleted), the audit events of every change, and the hot swap: an apply
// resolves aliases, loads and checks the new versions first, commits the revision, then
// switches the gateway's routing table.
//
// JSON shapes (the platform API):
//   application: {name, revision, created_at, updated_at, singular, manifest (canonical
//     document as applied), stages: [{variants: [{model: "mnist:3", requested: "mnist@prod",
//     role, weight, shadow?, requests, errors, mean_latency_ms}]}], capture: {sample},
//     monitoring, endpoints: {v2_infer, v2_metadata, predict}, ready, health? (when a monitor
//     provides one)}
//   apply result: {name, result: created|configured|unchanged, revision, application}; with
//     ?dry_run=true: {name, result, dry_run: true, models}
//   revision: {revision, time, actor, cause, manifest, models: ["mnist:3", ...] (stage order),
//     current}

#include "manifest/application.hpp"
#include "server/events.hpp"
#include "server/gateway.hpp"

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mlctl::server {

class Registry;

class Applications {
public:
  Applications(Registry& registry, ModelPool& pool, Gateway& gateway)
      : m_registry(registry), m_pool(pool), m_gateway(gateway) {}

  // Loads every stored application into the gateway (at start). An application whose models
  // cannot be loaded is reported through `log` and left out (its API entry stays).
  void load_all(const std::function<void(const std::string&)>& log);

  // Applies the Application document `doc` (validated with `manifest::application_from_json`;
  // `name`, from the URL, must match metadata.name). Returns the apply result. Throws
  // `Error{invalid_input}` naming the field ("spec.singular.model: mnist:9 does not exist")
  // and the errors of loading the models (nothing changes then). `cause` is recorded with the
  // revision; one starting with "rollout" (a canary analysis) makes an `application.rollout`
  // audit event instead of `application.applied`.
  nlohmann::json apply(const nlohmann::json& doc, std::string_view name, const Actor& actor,
                       std::string_view cause = "apply");
  // Checks `doc` as `apply` does (its versions loaded too) and changes nothing: returns
  // {name, result: created|configured|unchanged (what an apply would do now), dry_run: true,
  // models: [["mnist:3", ...] per stage]}. Throws what `apply` would.
  nlohmann::json check(const nlohmann::json& doc, std::string_view name);
  // Makes a new revision with the spec of revision `revision` (the one before the current
  // when absent); `cause` defaults to "rollback to revision N". Throws `Error{not_found}` for a
  // missing application or revision.
  nlohmann::json rollback(std::string_view name, std::optional<std::int64_t> revision,
                          const Actor& actor, std::string_view cause = {});
  // Deletes the application, its history and its pins. Throws `Error{not_found}`.
  nlohmann::json remove(std::string_view name, const Actor& actor);

  // Returns the application as JSON (see above). Throws `Error{not_found}`.
  nlohmann::json get(std::string_view name);
  // True when an application of that name exists (its models loaded or not).
  bool exists(std::string_view name);
  // Returns `{"applications": [...]}`, by name.
  nlohmann::json list();
  // Returns `{"name", "current", "revisions": [...]}`, oldest first. Throws `Error{not_found}`.
  nlohmann::json revisions(std::string_view name);

  // When set, `get` adds `health` from it (a monitor fills it in; null = nothing to show).
  std::function<nlohmann::json(const std::string& application)> health;

private:
  struct Resolved {
    manifest::Application app;
    nlohmann::json manifest;                      // canonical as written
    std::vector<std::vector<std::string>> models; // resolved "name:version" per stage/variant
  };
  // Validates `doc` for the application `name` and resolves its model references.
  Resolved resolve(const nlohmann::json& doc, std::string_view name);
  nlohmann::json commit(const Resolved& r, std::string_view cause, const Actor& actor,
                        bool check_unchanged);
  std::shared_ptr<Route> build_route(const Resolved& r, std::int64_t revision);
  nlohmann::json describe(const nlohmann::json& row, const std::shared_ptr<const Route>& route);

  Registry& m_registry;
  ModelPool& m_pool;
  Gateway& m_gateway;
  std::mutex m_apply_mutex; // one change at a time: load, commit and switch in order
};

} // namespace mlctl::server
