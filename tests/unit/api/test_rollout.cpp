#include "api/rollout.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

namespace api = mlctl::api;
using mlctl::Error;

namespace {

api::VariantEvidence evidence(std::int64_t requests, std::int64_t labelled, std::int64_t correct) {
  api::VariantEvidence e;
  e.model = "mnist:2";
  e.requests = requests;
  e.images = requests;
  e.labelled = labelled;
  e.correct = correct;
  e.p50_ms = 1.5;
  e.p99_ms = 4.0;
  e.mean_ms = 1.8;
  e.reconstruction = 0.02;
  e.scored = requests;
  e.threshold = 0.05;
  return e;
}

api::CanarySpec spec_with(std::initializer_list<const char*> gates) {
  api::CanarySpec spec;
  spec.model = "mnist:2";
  spec.min_requests = 500;
  spec.min_labelled = 100;
  for (const auto* g : gates) {
    spec.gates.push_back(api::parse_gate(g));
  }
  return spec;
}

} // namespace

TEST_CASE("gates parse to a canonical form") {
  CHECK(api::parse_gate("accuracy>=0.95").text() == "accuracy>=0.95");
  CHECK(api::parse_gate(" p99_ms <= 20 ").text() == "p99_ms<=20");
  CHECK(api::parse_gate("error_rate<0.01").text() == "error_rate<0.01");
  const auto g = api::parse_gate("reconstruction<=threshold");
  CHECK(g.versus_threshold);
  CHECK(g.text() == "reconstruction<=threshold");
  CHECK(api::parse_gate("mean_ms>1").holds(2, 1));
  CHECK_FALSE(api::parse_gate("mean_ms>1").holds(1, 1));
  CHECK(api::parse_gate("accuracy>=0.9").holds(0.9, 0.9));
  CHECK_THROWS_WITH_AS(api::parse_gate("latency<=3"),
                       "gate 'latency<=3': unknown metric 'latency' (one of accuracy, error_rate, "
                       "p50_ms, p99_ms, mean_ms, reconstruction)",
                       Error);
  CHECK_THROWS_WITH_AS(api::parse_gate("p99_ms=20"),
                       "gate 'p99_ms=20': expected METRIC OP VALUE with OP one of <= < >= >, e.g. "
                       "'p99_ms<=20'",
                       Error);
  CHECK_THROWS_WITH_AS(api::parse_gate("accuracy>=1.5"),
                       "gate 'accuracy>=1.5': accuracy must be compared with a value in [0, 1]", Error);
  CHECK_THROWS_WITH_AS(api::parse_gate("p99_ms<=threshold"),
                       "gate 'p99_ms<=threshold': only reconstruction compares with 'threshold'", Error);
  CHECK_THROWS_WITH_AS(api::parse_gate("p99_ms<="), "gate 'p99_ms<=': expected a number after <=", Error);
}

TEST_CASE("a canary spec is validated field by field and round-trips") {
  const auto spec = api::canary_spec_from_json(
      {{"model", "mnist@candidate"}, {"weight", 20}, {"gates", {"p99_ms <= 20"}}, {"timeout_seconds", 60}});
  CHECK(spec.weight == 20);
  CHECK(spec.min_requests == 500);
  CHECK(api::to_json(api::canary_spec_from_json(api::to_json(spec))) == api::to_json(spec));
  CHECK(api::to_json(spec)["gates"] == nlohmann::json{"p99_ms<=20"});
  CHECK_THROWS_WITH_AS(api::canary_spec_from_json({{"model", "mnist:2"}, {"weight", 70}}),
                       "weight: must be 1..50, got 70", Error);
  CHECK_THROWS_WITH_AS(api::canary_spec_from_json({{"model", "mnist:2"}, {"wieght", 5}}),
                       "wieght: unknown field", Error);
  CHECK_THROWS_WITH_AS(api::canary_spec_from_json({{"model", "mnist:2"}, {"gates", {"x<1"}}}),
                       doctest::Contains("gates[0]: gate 'x<1': unknown metric 'x'"), Error);
  CHECK_THROWS_WITH_AS(
      api::canary_spec_from_json({{"model", "mnist:2"}, {"min_labelled", 0}, {"gates", {"accuracy>=0.9"}}}),
      "gates[0]: an accuracy gate needs ground truth: min_labelled must be > 0", Error);
  CHECK_THROWS_AS(api::canary_spec_from_json({{"model", "Mnist"}}), Error);
}

