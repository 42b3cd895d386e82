#pragma once
// Automated canary analysis (`mlctl rollout canary`): the request, the evidence, the verdict
// and their JSON. The verdict is a pure function of the evidence (the canary's and the
// primary's counters since the rollout started), so the server's controller and the unit tests
// share it.
//
//   POST /api/v1/applications/{name}/rollouts        start: the spec (below) -> the rollout (201)
//   GET  /api/v1/applications/{name}/rollouts        {"rollouts": [...]}, newest first
//   GET  /api/v1/applications/{name}/rollout         the latest rollout (404: none yet)
//   POST /api/v1/applications/{name}/rollout/abort   rolls a running rollout back
//
// spec: {model, weight, gates: ["accuracy>=0.95", ...], min_requests, min_labelled, confidence,
//   timeout_seconds}
// rollout: {id, application, status: running|promoted|rolled_back|aborted|failed, model
//   ("mnist:5", the canary), requested (as given), primary ("mnist:3"), weight, spec,
//   from_revision, canary_revision, final_revision, actor, started_at, updated_at, finished_at,
//   deadline, reason, verdict}

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::api {

enum class GateOp { le, lt, ge, gt };

// One condition on the canary's own metrics since the rollout started.
struct Gate {
  std::string metric; // accuracy | error_rate | p50_ms | p99_ms | mean_ms | reconstruction
  GateOp op = GateOp::le;
  double value = 0;
  bool versus_threshold = false; // `reconstruction<=threshold`: the version's own threshold

  // Returns the canonical text, e.g. "p99_ms<=20", "reconstruction<=threshold".
  std::string text() const;
  // Returns whether `measured` satisfies the gate against `limit`.
  bool holds(double measured, double limit) const;
};

// The metrics a gate can name, for help texts: "accuracy, error_rate, ...".
std::string gate_metrics();

// Parses "METRIC OP VALUE" (spaces allowed; OP one of <= < >= >; VALUE a number, or `threshold`
// for `reconstruction`). Throws `Error{invalid_input}` "gate 'x': <what>" naming the metric,
// operator or value at fault (accuracy and error_rate must be in [0, 1], latencies >= 0).
Gate parse_gate(std::string_view text);

struct CanarySpec {
  std::string model; // NAME:VERSION or NAME@ALIAS
  int weight = 10;   // percent of the traffic, 1..50 (the primary keeps the rest)
  std::vector<Gate> gates;
  std::int64_t min_requests = 500; // canary requests before its gates are judged
  std::int64_t min_labelled = 100; // labelled images per variant before accuracy is judged;
                                   // 0: no ground truth (then no accuracy gate, no comparison)
  double confidence = 0.95;        // of the one-sided two-proportion test, 0.5..0.9999
  std::int64_t timeout_seconds = 600;
};

// Returns the JSON of `spec` (gates as their canonical text).
nlohmann::json to_json(const CanarySpec& spec);
// Parses and validates a spec. Throws `Error{invalid_input}` naming the field: "weight: must be
// 1..50, got 70", "gates[1]: gate 'x': ...", "gates: accuracy needs min_labelled > 0".
CanarySpec canary_spec_from_json(const nlohmann::json& doc);

// What one variant did since the rollout started.
struct VariantEvidence {
  std::string model; // "mnist:5"
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::int64_t images = 0;
  std::optional<double> p50_ms;
  std::optional<double> p99_ms;
  std::optional<double> mean_ms;
  std::optional<double> reconstruction; // mean over `scored` images
  std::int64_t scored = 0;
  std::optional<double> threshold; // the version's reconstruction threshold
  std::int64_t labelled = 0;
  std::int64_t correct = 0;
};
nlohmann::json to_json(const VariantEvidence& evidence);

struct GateResult {
  std::string gate;   // canonical text
  std::string status; // pass | fail | pending
  std::optional<double> value;
  std::optional<double> limit;
  std::string detail; // why pending, or what failed
};

// The canary against the primary on labelled traffic: a one-sided two-proportion z-test of
// "the canary is less accurate"; it fails when z < -z_critical (z_critical = the normal
// quantile of `confidence`).
struct Comparison {
  std::string status; // pass | fail | pending | skipped (min_labelled = 0)
  std::optional<double> canary_accuracy;
  std::optional<double> primary_accuracy;
  std::optional<double> z;
  std::optional<double> p_value; // P(Z <= z): small when the canary is worse
  double z_critical = 0;
  std::string detail;
};

struct Verdict {
  std::string decision; // pending | promote | rollback
  std::string reason;   // one line: what decided, or what is awaited
  std::vector<GateResult> gates;
  Comparison comparison;
  VariantEvidence canary;
  VariantEvidence primary;
};
nlohmann::json to_json(const Verdict& verdict);

// Judges the evidence: any gate or the comparison failing (each judged only once it has its
// minimum of data) rolls back at once; all passing promotes; otherwise pending, and pending at
// `timed_out` rolls back ("timed out waiting for ...").
Verdict evaluate(const CanarySpec& spec, const VariantEvidence& canary,
                 const VariantEvidence& primary, bool timed_out);

// Returns the two-proportion z statistic of (c1/n1 - c2/n2) with the pooled variance, or
// nothing when n1 or n2 is 0 or the pooled proportion is 0 or 1 (then both are identical).
std::optional<double> two_proportion_z(std::int64_t c1, std::int64_t n1, std::int64_t c2,
                                       std::int64_t n2);
// Returns the standard normal CDF at `z`.
double normal_cdf(double z);
// Returns the standard normal quantile of `p` in (0, 1).
double normal_quantile(double p);

namespace routes {
std::string application_rollouts(std::string_view name);
std::string application_rollout(std::string_view name);
std::string application_rollout_abort(std::string_view name);
namespace pattern {
inline constexpr const char* k_application_rollouts = R"(/api/v1/applications/([^/]+)/rollouts)";
inline constexpr const char* k_application_rollout = R"(/api/v1/applications/([^/]+)/rollout)";
inline constexpr const char* k_application_rollout_abort =
    R"(/api/v1/applications/([^/]+)/rollout/abort)";
} // namespace pattern
} // namespace routes

} // namespace mlctl::api
