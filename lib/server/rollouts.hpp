#pragma once
// The rollout controller: automated canary analysis on the server (`mlctl rollout canary`).
// `start` moves `weight`% of an application's traffic to a candidate version (a new revision
// whose one stage holds the primary and the canary), then a worker thread judges the canary's
// evidence every tick with `api::evaluate`: its counters since the start (requests, errors,
// latency, reconstruction: differences of `Metrics` readings, by variant) and accuracy on
// labelled requests since the start (the request store). Promote = a new revision serving the
// candidate where the primary was; roll back = the revision before the canary. Both are
// ordinary revisions (`mlctl rollout history`), and each rollout is a row of the `rollouts`
// table with its final verdict.
//
// A rollout whose application changed meanwhile (an apply, an undo, a delete) ends
// `superseded` and is left alone. After a restart, running rollouts resume: their request
// counters restart with the server; accuracy comes from the request store, which survives.

#include "api/rollout.hpp"
#include "server/events.hpp"
#include "server/metrics.hpp"
#include "server/request_store.hpp"
#include "util/progress.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::server {

class Applications;
class Registry;

// Where the evidence comes from (the platform's monitors and request store).
struct RolloutSources {
  // The counters of one series; empty when the monitors are off (then `start` refuses).
  std::function<SeriesTotals(const std::string& application, const std::string& model,
                             std::int64_t version, const std::string& variant)>
      totals;
  // Accuracy per version of `application` over labelled rows since `since` (RFC 3339).
  std::function<std::vector<VersionAccuracy>(const std::string& application,
                                             const std::string& since)>
      accuracy;
};

class Rollouts {
public:
  // Resumes the running rollouts of the `rollouts` table and starts the worker, which judges
  // every running rollout each `tick`.
  Rollouts(Registry& registry, Applications& applications, RolloutSources sources,
           util::LogFn log, std::chrono::milliseconds tick = std::chrono::milliseconds(500));
  // Stops the worker (running rollouts stay running in the table, and resume on next start).
  ~Rollouts();
  Rollouts(const Rollouts&) = delete;
  Rollouts& operator=(const Rollouts&) = delete;

  // Starts a canary of `spec.model` on `application` and returns the rollout (see
  // api/rollout.hpp). Throws `Error{not_found}` for a missing application,
  // `Error{invalid_input}` when the application is not one weighted variant (plus shadows),
  // when the candidate does not exist or already serves, or when the evidence cannot be had
  // (monitors off; min_labelled > 0 with capture.sample 0), and `Error{conflict}` when a
  // rollout of the application is running.
  nlohmann::json start(std::string_view application, const api::CanarySpec& spec,
                       const Actor& actor);
  // Returns the latest rollout of `application`; `Error{not_found}` when it has none.
  nlohmann::json latest(std::string_view application);
  // Returns `{"rollouts": [...]}` of `application`, newest first (at most 100).
  nlohmann::json list(std::string_view application);
  // Rolls a running rollout back now (status `aborted`) and returns it. Throws
  // `Error{conflict}` when none is running.
  nlohmann::json abort(std::string_view application, const Actor& actor);
  // Stops the worker; idempotent.
  void stop();

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace mlctl::server