TEST_CASE("the two-proportion test matches the textbook values") {
  // 90/100 vs 80/100: pooled 0.85, z = 0.1 / sqrt(0.85 * 0.15 * 0.02) = 1.9803
  CHECK(*api::two_proportion_z(90, 100, 80, 100) == doctest::Approx(1.98030).epsilon(1e-4));
  CHECK(*api::two_proportion_z(80, 100, 90, 100) == doctest::Approx(-1.98030).epsilon(1e-4));
  CHECK_FALSE(api::two_proportion_z(100, 100, 50, 50).has_value()); // pooled 1: no variance
  CHECK_FALSE(api::two_proportion_z(1, 0, 1, 1).has_value());
  CHECK(api::normal_cdf(1.959964) == doctest::Approx(0.975).epsilon(1e-6));
  CHECK(api::normal_quantile(0.95) == doctest::Approx(1.644854).epsilon(1e-6));
  CHECK(api::normal_quantile(0.99) == doctest::Approx(2.326348).epsilon(1e-6));
}

TEST_CASE("the verdict waits for its evidence, then promotes") {
  const auto spec = spec_with({"accuracy>=0.9", "p99_ms<=20", "error_rate<=0.01", "reconstruction<=threshold"});
  const auto primary = evidence(4000, 3000, 2880); // 0.96
  auto v = api::evaluate(spec, evidence(120, 30, 29), primary, false);
  CHECK(v.decision == "pending");
  CHECK(v.reason == "waiting for canary requests 120/500, labelled images: canary 30/100, primary "
                    "3000/100");
  CHECK(v.gates[1].status == "pending");
  v = api::evaluate(spec, evidence(600, 400, 383), primary, false); // 0.9575
  CHECK(v.decision == "promote");
  CHECK(v.comparison.status == "pass");
  for (const auto& g : v.gates) {
    CHECK_MESSAGE(g.status == "pass", g.gate);
  }
  CHECK(v.gates[3].limit == 0.05); // the version's own threshold
  CHECK(v.reason.starts_with("4 gate(s) passed over 600 canary requests; canary not significantly less "
                             "accurate: canary 0.9575 (400 labelled) vs primary 0.96 (3000 labelled): z = "));
  // The same evidence, still incomplete at the deadline: rolled back.
  v = api::evaluate(spec, evidence(120, 30, 29), primary, true);
  CHECK(v.decision == "rollback");
  CHECK(v.reason.starts_with("timed out waiting for canary requests 120/500"));
}

TEST_CASE("a failing gate or a significantly worse canary rolls back as soon as it is judged") {
  const auto primary = evidence(4000, 3000, 2880); // 0.96
  // Accuracy is judged on labelled images, before the request minimum.
  auto v = api::evaluate(spec_with({"accuracy>=0.9"}), evidence(200, 150, 60), primary, false);
  CHECK(v.decision == "rollback");
  CHECK(v.reason.starts_with("accuracy>=0.9 failed: 0.4 (60/150 labelled images correct); canary "
                             "significantly less accurate: canary 0.4 (150 labelled) vs primary 0.96"));
  // No gate on accuracy, but the comparison: 0.90 vs 0.96 over 400 vs 3000 is significant.
  v = api::evaluate(spec_with({"p99_ms<=20"}), evidence(600, 400, 360), primary, false);
  CHECK(v.decision == "rollback");
  CHECK(v.comparison.status == "fail");
  CHECK(*v.comparison.z < -v.comparison.z_critical);
  CHECK(*v.comparison.p_value < 0.05);
  // Too slow.
  auto slow = evidence(600, 400, 384);
  slow.p99_ms = 35;
  v = api::evaluate(spec_with({"p99_ms<=20"}), slow, primary, false);
  CHECK(v.decision == "rollback");
  CHECK(v.reason == "p99_ms<=20 failed: 35 (over 600 requests)");
  // No threshold to compare with.
  auto blind = evidence(600, 400, 384);
  blind.threshold.reset();
  v = api::evaluate(spec_with({"reconstruction<=threshold"}), blind, primary, false);
  CHECK(v.decision == "rollback");
  CHECK(v.gates[0].detail.starts_with("mnist:2 has no reconstruction threshold"));
}

TEST_CASE("without ground truth the comparison is skipped and requests decide") {
  auto spec = spec_with({"error_rate<=0.01"});
  spec.min_labelled = 0;
  auto v = api::evaluate(spec, evidence(499, 0, 0), evidence(4000, 0, 0), false);
  CHECK(v.decision == "pending");
  v = api::evaluate(spec, evidence(500, 0, 0), evidence(4000, 0, 0), false);
  CHECK(v.decision == "promote");
  CHECK(v.comparison.status == "skipped");
  auto failing = evidence(500, 0, 0);
  failing.errors = 10;
  v = api::evaluate(spec, failing, evidence(4000, 0, 0), false);
  CHECK(v.decision == "rollback");
  CHECK(v.reason == "error_rate<=0.01 failed: 0.02 (10 errors in 500 requests)");
  const auto j = api::to_json(v);
  CHECK(j["decision"] == "rollback");
  CHECK(j["comparison"]["status"] == "skipped");
  CHECK(j["evidence"]["canary"]["errors"] == 10);
  CHECK(j["gates"][0]["value"] == 0.02);
}
